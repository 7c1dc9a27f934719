"""A drop-in for Flower Datasets 0.6's own ``flwr_datasets/common/telemetry.py``.

The first step of an adoption is one line in place of that module's body::

    from flwr_datasets_telemetry.compat import EventType, event

Its four call sites keep working unchanged and their events keep their names, but
they go through this package: nothing is sent when telemetry is off, nothing blocks,
and the details are filtered on the way (see `event`). The second step, decorating the
four functions with `track` and deleting the module, needs no change on the server.
"""

from __future__ import annotations

import itertools
import sys
from concurrent.futures import Future
from enum import Enum

from . import _runtime
from ._track import STOPPING, emit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Final

#: What the Future of an event holds when telemetry is off in this process.
DISABLED: Final = "disabled"
#: ...when the event was handed to the background sender (not a delivery receipt).
QUEUED: Final = "queued"
#: ...when the event type is neither a string nor a string enum member.
IGNORED: Final = "ignored"


class EventType(str, Enum):
    """Flower Datasets' event types: the same members with the same values."""

    PING = "PING"

    LOAD_PARTITION_CALLED = "LOAD_PARTITION_CALLED"
    LOAD_SPLIT_CALLED = "LOAD_SPLIT_CALLED"
    PLOT_LABEL_DISTRIBUTION_CALLED = "PLOT_LABEL_DISTRIBUTION_CALLED"
    PLOT_COMPARISON_LABEL_DISTRIBUTION_CALLED = "PLOT_COMPARISON_LABEL_DISTRIBUTION_CALLED"


_NAMES: Final = {member: str.__str__(member.value) for member in EventType}


# Flower Datasets' detail keys, by what becomes of them. Arguments go through the
# ``names`` collector like a tracked call's (the local-path rule for dataset names
# runs there, on the background thread); details are sent as given, once checked here.
_AS_ARGUMENT: Final = (
    ("dataset_name", "dataset"),
    ("split", "split"),
    ("num_partitions", "num_partitions"),
)
_AS_DETAIL: Final = ("partitioner", "plot_type", "num_compare")
#: An ``id()`` address; the per-process ``cluster`` id groups a run's events instead.
_NEVER_SENT: Final = "federated_dataset_id"
_KNOWN: Final = frozenset({*(key for key, _ in _AS_ARGUMENT), *_AS_DETAIL, _NEVER_SENT})
_PLOT_TYPES: Final = frozenset({"bar", "heatmap"})
_OTHER: Final = "<other>"
_MAX_NAME: Final = 96
# Unlike `track` wrappers, `event` needs no guard against module globals wiped at
# interpreter shutdown: its callers' own globals (``event``, ``EventType``) go first.
_STATE: Final = _runtime.STATE
#: Unknown keys already reported when logging is on; bounded.
_reported: set[str] = set()
_MAX_REPORTED: Final = 256


def event(
    event_type: EventType | str, event_details: Mapping[str, Any] | None = None
) -> Future[str]:
    """Emit ``event_type`` as Flower Datasets' ``event()`` did; never blocks, never raises.

    Returns a Future that is already resolved: `DISABLED`, `QUEUED` or `IGNORED`, so
    ``.result()`` returns at once. Of ``event_details`` only Flower Datasets' own keys
    are used: ``dataset_name``, ``split`` and ``num_partitions`` are reported like a
    tracked call's arguments (a dataset name that is a local path becomes ``"<local>"``),
    ``partitioner`` (a class name), ``num_compare`` (a count) and ``plot_type`` (``bar``
    or ``heatmap``, else ``"<other>"``) as details; ``federated_dataset_id`` is never
    sent; other keys are dropped, named in one line when ``FLWR_TELEMETRY_LOGGING=1``.
    Identical events are sent once per process, as for `track`.
    """
    # A fresh Future per call (about 1.5 us): a shared one would share its lock and
    # identity between callers, and a fork while another thread held that lock would
    # leave ``.result()`` waiting forever in the child.
    future: Future[str] = Future()
    outcome = DISABLED
    runtime = _STATE.current
    if runtime is not None:
        try:
            outcome = _hand_over(event_type, event_details, runtime)
        except STOPPING:
            raise
        except BaseException:  # the caller's mapping: whatever it raises
            outcome = IGNORED
    future.set_result(outcome)
    return future


def _hand_over(
    event_type: object, event_details: Mapping[str, Any] | None, runtime: _runtime.Runtime
) -> str:
    # `enum`'s ``.value`` is a descriptor (0.3 us): our own members are looked up instead.
    name = _NAMES[event_type] if type(event_type) is EventType else _name(event_type)
    if name is None:
        return IGNORED
    arguments: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if event_details is not None:
        try:
            _pick(event_details.get, arguments, details)
        except STOPPING:
            raise
        except BaseException:  # not a mapping, or one that raises: the event goes bare
            arguments.clear()
            details.clear()
    try:
        module = sys._getframe(2).f_globals.get("__name__")  # the caller of `event`
    except Exception:
        module = None
    config = runtime.config
    if config.logging and event_details is not None:
        try:  # before `emit`, which may start the sender: see `_report_unknown`
            _report_unknown(name, event_details)
        except Exception:
            pass
    emit(name, module, arguments=arguments, details=details)
    return QUEUED if config.enabled else DISABLED


def _pick(get: Callable[[str], Any], arguments: dict[str, Any], details: dict[str, Any]) -> None:
    """Flower Datasets' keys, each looked up once (a huge mapping costs no more)."""
    for key, argument in _AS_ARGUMENT:
        value = get(key)
        if value is not None:
            kind = type(value)
            if kind is str or kind is int:
                arguments[argument] = value
            elif isinstance(value, str):
                arguments[argument] = str.__str__(value)  # a plain str, not the subclass
    value = get("partitioner")
    if value is not None:  # a class name, never anything that could be a value or a path
        name = str.__str__(value) if isinstance(value, str) else ""
        details["partitioner"] = name if len(name) <= _MAX_NAME and name.isidentifier() else _OTHER
    value = get("plot_type")
    if value is not None:  # the user's argument, sent before Flower Datasets validates it
        details["plot_type"] = value if type(value) is str and value in _PLOT_TYPES else _OTHER
    value = get("num_compare")
    if type(value) is int:
        details["num_compare"] = value


def _name(event_type: object) -> str | None:
    """The event's name: an enum member's value, or the string itself."""
    if isinstance(event_type, Enum):
        event_type = event_type.value
    if isinstance(event_type, str):
        return str.__str__(event_type)  # a plain str, whatever subclass came in
    return None


def _report_unknown(name: str, event_details: Mapping[str, Any]) -> None:
    """Name the dropped keys once each; only runs with ``FLWR_TELEMETRY_LOGGING=1``."""
    keys: list[object]
    try:
        keys = list(itertools.islice(event_details, _MAX_REPORTED))
    except Exception:
        keys = [event_details]  # not iterable: say what it was
    unknown = sorted(
        {
            key[:_MAX_NAME] if isinstance(key, str) else f"<{type(key).__name__}>"
            for key in keys
            if not (isinstance(key, str) and key in _KNOWN)
        }
    )
    new = [key for key in unknown if key not in _reported]
    if not new or len(_reported) >= _MAX_REPORTED:
        return
    _reported.update(new)
    from . import _log

    _log.enable()  # one handler, whichever thread comes first
    _log.log(f"event {name}: details not sent (unknown to this package): {', '.join(new)}")


__all__ = ["DISABLED", "IGNORED", "QUEUED", "EventType", "event"]
