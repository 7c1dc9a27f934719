"""The per-process hand-off between the caller's thread and the background sender.

The caller's side is `Runtime.submit`: a dictionary look-up that drops a call already
seen, else an append to a bounded deque. Everything else — loading plugins, running
collectors, reading the source file, HTTP — happens on the one sender thread, started
with the first event (never from `atexit`: that fails on Python 3.12).

Exit: `_at_exit` waits for pending events until a deadline shared by every exit hook
(``FLWR_TELEMETRY_EXIT_TIMEOUT``, default 0.8 s), then drops what is left. It is
registered with `atexit` and, in `multiprocessing` children (which end with
``os._exit``), as a `multiprocessing.util.Finalize` callback.

Fork: the child gets a fresh `Runtime` (queue, lock, thread) that keeps the cluster id.
`IMPORT_GUARD` is held by the sender while it imports modules, and taken around
``os.fork`` so a child never inherits a half-finished import.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque

from ._config import Config, read_config

TYPE_CHECKING = False  # see `_config`: typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping
    from typing import Final

    from ._call import TrackedCall

    #: The background half, made on the sender thread at the first event.
    Handler = Callable[[TrackedCall], bool]

#: Events waiting for the sender; more are dropped and counted.
MAX_QUEUE: Final = 1000
#: Distinct calls remembered on the caller's side; the memory is cleared when full.
MAX_SEEN_CALLS: Final = 4096

IMPORT_GUARD = threading.Lock()
#: Set when the interpreter starts to exit: background waits (the hardware probe) stop.
exiting = threading.Event()


def random_uuid() -> str:
    """A random (version 4) UUID string, without importing `uuid` (5 ms) at start-up."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Runtime:
    """Queue, counters and sender thread of one process."""

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
        self._wake = threading.Event()
        self._cond = threading.Condition(threading.Lock())
        self._accepted = 0
        self._done = 0
        self._lost_at_last_flush = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        self._exit_deadline: float | None = None

    # -- caller's thread -------------------------------------------------------------

    def submit(self, call: TrackedCall, key: Hashable | None) -> None:
        """Hand one call over; O(1), no I/O, never blocks on the sender."""
        with self._cond:
            if self._closing:
                return
            if self._thread is None:
                self._start()
            if len(self._queue) >= MAX_QUEUE:
                self.dropped += 1
                return
            self._queue.append(call)
            self._accepted += 1
            if key is not None:
                if len(self.seen_calls) >= MAX_SEEN_CALLS:
                    self.seen_calls.clear()
                self.seen_calls[key] = None
        self._wake.set()

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="flwr-datasets-telemetry", daemon=True)
        thread.start()
        self._thread = thread
        _register_exit_hooks()

    # -- any thread ------------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until everything accepted so far is dealt with; True if none was lost."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            target = self._accepted
            while self._done < target:
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
        if self._thread is not None:
            self.flush(self._exit_deadline - time.monotonic())
        self.close()

    def close(self) -> None:
        """Drop what is queued and let the sender thread end."""
        with self._cond:
            self._closing = True
            self.dropped += len(self._queue)
            self._done += len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        self._wake.set()

    # -- sender thread ---------------------------------------------------------------

    def _run(self) -> None:
        handler: Handler | None = None
        while not self._closing:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._cond:
                    if not self._queue:
                        break
                    call = self._queue.popleft()
                delivered = False
                if not self._closing:
                    try:
                        if handler is None:
                            handler = _make_handler(self)
                        delivered = handler(call)
                    except BaseException:
                        delivered = False
                with self._cond:
                    self._done += 1
                    if not delivered:
                        self.failed += 1
                    self._cond.notify_all()


def _make_handler(runtime: Runtime) -> Handler:
    with IMPORT_GUARD:
        from ._pipeline import Pipeline

        pipeline = Pipeline(runtime.config, runtime.cluster, runtime.extra_plugins)
    if not pipeline.decision.enabled and not runtime.config.logging:
        deactivate()  # a plugin said no: later calls cost nothing,
        runtime.close()  # and this thread ends
    return pipeline.handle


# -- the process-wide state ------------------------------------------------------------

CONFIG: Final = read_config()
#: ``None`` when tracked calls need no work at all (disabled, logging off).
current: Runtime | None = Runtime(CONFIG, random_uuid()) if CONFIG.active else None
_hooks_registered_in: list[int] = []
_fork_guard_held: list[bool] = []


def deactivate() -> None:
    """Make every later tracked call a no-op (a plugin turned telemetry off)."""
    global current
    current = None


def _at_exit() -> None:
    exiting.set()
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
    _fork_guard_held.append(IMPORT_GUARD.acquire(timeout=1.0))


def _after_fork_in_parent() -> None:
    if _fork_guard_held and _fork_guard_held.pop():
        IMPORT_GUARD.release()


def _after_fork_in_child() -> None:
    global current, IMPORT_GUARD, exiting
    _fork_guard_held.clear()
    IMPORT_GUARD = threading.Lock()
    exiting = threading.Event()
    if current is not None:
        current = Runtime(current.config, current.cluster, current.extra_plugins)


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
