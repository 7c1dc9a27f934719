"""`flush`, `disable` and `status`: what hosts, notebooks, tests and the command line ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _runtime

if TYPE_CHECKING:
    from pathlib import Path


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


@dataclass(frozen=True)
class Status:
    """Whether telemetry is on, why, and what it would use."""

    enabled: bool
    #: What decided: the variable, the plugin and its distribution, or the default.
    reason: str
    logging: bool
    endpoint: str
    source_file: Path | None
    #: The stored source id, or ``None`` if none exists yet (nothing is created).
    source: str | None
    #: Plugin name -> the distribution (name and version) it comes from.
    plugins: dict[str, str]
    blocked: tuple[str, ...]
    problems: tuple[str, ...]
    #: Every source consulted, in order: ``(source, what it says)``.
    sources: tuple[tuple[str, str], ...] = ()
    #: Events waiting in the outbox, and those dropped so far by reason.
    waiting: int = 0
    dropped: dict[str, int] | None = None


def status() -> Status:
    """Load the plugins (on this thread) and report the decision; writes nothing."""
    from . import _outbox
    from ._identity import read_source
    from ._pipeline import decide
    from ._plugins import load_plugins

    config = _runtime.read_config_safely()  # now, not at import: a choice may have changed
    plugins = load_plugins(config)
    decision = decide(config, plugins)
    plugins.add_builtins()
    return Status(
        enabled=decision.enabled,
        reason=decision.reason,
        logging=config.logging,
        endpoint=config.endpoint,
        source_file=config.source_file,
        source=read_source(config.source_file),
        plugins=dict(plugins.origins),
        blocked=tuple(sorted(config.blocked)),
        problems=config.problems + tuple(plugins.problems),
        sources=decision.sources,
        waiting=len(_outbox.waiting(config.home)),
        dropped=_outbox.dropped(config.home),
    )
