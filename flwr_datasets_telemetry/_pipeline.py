"""The background half: decide, build, log and deliver one event at a time.

A `Pipeline` is made on the sender thread at the first event (or on the main thread by
the command line) and serves the rest of the process.
"""

from __future__ import annotations

import contextlib
import json
import pathlib  # noqa: F401 - for `Config.home_path`: imported here, under the fork guard
import time
import zlib
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from . import _choice, _delivery, _lifecycle, _log, _notice, _runtime
from ._identity import source_id
from ._payload import assemble, dumps
from ._plugins import Plugins, load_plugins

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from ._call import TrackedCall
    from ._config import Config

#: Distinct events remembered for de-duplication; beyond that, repeats are sent again.
MAX_SENT: Final = 10_000


def utc_now() -> str:
    """Now, as ``datetime.now(timezone.utc).isoformat()`` writes it (microseconds always
    shown), without importing `datetime` (3 ms in a bare interpreter)."""
    now = time.time_ns()
    seconds, micro = divmod(now // 1000, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micro:06d}+00:00"


class Decision(NamedTuple):
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


class Ready(NamedTuple):
    """An event built and dated, ready to be handed over."""

    event_type: str
    body: bytes
    payload: dict[str, Any]


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
            self.plugins.add_builtins(transports=False)  # see `send`
        self._transports_added = False
        #: A transport registered in-process (a test capture) delivers every event here.
        self._in_process = _delivery.in_process_only(self.plugins)
        #: Outbox entries this process made, so that an opt-out can take them back.
        self._handed_over: list[str] = []
        #: Those an uploader was started or found for: `flush` waits for them.
        self._with_uploader: list[tuple[str, bytes]] = []
        #: Whether files may be created: only for events that are really sent.
        self.writable = self.decision.enabled and not preview
        self.preview = preview
        self._source: str | None = None
        #: Digests of the payloads sent (undated): 10,000 of them in 0.5 MiB, where the
        #: payloads themselves took 8 MiB. Two distinct payloads of one process sharing
        #: a digest would lose the second: `hash` and a CRC-32 together are 96 bits on
        #: 64-bit builds (odds about 1 in 10^20 at the bound), 64 on 32-bit ones.
        self._sent: set[int] = set()
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
            notice = None if self.config.local_only or self.config.in_process else _notice.show
            self._source = source_id(
                self.config.source_file, create=self.writable, on_created=notice
            )
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
        payload["context"]["date"] = utc_now()
        return dumps(payload)

    def still_enabled(self) -> bool:
        """Whether no opt-out appeared since the decision (`disable()`, a variable,
        a settings file); after one, this process stays off. A local-only choice made
        since (variable or setting) makes this process local-only for good."""
        if not self.decision.enabled:
            return False
        if self.config.in_process:
            return True
        reason, local = _runtime.STATE.disabled_by, None
        if reason is None:
            reason, local = _choice.late_choice(self.config.home)
        if reason is None:
            if local is not None and not self.config.local_only:
                self._go_local(local)
            return True
        self.decision = Decision(False, f"by {reason}", self.decision.sources)
        self.writable = False  # no id, notice, cache or probe from now on
        _log.log(f"telemetry turned off by {reason}: events not yet sent are dropped")
        self.retract()
        if not self.config.logging:
            _runtime.deactivate()
        return False

    def _go_local(self, reason: str) -> None:
        """Record this process's later events instead of handing them over, and take
        back those it put in the outbox: any uploader of the home would send them."""
        self.config.local_only = True  # the runtime's config: the process's for good
        _log.log(f"telemetry set to local-only by {reason}: events are recorded, never uploaded")
        self.retract(record_as=_delivery.RECORDED_LOCALLY)

    def handle(
        self,
        calls: Sequence[TrackedCall],
        in_outbox: Callable[[], None] | None = None,
        written: Callable[[int], None] | None = None,
    ) -> int:
        """Build, de-duplicate, log and send calls; how many were lost.

        The opt-outs are read once before building and once before handing over, for
        all of ``calls`` (a burst at exit is one pass); a call whose building fails
        costs only itself. ``written`` is told how many are in the outbox (see
        `_delivery.hand_over_many`), ``in_outbox`` called once they are also within an
        uploader's reach.
        """
        if not self.still_enabled() and not self.config.logging:
            return 0
        ready: list[Ready] = []
        lost = 0
        for call in calls:
            try:
                event = self._prepare(call)
            except BaseException as error:  # (collectors are isolated: this is anything else)
                _log.log(f"event {call.event_type!r} lost: {type(error).__name__}: {error}")
                lost += 1
                continue
            if event is not None:
                ready.append(event)
        if not ready or not self.still_enabled():
            return lost
        return lost + self.send(ready, in_outbox, written)

    def _prepare(self, call: TrackedCall) -> Ready | None:
        """Build, log and date ``call``; ``None`` if it repeats an event already sent."""
        notes: list[str] | None = [] if self.config.logging else None  # seen only then
        payload = self.build(call, notes)
        for note in notes or ():
            _log.log(f"event {call.event_type}: {note}")
        text = json.dumps(payload, sort_keys=True)
        key = hash(text) ^ (zlib.crc32(text.encode()) << 64)
        if key in self._sent:
            return None
        if len(self._sent) < MAX_SENT:
            self._sent.add(key)
        body = self.stamp(payload)
        _log.log(f"event {call.event_type}: {body.decode()}")
        return Ready(call.event_type, body, payload)

    def send(
        self,
        events: list[Ready],
        in_outbox: Callable[[], None] | None = None,
        written: Callable[[int], None] | None = None,
    ) -> int:
        """Hand the events to the outbox and its uploader; where that cannot be (no
        usable home, no uploader possible, an in-process transport), deliver here.
        How many were lost: dropped, or not delivered in-process."""
        endpoint = self.config.endpoint
        lost = 0
        if not self._in_process:
            was_local = self.config.local_only
            outcomes = _delivery.hand_over_many(
                self.config,
                [event.body for event in events],
                endpoint,
                appended=self._handed_over,
                sent=self._with_uploader,
                in_outbox=in_outbox,
                written=written,
            )
            if _runtime.STATE.disabled_by:  # `disable()` came while handing over
                self.retract()
                return 0
            if self.config.local_only and not was_local:  # so did local-only mode
                self.retract(record_as=_delivery.RECORDED_LOCALLY)
            del self._handed_over[: -_delivery.MAX_RETRACTABLE]
            del self._with_uploader[: -_delivery.MAX_RETRACTABLE]
            here = []
            for event, outcome in zip(events, outcomes, strict=True):
                if outcome is None:
                    here.append(event)
                    continue
                _log.log(f"event {event.event_type}: {outcome}")
                lost += outcome.startswith("dropped")
            events = here
            if events and self.config.local_only:  # came during the hand-over: record them
                recorded = _delivery.hand_over_many(self.config, [e.body for e in events], endpoint)
                for event, outcome in zip(events, recorded, strict=True):
                    _log.log(f"event {event.event_type}: {outcome}")
                    lost += outcome is None or outcome.startswith("dropped")
                return lost
        if events and not self._transports_added:  # requests is imported only here
            self._transports_added = True
            _lifecycle.import_logging()  # urllib3 imports it: see there
            self.plugins.add_builtins(collectors=False)
        for event in events:
            result = _delivery.deliver(self.plugins, event.body, event.payload, endpoint)
            _log.log(f"event {event.event_type}: {result.text}")
            lost += not result.delivered
        return lost

    def await_delivery(self, timeout: float) -> bool:
        """Wait until the uploader is done with this process's events (for `flush`);
        after `disable()`, none is awaited (and no file looked at)."""
        if _runtime.STATE.disabled_by:
            return True
        return _delivery.await_delivery(
            self.config.home, self._with_uploader, timeout, self.config.endpoint
        )

    def retract(self, record_as: str | None = None) -> None:
        """After an opt-out (or local-only mode, which records them as ``record_as``),
        take back what this process put in the outbox; `flush` no longer waits for it."""
        in_flight: list[str] = []
        taken = set(_delivery.retract(self.config.home, self._handed_over, record_as, in_flight))
        if taken:
            for entry in [e for e in self._with_uploader if e[0] in taken]:
                with contextlib.suppress(ValueError):  # one by one: the sender may append
                    self._with_uploader.remove(entry)
            unsent = len(taken) - len(in_flight)
            _log.log(f"{unsent} event(s) taken back out of the outbox, never sent")
            if in_flight:
                _log.log(
                    f"{len(in_flight)} event(s) taken back from the uploader while it was "
                    "sending them: never tried again, but they may have reached the endpoint"
                )
