"""`flush` and `disable`: what hosts, notebooks and tests call (`status`: see `_status`)."""

from __future__ import annotations

from . import _runtime


def flush(timeout: float = 5.0) -> bool:
    """Wait up to ``timeout`` seconds until every event so far is dealt with.

    Returns ``True`` when nothing is pending and no event was dropped or failed to
    deliver since the last flush; ``False`` otherwise. Disabled telemetry has nothing
    to deliver: ``True`` at once.
    """
    runtime = _runtime.STATE.current
    if runtime is None:
        return True
    try:
        return runtime.flush(timeout)
    except Exception:
        return False


def disable() -> None:
    """Turn telemetry off for the rest of this process, as if disabled at start.

    Events not yet sent are dropped, no thread, file or socket is made afterwards, and
    nothing turns it back on (forked children inherit the choice). Idempotent, safe
    from any thread; never raises.
    """
    try:
        state = _runtime.STATE
        state.disabled_by = "disable()"
        runtime, state.current = state.current, None
        if runtime is not None:
            runtime.close()
            runtime.retract()
    except BaseException:
        pass
