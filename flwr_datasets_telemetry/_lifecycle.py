"""Process exit and ``os.fork``: the two moments the hand-off must survive.

Exit: `at_exit` waits for pending events until a deadline shared by every exit hook
(``FLWR_TELEMETRY_EXIT_TIMEOUT``, default 0.8 s), then drops what is left. It is
registered with `atexit` and, in `multiprocessing` children (which end with
``os._exit``), as a `multiprocessing.util.Finalize` callback. Afterwards every tracked
call (say, from a ``__del__`` during interpreter shutdown) returns at once.

Fork: the child gets a fresh `Runtime` (queue, lock, thread) that keeps the cluster id.
A child must never inherit a half-finished import (its module lock would stay held by
a thread that no longer exists). `_runtime.IMPORT_GUARD` is held while the sender
imports this package's own modules, pluggy, the built-in plugins (requests, where
delivery is in-process), `logging` and the modules imported only when needed
(`_runtime.import_guarded`: tens of milliseconds, once), and a fork waits
for it, at most `FORK_WAIT`. Third-party plugins may take any time to import, so
a fork never waits for them: a child forked meanwhile stays silent instead.
"""

from __future__ import annotations

import _thread
import atexit
import os
import sys

from . import _runtime

#: The longest a host's ``os.fork`` waits for the sender to finish importing our modules.
FORK_WAIT = 1.0
#: `multiprocessing` and its dill-based twin `multiprocess` (``datasets`` uses it).
MULTIPROCESSING_MODULES = ("multiprocessing", "multiprocess")


class _Fork:
    """One thread's fork in progress, as `_before_fork` found it."""

    __slots__ = ("depth", "guarded", "in_plugin_import")

    def __init__(self, in_plugin_import: bool) -> None:
        #: This module's two registrations, and a fork from a signal handler inside
        #: another, each count one: only the outermost takes and releases the guard.
        self.depth = 1
        self.guarded = False
        self.in_plugin_import = in_plugin_import


class _Hooks:
    """What this module registered, and what a fork in progress found."""

    __slots__ = ("exit_hooks_pid", "fork_guard", "forks", "guard_after_logging")

    def __init__(self) -> None:
        self.exit_hooks_pid: int | None = None
        self.fork_guard = False
        self.guard_after_logging = False
        #: Forks in progress, by forking thread: two threads may fork at once, and
        #: each must wait on its own.
        self.forks: dict[int, _Fork] = {}


_state = _Hooks()


def at_exit() -> None:
    """Give pending events the exit budget; from then on tracked calls do nothing."""
    _runtime.STATE.exiting = True
    runtime = _runtime.STATE.current
    if runtime is not None:
        try:
            runtime.at_exit()
        except BaseException:
            pass
        _runtime.STATE.current = None


def register_exit_hooks() -> None:
    """Once per process (a forked child registers its own)."""
    pid = os.getpid()
    if _state.exit_hooks_pid == pid:
        return
    _state.exit_hooks_pid = pid
    atexit.register(at_exit)
    # Children started by fork or forkserver leave through os._exit, skipping atexit;
    # multiprocessing runs its own finalizers first. So does `multiprocess`, the dill
    # based twin with which `datasets` runs its worker pools.
    for name in MULTIPROCESSING_MODULES:
        if name in sys.modules:
            __import__(f"{name}.util")  # not `importlib`: this module loads with the package
            sys.modules[f"{name}.util"].Finalize(None, at_exit, exitpriority=100)


def _before_fork() -> None:
    # Registered (again) after `logging` was imported, so that it runs before logging's
    # own handler, which takes the logging lock that the sender's imports may need; the
    # earlier registration then finds this thread's fork already guarded.
    me = _thread.get_ident()
    fork = _state.forks.get(me)
    if fork is not None:
        fork.depth += 1
        return
    fork = _state.forks[me] = _Fork(_runtime.STATE.plugin_imports > 0)
    fork.guarded = _runtime.IMPORT_GUARD.acquire(True, FORK_WAIT)


def _after_fork_in_parent() -> None:
    me = _thread.get_ident()
    fork = _state.forks.get(me)
    if fork is None:
        return
    fork.depth -= 1
    if fork.depth <= 0:
        del _state.forks[me]
        if fork.guarded:
            _runtime.IMPORT_GUARD.release()


def _after_fork_in_child() -> None:
    fork = _state.forks.get(_thread.get_ident())
    forked_mid_import = fork is not None and (not fork.guarded or fork.in_plugin_import)
    _state.forks.clear()
    _runtime.STATE.plugin_imports = 0
    _runtime.IMPORT_GUARD = _thread.allocate_lock()
    _runtime.STATE.exiting = False
    current = _runtime.STATE.current
    if current is not None:
        fresh = _runtime.Runtime(current.config, current.cluster, current.extra_plugins)
        _runtime.STATE.current = None if forked_mid_import else fresh


def register_fork_guard() -> None:
    """Installed with the first sender (before that nothing can be mid-import), and
    once more after `logging` is imported (see `_before_fork`)."""
    if not hasattr(os, "register_at_fork"):
        return
    after_logging = "logging" in sys.modules
    if _state.fork_guard and (_state.guard_after_logging or not after_logging):
        return
    _state.fork_guard = True
    _state.guard_after_logging = after_logging
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent)


def import_logging() -> None:
    """Import `logging` where a fork cannot catch the import half done, then put our
    fork guard ahead of its fork handlers. Only with logging on, or before requests is
    imported for in-process delivery: otherwise a host never imports `logging` for us.

    `Runtime._start` does this on the caller's thread when it is sure to be needed.
    On the sender (in-process delivery decided later) one race is left: a fork that
    waits on the guard while this import registers logging's fork handlers runs
    logging's after-fork half without its before half, and logging prints an error.
    """
    if "logging" not in sys.modules:
        held = _runtime.IMPORT_GUARD.acquire(True, FORK_WAIT)
        try:
            import logging  # noqa: F401 - imported for its fork handlers
        finally:
            if held:
                _runtime.IMPORT_GUARD.release()
    if _state.fork_guard:
        register_fork_guard()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
