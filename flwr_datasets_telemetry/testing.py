"""Capture events in memory, for the tests of a library that uses `track`.

``with capture_events() as captured:`` routes every event of this process into
``captured``: the real collectors build each payload, but nothing is sent, nothing is
written to disk, no entry-point plugin is loaded and the ``hardware`` collector is
skipped. The pytest fixture ``telemetry_events`` (see `pytest_plugin`) wraps it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from . import _runtime
from ._builtins import BUILTINS
from ._config import Config
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


class CapturedEvents:
    """The payloads of the events emitted while capturing, oldest first."""

    def __init__(self, runtime: _runtime.Runtime) -> None:
        self._runtime = runtime
        self._payloads: list[dict[str, Any]] = []

    @hookimpl
    def telemetry_send(self, payload: Mapping[str, Any]) -> bool:
        self._payloads.append(dict(payload))
        return True

    def payloads(
        self, event_type: str | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Every payload so far (of ``event_type`` if given), once pending ones are built."""
        self._runtime.flush(timeout)
        return [p for p in self._payloads if event_type in (None, p["event_type"])]

    def details(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The ``event_details`` of each payload, the part a library's tests check."""
        return [p["event_details"] for p in self.payloads(event_type)]


@contextlib.contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Capture every event of this process while the block runs (not thread-local;
    blocks on several threads must nest, as a ``with`` does)."""
    # No probe, and no transport but the capture's.
    blocked = frozenset({"hardware", *(b.name for b in BUILTINS if b.transport)})
    config = Config(home=None, blocked=blocked, autoload=False, in_process=True)
    plugins: dict[str, object] = {}
    runtime = _runtime.Runtime(config, _runtime.random_uuid(), plugins)
    captured = CapturedEvents(runtime)
    plugins["capture"] = captured
    previous = _runtime.STATE.current
    _runtime.STATE.current = runtime
    try:
        yield captured
    finally:
        runtime.flush(10.0)
        if _runtime.STATE.current is runtime:  # else `disable()` in the block: it sticks
            _runtime.STATE.current = None if _runtime.STATE.disabled_by else previous
        if _runtime.STATE.disabled_by and previous is not None:
            try:  # what `disable()` does to the runtime it finds, done for the one it missed
                previous.close()
                previous.retract()
            except BaseException:
                pass
        runtime.close()
