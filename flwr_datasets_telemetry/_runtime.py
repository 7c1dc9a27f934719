"""The per-process hand-off between the caller's thread and the background sender.

The caller's side is `Runtime.submit`: a dictionary look-up that drops a call already
seen, else an append to a bounded deque. Everything else — loading plugins, running
collectors, reading the source file, HTTP — happens on the one sender thread, which an
event starts when it finds none running and which ends when the queue is empty (never
started from `atexit`: that fails on Python 3.12).

Exit: `_at_exit` waits for pending events until a deadline shared by every exit hook
(``FLWR_TELEMETRY_EXIT_TIMEOUT``, default 0.8 s), then drops what is left. It is
registered with `atexit` and, in `multiprocessing` children (which end with
``os._exit``), as a `multiprocessing.util.Finalize` callback.

Fork: the child gets a fresh `Runtime` (queue, lock, thread) that keeps the cluster id.
`IMPORT_GUARD` is held by the sender while it imports modules, and taken (waiting at
most a second) around ``os.fork`` so a child never inherits a half-finished import; a
child forked when that wait ran out stays silent.
"""

from __future__ import annotations

import _thread
import atexit
import os
import sys
import time
from collections import deque

from ._config import Config, read_config

TYPE_CHECKING = False  # see `_config`: typing is not imported at run time
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Hashable, Mapping
    from typing import Final

    from ._call import TrackedCall

    #: The background half, made on the sender thread at the first event.
    Handler = Callable[[TrackedCall], bool]

#: Events waiting for the sender; more are dropped and counted.
MAX_QUEUE: Final = 1000
#: Distinct calls remembered on the caller's side; the memory is cleared when full.
MAX_SEEN_CALLS: Final = 4096

# `threading` is imported with the first event, not with this package: a bare
# `_thread` lock is all that is needed before then.
IMPORT_GUARD = _thread.allocate_lock()
#: True once the interpreter starts to exit: background waits (the hardware probe) stop.
exiting = False


