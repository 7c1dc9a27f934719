"""The per-process hand-off between the caller's thread and the background sender.

The caller's side is `Runtime.submit`: it never waits. It appends to a bounded deque
(atomic under the GIL) and, when no sender runs, tries — without blocking — to start
one. A caller re-entered from a signal handler, a ``__del__``, a garbage-collector
callback, or at interpreter shutdown therefore cannot deadlock on our lock: if the
lock is taken, whoever holds it (or the sender, which re-checks the queue as it ends,
or the next `flush`) starts the work.

Everything else — loading plugins, running collectors, files, HTTP — happens on the one
sender thread, which an event starts when it finds none running and which ends when
the queue is empty (never started from `atexit`: that fails on Python 3.12). It is a
bare `_thread` thread: `threading.Thread.start` takes `threading`'s own locks, which a
signal handler may find held by the very thread it interrupted.

Exit and fork live in `_lifecycle`.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections import deque

from ._config import Config, read_config

TYPE_CHECKING = False  # import cost: see the package docstring
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Hashable, Mapping
    from typing import Any, Final, TypeVar

    T = TypeVar("T")

    from ._call import TrackedCall
    from ._pipeline import Pipeline

#: Events waiting for the sender; more are dropped and counted.
MAX_QUEUE: Final = 1000
#: Events the sender takes at once: one opt-out check, one outbox pass and one look
#: for the uploader serve them all (a burst at exit is handed over in one go).
BATCH: Final = 64
#: Distinct calls remembered on the caller's side; the memory is cleared when full.
MAX_SEEN_CALLS: Final = 4096
#: The longest single wait `threading` accepts; `flush(float("inf"))` waits in such steps.
_MAX_WAIT: Final = 3600.0
#: The first build waits at most this long (seconds) for a host that keeps the
#: interpreter busy to pause (see `Runtime._quiet_moment`), looking every `QUIET_LOOK`.
QUIET_WAIT: Final = 1.0
FIRST_LOOK: Final = 0.01
QUIET_LOOK: Final = 0.05
#: The main thread on a CPU for this share of a look: the host is busy.
BUSY_SHARE: Final = 0.25

# `threading` is imported with the first event, not with this package: a bare
# `_thread` lock is all that is needed before then.
IMPORT_GUARD = _thread.allocate_lock()
#: How long `import_guarded` waits for the guard (held by this very thread, it would
#: wait forever: the lock is not re-entrant).
_GUARD_WAIT: Final = 1.0


def import_guarded(name: str) -> None:
    """Import module ``name`` (ours, or the standard library's) with `IMPORT_GUARD`
    held, unless it is imported already; the caller then imports it as usual.

    For the modules the sender imports only when it needs them (`importlib.metadata`,
    `tempfile`, `_spawn` with `subprocess`): a host's fork waits for the guard instead
    of catching one half done, which would leave the child a module lock held by a
    thread it does not have (see `_lifecycle`).
    """
    if name in sys.modules:
        return
    run_guarded(__import__, name)


def run_guarded(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` with `IMPORT_GUARD` held: for standard-library calls that
    import as they go (``sysconfig.get_paths`` its ``_sysconfigdata`` module, under a
    lock of its own on 3.12; `importlib.metadata` the `email` parser). ``function``
    must not take the guard itself: it is not re-entrant."""
    held = IMPORT_GUARD.acquire(True, _GUARD_WAIT)
    try:
        return function(*args)
    finally:
        if held:
            IMPORT_GUARD.release()


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
    finds no sender and ends when the queue is empty again. Between bursts the process
    has no extra thread, so a host that forks then forks a single-threaded process
    (Python 3.12 warns about forking a multi-threaded one).
    """

    def __init__(
        self, config: Config, cluster: str, extra_plugins: Mapping[str, object] | None = None
    ) -> None:
        self.config = config
        self.cluster = cluster
        #: Plugins registered without entry points (the test capture uses this).
        self.extra_plugins = extra_plugins
        self.seen_calls: dict[Hashable, None] = {}
        #: Events lost to the queue bound or to exit (approximate under contention).
        self.dropped = 0
        self._dropped_reported = 0
        #: Events that no transport delivered, or whose building failed.
        self.failed = 0
        #: Sender threads running now: 0 or 1 (tests check it).
        self.senders = 0
        self._queue: deque[TrackedCall] = deque()
        self._lock = _thread.allocate_lock()
        #: Made on `_lock` with the first sender: no `threading` import before that.
        self._cond: threading.Condition | None = None
        self._sending = False
        #: The sender holds an event: being built, handed over or delivered.
        self._busy = False
        #: ... and it is not in the outbox yet (exit waits for this one only).
        self._building = False
        #: Calls the sender took from the queue and still holds.
        self.holding = 0
        #: The background half, made on the sender thread at the first event.
        self._pipeline: Pipeline | None = None
        self._lost_at_last_flush = 0
        self._closing = False
        #: A flush (or exit) waits: the first build goes ahead, busy host or not.
        self._hurry = False
        self._exit_deadline: float | None = None
        #: How many of the events the sender holds are in the outbox (their uploader
        #: maybe not started yet): at exit those are left there, not lost.
        self._written = 0

    # -- caller's thread: never waits ------------------------------------------------

    def submit(self, call: TrackedCall, key: Hashable | None) -> None:
        """Hand one call over: O(1), no I/O, never blocks (see the module docstring)."""
        if self._closing:
            return
        queue = self._queue
        if len(queue) >= MAX_QUEUE:
            self.dropped += 1
            return
        queue.append(call)
        if key is not None:
            seen = self.seen_calls
            if len(seen) >= MAX_SEEN_CALLS:
                seen.clear()
            seen[key] = None
        if not self._sending:
            self._wake()

    def _wake(self) -> None:
        """Start a sender if none runs and there is work; give up at once if busy."""
        if not self._lock.acquire(False):
            return
        try:
            if not self._sending and self._queue and not self._closing:
                self._start()
        finally:
            self._lock.release()

    def _start(self) -> None:
        """Start the sender thread (with `_lock` held).

        The first time, `threading` is imported here, on the caller's thread, if the
        host has not imported it yet (0.5 ms): the condition the sender and `flush`
        share is made of it. So is `logging` (6 ms) where it will be needed — logging
        on, or no home folder (in-process delivery through requests): imported on the
        sender, its fork handlers could appear half-way through a host's fork (see
        `_lifecycle.import_logging`).
        """
        import threading

        if self.config.logging or self.config.home is None:
            import logging  # noqa: F401 - imported for its fork handlers, see above
        _lifecycle.register_fork_guard()
        if self._cond is None:
            self._cond = threading.Condition(self._lock)
        _thread.start_new_thread(self._run, (self._cond,))  # may fail at shutdown
        self._sending = True
        _lifecycle.register_exit_hooks()

    # -- any thread ------------------------------------------------------------------

    def flush(self, timeout: float, *, delivered: bool = True) -> bool:
        """Wait until every event so far is built and handed over and, with
        ``delivered``, until the uploader is done with them; True if none was lost.

        Without ``delivered`` (at exit) an event counts as handed over once it is in
        the outbox: exit does not wait for the uploader's start.
        """
        timeout = max(0.0, timeout)
        deadline = time.monotonic() + timeout
        clean = self._drain(timeout, deadline, in_outbox_is_enough=not delivered)
        if delivered and self._pipeline is not None:
            remaining = max(0.0, deadline - time.monotonic())
            clean = self._pipeline.await_delivery(remaining) and clean
        return clean

    def _drain(self, timeout: float, deadline: float, *, in_outbox_is_enough: bool) -> bool:
        if not self._lock.acquire(True, min(timeout, _MAX_WAIT)):
            return False
        try:
            self._hurry = True
            if self._cond is not None:
                self._cond.notify_all()  # a sender waiting for a quiet moment: go now
            while True:
                if not self._sending and self._queue and not self._closing:
                    self._start()  # an event whose caller could not take the lock
                held = self._building if in_outbox_is_enough else self._busy
                if not (self._queue or held) or self._cond is None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, _MAX_WAIT))
            if self._queue:  # closing, or no sender could be started
                return False
            lost = self.dropped + self.failed
            clean = lost == self._lost_at_last_flush
            self._lost_at_last_flush = lost
            return clean
        finally:
            self._lock.release()

    def at_exit(self) -> None:
        """Give pending events what is left of the exit budget, then drop them."""
        if self._exit_deadline is None:
            self._exit_deadline = time.monotonic() + self.config.exit_timeout
        self.flush(self._exit_deadline - time.monotonic(), delivered=False)  # no network wait
        unfinished = self.holding if self._building else 0  # the sender's, still being built
        waiting = min(unfinished, self._written)  # in the outbox, no uploader started yet
        dropped = self.close() + unfinished - waiting
        if self._pipeline is not None:  # an opt-out since the last event: take them back
            self._pipeline.still_enabled()
        budget = f"the exit budget ({self.config.exit_timeout:g} s, FLWR_TELEMETRY_EXIT_TIMEOUT)"
        if dropped:
            _report(f"{dropped} event(s) dropped at exit: {budget} ran out")
        if waiting:
            _report(
                f"{waiting} event(s) left in the outbox at exit: {budget} ran out before "
                "an uploader could start; the next process that sends starts one"
            )

    def close(self) -> int:
        """Drop what is queued and let the sender thread end; how many were dropped.

        Read without the lock (exit must not wait for it): an event the sender takes
        at this very moment may be counted as dropped and still be sent.
        """
        self._closing = True
        dropped = len(self._queue)
        self._queue.clear()
        self.dropped += dropped
        if self._lock.acquire(True, 0.1):
            try:
                if self._cond is not None:
                    self._cond.notify_all()
            finally:
                self._lock.release()
        return dropped

    def retract(self) -> None:
        """Take back what this process put in the outbox (after `disable()`)."""
        if self._pipeline is not None:
            self._pipeline.retract()

    # -- sender thread ---------------------------------------------------------------

    def _run(self, cond: threading.Condition) -> None:
        try:
            self._serve(cond)
        except BaseException:  # interpreter shutdown: never a traceback in the host
            self._sending = False

    def _serve(self, cond: threading.Condition) -> None:
        with cond:
            self.senders += 1
        try:
            self._quiet_moment(cond)
        except Exception:  # a platform without thread CPU clocks: build at once
            pass
        while True:
            with cond:
                calls = self._take()
                if not calls:
                    self._sending = False
                    self.senders -= 1
                    cond.notify_all()
                    break
                self._busy = self._building = True
                self._written = 0
                self.holding = len(calls)
            lost = len(calls)
            try:
                if self._pipeline is None:
                    self._pipeline = _make_pipeline(self)
                if self.dropped != self._dropped_reported:  # said here, not on the caller
                    _report(f"{self.dropped} event(s) dropped so far: the queue was full")
                    self._dropped_reported = self.dropped
                lost = self._pipeline.handle(calls, self._in_outbox, self._in_outbox_only)
            except BaseException as error:  # a plugin's SystemExit must not end us silently
                kinds = ", ".join(sorted({repr(call.event_type) for call in calls}))
                _report(f"{lost} event(s) lost ({kinds}): {type(error).__name__}: {error}")
            del calls  # no host object is kept by this thread between events
            with cond:
                self._busy = self._building = False
                self.holding = 0
                self.failed += lost
                cond.notify_all()
        if self._queue and not self._closing:  # an event raced our ending
            self._wake()

    def _quiet_moment(self, cond: threading.Condition) -> None:
        """Before the process's first build, let a main thread that keeps the
        interpreter busy run undisturbed for a while (at most `QUIET_WAIT`).

        The first build (imports, plugins, collectors) is the sender's one big piece of
        work. Alone it takes about 12 ms of CPU in a host that has imported the
        standard library; against a thread that never lets go of the GIL it cost three
        times that, stretched over half a second, because each file the imports open
        hands the GIL over and back. So the sender first looks (`FIRST_LOOK`) whether
        the main thread is computing, and if it is, waits — sleeping, not contending —
        until it pauses, `flush` or exit asks for the events, or `QUIET_WAIT` has
        passed. Later builds are small: no wait. Only the main thread counts: a busy
        background thread may well outlive the main one, and exit would then build
        against it with less time left.

        The price: a process killed meanwhile (no exit hooks run) loses its first
        events, so `multiprocessing` workers never wait — a pool's ``terminate``
        (which ``with Pool()`` calls) sends its busy workers SIGTERM.
        """
        if self._pipeline is not None or _in_multiprocessing_child():
            return
        self._wait_while_busy(cond, time.monotonic() + QUIET_WAIT)

    def _wait_while_busy(self, cond: threading.Condition, deadline: float) -> None:
        """Sleep in short looks while the main thread spends at least `BUSY_SHARE` of
        the time on a CPU, until ``deadline``, or until a flush, exit or `close` wakes
        the sender."""
        look = FIRST_LOOK
        while time.monotonic() < deadline:
            wall, spent = time.monotonic(), _cpu_of_main_thread()
            with cond:
                if not (self._hurry or self._closing):
                    cond.wait(look)
                if self._hurry or self._closing:
                    return
            if _cpu_of_main_thread() - spent < BUSY_SHARE * (time.monotonic() - wall):
                return  # the host is idle, or paused (I/O, a wait): build now
            look = QUIET_LOOK

    def _take(self) -> list[TrackedCall]:
        """Up to `BATCH` queued calls (with ``_lock`` held); none once closing."""
        calls: list[TrackedCall] = []
        queue = self._queue
        try:
            while queue and not self._closing and len(calls) < BATCH:
                calls.append(queue.popleft())
        except IndexError:  # emptied by `close` meanwhile
            pass
        return calls

    def _in_outbox_only(self, count: int) -> None:
        """``count`` of the events the sender holds are in the outbox: if exit cannot
        wait for their uploader's start, a later process's uploader delivers them."""
        self._written = count

    def _in_outbox(self) -> None:
        """The events the sender holds are in the outbox: exit need not wait for them."""
        cond = self._cond
        if cond is not None:
            with cond:
                self._building = False
                cond.notify_all()


def _in_multiprocessing_child() -> bool:
    """Whether this process is a `multiprocessing` (or `multiprocess`) worker."""
    for name in _lifecycle.MULTIPROCESSING_MODULES:
        parent_process = getattr(sys.modules.get(name), "parent_process", None)
        if parent_process is not None and parent_process() is not None:
            return True
    return False


def _cpu_of_main_thread() -> float:
    """CPU seconds of the main thread where the OS tells (Linux, the BSDs), else of all
    threads but the calling one."""
    import threading

    clock = getattr(time, "pthread_getcpuclockid", None)
    ident = threading.main_thread().ident
    if clock is not None and ident is not None:
        try:
            return time.clock_gettime(clock(ident))
        except OSError:
            pass
    return time.process_time() - time.thread_time()


def _report(message: str) -> None:
    """Say ``message`` if logging is on (also before any pipeline turned it on)."""
    try:
        if CONFIG.logging:
            from . import _log

            _log.enable()
            _log.log(message)
    except BaseException:
        pass


def _make_pipeline(runtime: Runtime) -> Pipeline:
    with IMPORT_GUARD:  # our own modules and pluggy; plugins: see `_plugins`
        from ._pipeline import Pipeline
    pipeline = Pipeline(runtime.config, runtime.cluster, runtime.extra_plugins)
    if not pipeline.decision.enabled and not runtime.config.logging:
        deactivate()  # a plugin said no: later calls cost nothing,
        runtime.close()  # and this thread ends
    return pipeline


# -- the process-wide state ------------------------------------------------------------


class ProcessState:
    """The one mutable, process-wide object; `track` wrappers keep a reference to it.

    A reference held in a closure survives interpreter shutdown, when module globals
    may already be ``None`` while host ``__del__`` methods still call tracked code.
    """

    __slots__ = ("current", "disabled_by", "exiting", "plugin_imports")

    def __init__(self, current: Runtime | None) -> None:
        #: ``None`` when tracked calls need no work at all (disabled, logging off).
        self.current = current
        #: ``"disable()"`` once the host called it: nothing turns telemetry back on.
        self.disabled_by: str | None = None
        #: Third-party plugin imports under way (a fork then gives a silent child).
        self.plugin_imports = 0
        #: True once the interpreter exits: background waits (the hardware probe) stop.
        self.exiting = False


def read_config_safely() -> Config:
    try:
        return read_config()
    except Exception:  # an environment nobody foresaw: stay off rather than raise
        return Config(disabled_by="an unreadable environment")


CONFIG: Final = read_config_safely()
STATE: Final = ProcessState(Runtime(CONFIG, random_uuid()) if CONFIG.active else None)


def deactivate() -> None:
    """Make every later tracked call a no-op (a plugin or a late opt-out said no)."""
    STATE.current = None


from . import _lifecycle  # noqa: E402 - registers the fork handler; needs STATE
