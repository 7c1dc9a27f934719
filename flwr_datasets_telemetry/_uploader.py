"""The uploader: ``python -m flwr_datasets_telemetry._uploader HOME``.

Started detached by a host that found work and no uploader (see `_delivery`). It holds
``uploader.lock`` while it works, delivers every waiting event through the
``telemetry_send`` transports (one keep-alive session: the built-in ``http`` keeps its
own), each to the endpoint stored with it, and records each outcome. It reads the
configuration again before each event: an opt-out (variable, persistent setting,
plugin) or local-only mode that appeared since it started stops it before the next
send. Nothing is ever printed.

An endpoint that failed in a way worth another try (out of reach, 5xx, 429) is left
alone for a while — the back-off of `_delivery`, kept in a file for the whole home and,
in case that file cannot be written, in this run's memory too — and tried again when
the back-off ends, so that an outage ends with every event delivered even if no host
runs afterwards. The uploader sleeps meanwhile, still holding the lock, looking for new
events every `LOOK_EVERY` seconds. It sleeps ``FLWR_TELEMETRY_RETRY_WAIT`` seconds in
all at most, and not at all where the lock is not a real one (a file system without
locks: more uploaders may run there, none should linger); then it exits, and the first
host to run after the back-off starts a new one. It also exits `LINGER` seconds after
the outbox is empty, and when what is left cannot be sent now (an event that cannot be
claimed, say, on a read-only disk): never a busy loop.

Each event is claimed by renaming it before it is sent and deleted after: killed
mid-send, the claim grows stale and a later uploader sends the event again — twice
at worst, never half (a body cut short never makes a whole request).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Final

from . import _delivery, _files, _outbox
from ._config import read_config

if TYPE_CHECKING:
    from ._plugins import Plugins

#: How often (seconds) a waiting uploader looks for new events it can deliver now: an
#: event for another endpoint (hosts with different endpoints may share a home) waits
#: no longer than this behind one that backs off. A look is a folder listing.
LOOK_EVERY: Final = 1.0
#: How long (seconds) an uploader stays after the outbox is empty, and how often it
#: looks meanwhile: the hosts of a burst (a hundred workers started together) that
#: write after the first event went out find it still there and start no other.
LINGER: Final = 2.0
LINGER_LOOK: Final = 0.1


class Uploader:
    """One run over the outbox of one home."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.token = _outbox.random_token()
        self._plugins: Plugins | None = None
        #: Events looked at in this pass: each is tried at most once per pass.
        self.tried: set[str] = set()
        #: Endpoints not to try again in this pass (out of reach, failing, backing off).
        self.skipped: set[str] = set()
        #: Endpoint of each event left waiting, so that a later pass need not read it.
        self.endpoint_of: dict[str, str] = {}
        #: This run's own back-off: endpoint -> (next attempt, delay), monotonic clock.
        self.failing: dict[str, tuple[float, float]] = {}
        #: When the outbox was last found empty (monotonic), while lingering.
        self.empty_since: float | None = None
        #: Seconds slept so far: at most the patience in all.
        self.slept = 0.0
        self.stopped = False

    def plugins(self) -> Plugins | None:
        """The transports, loaded at the first event; ``None`` if a plugin says off."""
        if self._plugins is None:
            from ._pipeline import decide
            from ._plugins import load_plugins

            config = read_config()
            plugins = load_plugins(config)
            if not decide(config, plugins).enabled:
                return None
            plugins.add_builtins()
            self._plugins = plugins
        return self._plugins

    def allowed(self) -> Plugins | None:
        """The transports if sending is allowed right now, else ``None``."""
        config = read_config()
        if not config.enabled or config.local_only or _delivery.offline():
            return None
        return self.plugins()

    def run_once(self) -> None:
        """Deliver what waits, until nothing new is left to try."""
        with _outbox.opened(self.home) as (telemetry, outbox):
            _outbox.recover(outbox)
            _delivery.forget_old_backoffs(telemetry)
            _outbox.count_drops(telemetry, _outbox.trim(outbox, time.time()))
            while not self.stopped:
                names = [n for n in _outbox.waiting_names(outbox) if n not in self.tried]
                if not names:
                    return
                for name in names:
                    self.tried.add(name)
                    if not self.one(telemetry, outbox, name):
                        self.stopped = True
                        return

    def one(self, telemetry: int, outbox: int, name: str) -> bool:
        """Try to deliver one event; False if sending is no longer allowed."""
        known = self.endpoint_of.get(name)
        if known is not None and not self.due(telemetry, known):
            return True
        data = _outbox.read_regular(outbox, name, _outbox.MAX_ENTRY)
        if data is None:  # gone (another uploader took it), unreadable now, or not ours
            self.endpoint_of.pop(name, None)
            return True
        entry = _outbox.decode(name, data)
        if entry is None:  # read whole, and not a whole event of ours
            _outbox.drop_corrupt(telemetry, outbox, name)
            return True
        endpoint = entry.endpoint
        self.endpoint_of[name] = endpoint
        if not self.due(telemetry, endpoint):
            return True
        plugins = self.allowed()
        if plugins is None:
            return False
        claimed = _outbox.claim(outbox, name, self.token)
        if claimed is None:
            return True  # another uploader has it
        try:
            payload = _files.parse_json(entry.body)
        except ValueError:
            _outbox.finish(outbox, claimed)
            _outbox.count_drops(telemetry, {"corrupt": 1})
            return True
        if not _outbox.exists(outbox, claimed):  # its host took it back (an opt-out)
            return True
        outcome = _delivery.deliver(plugins, entry.body, payload, endpoint)
        if _outbox.exists(outbox, claimed):  # else `forget` ran meanwhile: record nothing
            _outbox.record(self.home, entry, outcome.text)  # first: `flush` reads it after
        if outcome.delivered or not outcome.retry:
            _outbox.finish(outbox, claimed)
            self.endpoint_of.pop(name, None)
        else:
            _outbox.release(outbox, claimed)
            self.skipped.add(endpoint)
        if outcome.retry:  # the file may not be writable: this run remembers too
            self.note_failing(endpoint)
            _delivery.note_failure(telemetry, endpoint)
        elif outcome.delivered:
            self.failing.pop(endpoint, None)
            _delivery.note_reachable(telemetry, endpoint)
        return True

    def due(self, telemetry: int, endpoint: str) -> bool:
        """Whether ``endpoint`` may be tried in this pass (no back-off holds it)."""
        if endpoint in self.skipped:
            return False
        if self.next_attempt(telemetry, endpoint) is not None:
            self.skipped.add(endpoint)
            return False
        return True

    def next_attempt(self, telemetry: int, endpoint: str) -> float | None:
        """When ``endpoint`` may be tried again (wall clock), if not now."""
        until = _delivery.backing_off(telemetry, endpoint)
        failing = self.failing.get(endpoint)
        left = 0.0 if failing is None else failing[0] - time.monotonic()
        if left > 0:
            until = max(until or 0.0, time.time() + left)
        return until

    def note_failing(self, endpoint: str) -> None:
        """A failure worth another try (after the transport's own retries): wait, doubling."""
        previous = self.failing.get(endpoint)
        delay = _delivery.FIRST_BACKOFF if previous is None else 2 * previous[1]
        delay = min(delay, _delivery.MAX_BACKOFF)
        self.failing[endpoint] = (time.monotonic() + delay, delay)

    def pause(self, patience: float) -> float | None:
        """Seconds to sleep before the next pass; ``None`` when this run is over.

        Over when nothing waits that a back-off holds (after `LINGER`, if the outbox
        is empty: what is left then could not be sent at all), or when waiting for the
        next attempt would take this run's sleep beyond ``patience`` seconds in all.
        """
        if self.stopped:
            return None
        try:
            with _outbox.opened(self.home) as (telemetry, outbox):
                waiting = set(_outbox.waiting_names(outbox))
                if waiting - self.tried:
                    self.empty_since = None
                    return 0.0  # events that arrived after the pass looked: look again
                for name in self.endpoint_of.keys() - waiting:  # sent, trimmed, forgotten
                    del self.endpoint_of[name]
                endpoints = set(self.endpoint_of.values())
                attempts = [self.next_attempt(telemetry, e) for e in endpoints]
        except OSError:
            return None
        if not waiting:
            return self.linger(patience)
        held = [attempt for attempt in attempts if attempt is not None]
        if not held:  # what waits was tried and could not be sent: not now
            return None
        wait = max(0.0, min(held) - time.time())
        if self.slept + wait > patience:
            return None  # the next attempt is beyond this run: a later host starts one
        return self.sleep_within(patience, min(wait, LOOK_EVERY))

    def linger(self, patience: float) -> float | None:
        """The next look while the outbox is empty, or ``None`` once `LINGER` is over."""
        now = time.monotonic()
        if self.empty_since is None:
            self.empty_since = now
        if now - self.empty_since >= LINGER:
            return None
        return self.sleep_within(patience, LINGER_LOOK)

    def sleep_within(self, patience: float, seconds: float) -> float | None:
        """``seconds``, counted against ``patience``; ``None`` if that would exceed it."""
        if self.slept + seconds > patience:
            return None
        self.slept += seconds
        return seconds

    def next_pass(self) -> None:
        """Forget what this pass skipped: events whose back-off ended are tried again."""
        self.tried.clear()
        self.skipped.clear()

    def more(self) -> bool:
        """Whether events this run has not tried arrived (checked after the lock is let go)."""
        if self.stopped:
            return False
        try:
            with _outbox.opened(self.home) as (_, outbox):
                return any(n not in self.tried for n in _outbox.waiting_names(outbox))
        except OSError:
            return False


def run(home: str) -> int:
    """Work while this process holds the lock; 0 when done, 1 if the home is unusable.

    Letting go of the lock, then looking once more, closes the gap in which a host
    appends, sees the lock still held and starts nobody.
    """
    uploader = Uploader(home)
    patience = read_config().retry_wait
    try:
        with _outbox.opened(home) as (telemetry, _):
            while True:
                taken = _delivery.take_lock(telemetry)
                _delivery.clear_start(telemetry)
                if taken is None:
                    return 0  # another uploader is at work
                lock, real = taken
                if not real:  # no locks here: others may start, none may linger
                    patience = 0.0
                try:
                    uploader.run_once()
                    while (pause := uploader.pause(patience)) is not None:
                        time.sleep(pause)  # an outage: wait it out, lock held
                        uploader.next_pass()
                        uploader.run_once()
                finally:
                    if lock >= 0:
                        os.close(lock)  # lets go of the lock
                if not uploader.more():
                    return 0
    except FileNotFoundError:
        return 0  # no outbox: nothing to do
    except OSError:
        return 1


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        return 2
    try:
        return run(argv[0])
    except BaseException:  # a detached process has nobody to tell
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
