"""The hooks a plugin may implement, with the contract of each.

A plugin is a module or object holding functions marked with `hookimpl`; it is
registered under its entry-point name in the ``flwr_datasets_telemetry`` group. The
built-ins (``version``, ``platform``, ``hardware``, ``names``, ``environment`` and
``http``) are registered under their names the same way, though not through entry
points, so an entry point of the same name replaces one. Like any pluggy hook, an
implementation may accept any subset
of the arguments shown. Each implementation is called on its own: one that raises or
returns something unusable loses its own answer and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pluggy

from ._builtins import GROUP

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from ._call import TrackedCall

PROJECT_NAME: Final = GROUP  #: pluggy's project name: the entry-point group

hookspec: Final = pluggy.HookspecMarker(PROJECT_NAME)
#: The marker for plugin functions: ``@hookimpl def telemetry_collect(call): ...``.
hookimpl: Final = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def telemetry_collect(
    call: TrackedCall, home: Path | None, dry_run: bool
) -> Mapping[str, Any] | None:
    """Return facts for one event, or ``None`` to add nothing.

    Runs on the background sender thread (on the main thread for the
    ``preview`` command), once per tracked call that is not an exact repeat, after
    the call has finished. ``call`` is a `TrackedCall`: the event type, the module,
    the allow-listed arguments, the outcome and the maintainer's details. Arguments
    are snapshots taken at the call: strings, numbers, plain lists and dicts, and for
    any other object an `ObjectState` (``type_name``, its own ``attributes``).
    ``home`` is a folder where the collector may keep a cache, or ``None`` when it must
    not touch any file.
    ``dry_run`` is ``True`` for the ``preview`` command: ``home`` is then given for
    reading caches only — answer from what is at hand, write nothing, start nothing.

    The mapping lands in the payload's ``context`` under the plugin's name (the
    built-ins map to ``package``, ``platform``, ``hw``, ``env``; ``names`` fills
    ``event_details``). Values must be JSON scalars, lists or mappings; anything else
    is dropped, strings are capped, and no plugin can write outside its own key.
    """


@hookspec(firstresult=True)
def telemetry_enabled() -> bool | None:
    """Return ``False`` to turn telemetry off for the whole process, else ``None``.

    Runs once per process on the background sender thread before the first event is
    built (and on the main thread for the ``status`` command). The first non-``None``
    answer wins; answering ``False`` is all a no-op plugin needs to do.
    """


@hookspec(firstresult=True)
def telemetry_send(body: bytes, payload: Mapping[str, Any], endpoint: str) -> bool | None:
    """Deliver one event; return ``True`` once delivered, ``None`` to let the next try.

    Runs in the detached uploader process (on the sender thread where delivery is
    in-process), only when telemetry is enabled, once per distinct event — and again
    for the same event, up to hours later, after a failure worth another try.
    ``body`` is the exact JSON that was logged; ``payload`` is the same data as a
    mapping; ``endpoint`` is the ``FLWR_TELEMETRY_ENDPOINT`` of the host that made the
    event. Raise, or return ``False``, when delivery failed; an exception may say how,
    with an ``int`` attribute ``status`` (the HTTP status: 5xx, 408 and 429 are tried
    again later) or a ``bool`` attribute ``unreachable`` (present: tried again later).
    The first non-``None`` answer wins; the built-in ``http`` transport runs last, so
    a plugin can redirect delivery.
    """