def random_uuid() -> str:
    """A random (version 4) UUID string, without importing `uuid` (5 ms) at start-up."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Runtime:
    """Queue, counters and sender thread of one process.

    The sender thread lives only while there is work: it starts with an event that
    finds the queue empty and ends when the queue is empty again. Between bursts the
    process has no extra thread, so a host that forks then forks a single-threaded
    process (Python 3.12 warns about forking a multi-threaded one).
    """

    def __init__(
        self, config: Config, cluster: str, extra_plugins: Mapping[str, object] | None = None
    ) -> None:
        self.config = config
        self.cluster = cluster
        #: Plugins registered without entry points (the test capture uses this).
        self.extra_plugins = extra_plugins
        self.seen_calls: dict[Hashable, None] = {}
        self.dropped = 0
        self.failed = 0
        self._queue: deque[TrackedCall] = deque()
        self._lock = _thread.allocate_lock()
        #: Made on `_lock` with the first thread: no `threading` import before that.
        self._cond: threading.Condition | None = None
        self._sending = False
        self._handler: Handler | None = None
        self._accepted = 0
        self._done = 0
        self._lost_at_last_flush = 0
        self._closing = False
        self._exit_deadline: float | None = None

    # -- caller's thread -------------------------------------------------------------

    def submit(self, call: TrackedCall, key: Hashable | None) -> None:
        """Hand one call over; O(1), no I/O, never waits for the sender."""
        with self._lock:
            if self._closing:
                return
            if len(self._queue) >= MAX_QUEUE:
                self.dropped += 1
                return
            if not self._sending:
                self._start()
            self._queue.append(call)
            self._accepted += 1
            if key is not None:
                if len(self.seen_calls) >= MAX_SEEN_CALLS:
                    self.seen_calls.clear()
                self.seen_calls[key] = None

    def _start(self) -> None:
        """Start the sender thread (with `_lock` held).

        The first time, `logging` is imported here, on the caller's thread, if the
        host has not imported it yet (a few ms): it registers fork handlers when
        imported, and if the sender imported it (through urllib3) while another thread
        forks, its handlers would run unbalanced and print an error in the host's
        terminal.
        """
        import logging  # noqa: F401 - imported for its fork handlers, see above
        import threading

        _register_fork_guard()

        if self._cond is None:
            self._cond = threading.Condition(self._lock)
        thread = threading.Thread(
            target=self._run, args=(self._cond,), name="flwr-datasets-telemetry", daemon=True
        )
        thread.start()  # may raise at interpreter shutdown: then nothing is marked
        self._sending = True
        _register_exit_hooks()

    # -- any thread ------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until everything accepted so far is dealt with; True if none was lost."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            target = self._accepted
            while self._done < target and self._cond is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            lost = self.dropped + self.failed
            clean = lost == self._lost_at_last_flush
            self._lost_at_last_flush = lost
            return clean

    def at_exit(self) -> None:
        """Give pending events what is left of the exit budget, then drop them."""
        if self._exit_deadline is None:
            self._exit_deadline = time.monotonic() + self.config.exit_timeout
        self.flush(self._exit_deadline - time.monotonic())
        self.close()

    def close(self) -> None:
        """Drop what is queued and let the sender thread end."""
        with self._lock:
            self._closing = True
            self.dropped += len(self._queue)
            self._done += len(self._queue)
            self._queue.clear()
            if self._cond is not None:
                self._cond.notify_all()

    # -- sender thread ---------------------------------------------------------------

    def _run(self, cond: threading.Condition) -> None:
        while True:
            with cond:
                if self._closing or not self._queue:
                    self._sending = False
                    cond.notify_all()
                    return
                call = self._queue.popleft()
            delivered = False
            try:
                if self._handler is None:
                    self._handler = _make_handler(self)
                delivered = self._handler(call)
            except BaseException:
                delivered = False
            with cond:
                self._done += 1
                if not delivered:
                    self.failed += 1
                cond.notify_all()


def _make_handler(runtime: Runtime) -> Handler:
    with IMPORT_GUARD:
        from ._pipeline import Pipeline

        pipeline = Pipeline(runtime.config, runtime.cluster, runtime.extra_plugins)
    if not pipeline.decision.enabled and not runtime.config.logging:
        deactivate()  # a plugin said no: later calls cost nothing,
        runtime.close()  # and this thread ends
    return pipeline.handle


# -- the process-wide state ------------------------------------------------------------


def _read_config_safely() -> Config:
    try:
        return read_config()
    except Exception:  # an environment nobody foresaw: stay off rather than raise
        return Config(disabled_by="an unreadable environment")


CONFIG: Final = _read_config_safely()
#: ``None`` when tracked calls need no work at all (disabled, logging off).
current: Runtime | None = Runtime(CONFIG, random_uuid()) if CONFIG.active else None
_hooks_registered_in: list[int] = []
_fork_guard_held: list[bool] = []


def deactivate() -> None:
    """Make every later tracked call a no-op (a plugin turned telemetry off)."""
    global current
    current = None


def _at_exit() -> None:
    global exiting
    exiting = True
    runtime = current
    if runtime is not None:
        try:
            runtime.at_exit()
        except BaseException:
            pass


def _register_exit_hooks() -> None:
    pid = os.getpid()
    if pid in _hooks_registered_in:
        return
    _hooks_registered_in.append(pid)
    atexit.register(_at_exit)
    if "multiprocessing" in sys.modules:
        # Children started by fork or forkserver leave through os._exit, skipping
        # atexit; multiprocessing runs its own finalizers first.
        from multiprocessing import util

        util.Finalize(None, _at_exit, exitpriority=100)


def _before_fork() -> None:
    # Waits (bounded) for the sender to finish an import. Registered after `logging`
    # was imported, so it runs before logging's own handler, which takes the logging
    # lock that the sender's imports need (handlers run in reverse order).
    _fork_guard_held.append(IMPORT_GUARD.acquire(timeout=1.0))


def _after_fork_in_parent() -> None:
    if _fork_guard_held and _fork_guard_held.pop():
        IMPORT_GUARD.release()


def _after_fork_in_child() -> None:
    global current, IMPORT_GUARD, exiting
    forked_mid_import = bool(_fork_guard_held) and not _fork_guard_held[-1]
    _fork_guard_held.clear()
    IMPORT_GUARD = _thread.allocate_lock()
    exiting = False
    if current is not None:
        # A child forked while the sender was importing (the guard timed out) stays
        # silent rather than touch half-imported modules.
        fresh = Runtime(current.config, current.cluster, current.extra_plugins)
        current = None if forked_mid_import else fresh


def _register_fork_guard() -> None:
    if not _fork_guard_registered and hasattr(os, "register_at_fork"):
        _fork_guard_registered.append(True)
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent)


_fork_guard_registered: list[bool] = []
if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
