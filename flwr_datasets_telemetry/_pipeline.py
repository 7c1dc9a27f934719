"""The background half: decide, build, log and deliver one event at a time.

A `Pipeline` is made on the sender thread at the first event (or on the main thread by
the command line) and serves the rest of the process.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from . import _choice, _log, _runtime
from ._identity import source_id
from ._payload import assemble, dumps
from ._plugins import Plugins, describe, load_plugins

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from ._call import TrackedCall
    from ._config import Config

#: Distinct events remembered for de-duplication; beyond that, repeats are sent again.
MAX_SENT: Final = 10_000


@dataclass(frozen=True)
class Decision:
    """Whether telemetry is on, what decided it, and every source that was asked."""

    enabled: bool
    #: ``"by default"``, ``"by DO_NOT_TRACK=1"``, ``"by plugin 'noop' (dist 1.0)"``...
    reason: str
    #: ``(source, what it says)`` for each variable, setting and plugin consulted.
    sources: tuple[tuple[str, str], ...] = ()


def decide(config: Config, plugins: Plugins | None) -> Decision:
    """Off wins: `disable()`, variables and settings, then any plugin answering False."""
    sources = list(config.sources)
    disabled_by = _runtime.STATE.disabled_by
    sources.append(("disable()", "called" if disabled_by else "not called"))
    if disabled_by:
        return Decision(False, f"by {disabled_by}", tuple(sources))
    if not config.enabled:
        return Decision(False, f"by {config.disabled_by}", tuple(sources))
    if plugins is not None:
        for name, origin in plugins.off_switches:
            sources.append((f"plugin {name!r} ({origin}, not loaded otherwise)", "False"))
            return Decision(False, f"by plugin {name!r} ({origin})", tuple(sources))
        verdict: Decision | None = None
        for plugin, answer in plugins.answers("telemetry_enabled"):
            origin = plugins.origins.get(plugin, "unknown distribution")
            sources.append((f"plugin {plugin!r} ({origin})", repr(answer)))
            if answer is False:
                return Decision(False, f"by plugin {plugin!r} ({origin})", tuple(sources))
            if answer is not None and verdict is None:
                verdict = Decision(True, f"by plugin {plugin!r} ({origin})")
        if verdict is not None:
            return Decision(True, verdict.reason, tuple(sources))
    return Decision(True, "by default", tuple(sources))


class Pipeline:
    """Plugins, identity and de-duplication of one process."""

    def __init__(
        self,
        config: Config,
        cluster: str,
        extra_plugins: Mapping[str, object] | None = None,
        *,
        preview: bool = False,
    ) -> None:
        if config.logging:
            _log.enable()
            for problem in config.problems:
                _log.log(problem)
        self.config = config
        self.cluster = cluster
        self.plugins = load_plugins(config, extra_plugins)
        self.decision = decide(config, self.plugins)
        if self.decision.enabled or config.logging or preview:
            self.plugins.add_builtins(transports=not preview)
        #: Whether files may be created: only for events that are really sent.
        self.writable = self.decision.enabled and not preview
        self.preview = preview
        self._source: str | None = None
        self._sent: set[str] = set()
        if config.logging and not self.decision.enabled:
            _log.log(
                f"telemetry is disabled {self.decision.reason}: payloads are shown, never sent"
            )

    @property
    def home(self) -> Path | None:
        """Where collectors may keep files (read-only in a preview); none while disabled."""
        return self.config.home_path if self.writable or self.preview else None

    def source(self) -> str | None:
        if self._source is None:
            self._source = source_id(self.config.source_file, create=self.writable)
        return self._source

    def build(self, call: TrackedCall, notes: list[str] | None = None) -> dict[str, Any]:
        """The payload for ``call``, without its date; what was dropped goes to ``notes``."""
        answers = self.plugins.answers(
            "telemetry_collect", call=call, home=self.home, dry_run=self.preview
        )
        identity = {"source": self.source(), "cluster": self.cluster}
        return assemble(call.event_type, call.details, answers, identity, notes)

    @staticmethod
    def stamp(payload: dict[str, Any]) -> bytes:
        """Date the payload and turn it into the bytes that are logged and sent."""
        payload["context"]["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        return dumps(payload)

    def still_enabled(self) -> bool:
        """Whether no opt-out appeared since the decision (`disable()`, a variable,
        a settings file); after one, this process stays off."""
        if not self.decision.enabled:
            return False
        if self.config.in_process:
            return True
        reason = _runtime.STATE.disabled_by or _choice.late_opt_out(self.config.home)
        if reason is None:
            return True
        self.decision = Decision(False, f"by {reason}", self.decision.sources)
        _log.log(f"telemetry turned off by {reason}: events not yet sent are dropped")
        if not self.config.logging:
            _runtime.deactivate()
        return False

    def handle(self, call: TrackedCall) -> bool:
        """Build, de-duplicate, log and send one call; True if nothing was lost."""
        if not self.still_enabled() and not self.config.logging:
            return True
        notes: list[str] = []
        payload = self.build(call, notes)
        for note in notes:
            _log.log(f"event {call.event_type}: {note}")
        key = json.dumps(payload, sort_keys=True)
        if key in self._sent:
            return True
        if len(self._sent) < MAX_SENT:
            self._sent.add(key)
        body = self.stamp(payload)
        _log.log(f"event {call.event_type}: {body.decode()}")
        if not self.still_enabled():
            return True
        return self.send(call.event_type, body, payload)

    def send(self, event_type: str, body: bytes, payload: dict[str, Any]) -> bool:
        """Offer the event to each transport until one answers; log that answer."""
        kwargs = {"body": body, "payload": payload, "endpoint": self.config.endpoint}
        for impl in self.plugins.implementations("telemetry_send"):
            try:
                answer = self.plugins.call(impl, kwargs)
            except BaseException as error:
                _log.log(
                    f"event {event_type}: not delivered by {impl.plugin_name!r}: {describe(error)}"
                )
                return False
            if answer is not None:
                outcome = "delivered" if answer else "not delivered"
                _log.log(f"event {event_type}: {outcome} by {impl.plugin_name!r}")
                return bool(answer)
        _log.log(f"event {event_type}: not delivered: no transport answered")
        return False
