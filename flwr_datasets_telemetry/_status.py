"""`status`: whether telemetry is on and why, for the command line and for hosts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _runtime

if TYPE_CHECKING:
    from pathlib import Path


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
