"""The one place that starts child processes: isolated, detached, idle, out of sight.

Every process this package starts (the hardware probe, the uploader, the probe's own
py-cpuinfo run) is a new interpreter started as ``python -I -S -c BOOTSTRAP``:

- *Nothing from the working folder or the user*: ``-I`` puts neither the working
  folder nor a script's folder on ``sys.path`` and ignores ``PYTHONPATH``, every other
  ``PYTHON*`` variable and the user's site-packages; the child runs in ``/``.
- *Still finds what the host finds*: the bootstrap keeps the standard library first
  (what ``-S`` leaves on the path), runs `site` for the interpreter's own
  site-packages and ``.pth`` files, and appends the host's absolute ``sys.path``
  entries — less its working folder and its script's folder — in the host's order,
  so ``PYTHONPATH`` packages are found yet nothing can shadow the standard library.
- *Detached*: a new session (no terminal signals), ``/dev/null`` for stdin, stdout and
  stderr, no inherited descriptors beyond those asked for.
- *Out of sight of ``os.wait()``*: the direct child only forks the worker and exits,
  and is reaped here at once (about 10 ms after its start); the worker is then a child
  of init, which the host's ``os.wait()`` can never return. A child's exit wakes every
  wait for it, so a host thread already blocked in ``os.wait()`` would reap that
  short-lived child about half the time: nothing is started while one is
  (`host_is_waiting`, from ``/proc/self/task``). What remains is a host that starts
  such a wait within those 10 ms. When the host is PID 1 (a container without an
  init), orphans would come back to it anyway, so the worker is started directly and
  reaped by `reap` (called on each later start and by the hardware collector's wait).
- *Idle*: the worker runs under ``SCHED_IDLE`` (CPU time only when nothing else
  wants it), else at ``nice 19``; its own children inherit that.

Where no child can be started (an embedded interpreter whose ``sys.executable`` is not
a Python, a platform that refuses), `start_detached` returns ``False``: nothing raises.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: Where every child runs: a folder that holds no Python modules.
SAFE_FOLDER: Final = os.path.abspath(os.sep)

#: Runs in the child, after ``-I -S``: argv is ``MODE PATH_JSON MODULE ARG...``.
BOOTSTRAP: Final = """\
import os, sys
if sys.argv[1] == "detach" and os.fork():
    os._exit(0)
try:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
except (AttributeError, OSError):
    try:
        os.nice(19)
    except (AttributeError, OSError):
        pass
import json, runpy, site
stdlib = list(sys.path)
site.main()
extra = [p for p in json.loads(sys.argv[2]) if p not in stdlib]
sys.path[:] = stdlib + list(dict.fromkeys(extra + sys.path[len(stdlib):]))
sys.argv[:] = sys.argv[3:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""

#: Windows' spelling of a detached, idle process (all three are 0 elsewhere).
_DETACHED_FLAGS: Final = (
    getattr(subprocess, "DETACHED_PROCESS", 0)
    | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    | getattr(subprocess, "IDLE_PRIORITY_CLASS", 0)
)


class _Child(subprocess.Popen[bytes]):
    """A child whose exit status this module collects itself (`reap`, `wait`).

    `subprocess.Popen.__del__` warns (a `ResourceWarning`, an error under ``-W error``)
    about a child still running when the object is collected, as a worker started
    directly may well be at the host's exit: it is ours to leave running.
    """

    def __del__(self) -> None:
        pass


_P = TypeVar("_P", bound="subprocess.Popen[bytes]")

#: Workers started directly (host is PID 1, or Windows), until `reap` sees them end.
_direct: list[_Child] = []


def interpreter() -> str | None:
    """The Python to run children with, or ``None`` if this process has none."""
    executable = sys.executable or ""
    name = os.path.basename(executable).lower()
    if not name.startswith(("python", "pypy")) or not os.path.isfile(executable):
        return None  # embedded (uWSGI, a GUI application): not a Python to run
    return executable


#: The folder this package was imported from: a child must import it from there too.
_OWN_FOLDER: Final = os.path.normcase(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def search_path() -> list[str]:
    """The host's ``sys.path``, less anything relative to where it was started — but
    with the folder this package itself came from, wherever that is: a host run from
    a source checkout (``PYTHONPATH=.``) would otherwise start children that cannot
    import it. Whoever controls that folder controls this package's code already."""
    from ._config import STARTED_IN  # ``python -m`` puts it first; a chdir since changes nothing

    unsafe = {os.path.normcase(SAFE_FOLDER), os.path.normcase(STARTED_IN)}
    with contextlib.suppress(OSError):
        unsafe.add(os.path.normcase(os.getcwd()))
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if isinstance(script, str) and getattr(main, "__spec__", None) is None:
        unsafe.add(os.path.normcase(os.path.dirname(os.path.abspath(script))))
    entries: list[str] = []
    for entry in list(sys.path):
        if not isinstance(entry, str) or not os.path.isabs(entry) or entry in entries:
            continue  # '' and relative entries mean the working folder
        folder = os.path.normcase(os.path.normpath(entry))
        if folder in unsafe and folder != _OWN_FOLDER:
            continue
        entries.append(entry)
    kept = {os.path.normcase(os.path.normpath(entry)) for entry in entries}
    if _OWN_FOLDER in unsafe and _OWN_FOLDER not in kept:  # imported through '' (``-c``)
        entries.insert(0, _OWN_FOLDER)  # first, as '' is in the host: the same copy
    return entries


def command(module: str, arguments: Sequence[str], *, detach: bool) -> list[str] | None:
    """The command line that runs ``module`` as ``__main__`` in an isolated child."""
    python = interpreter()
    if python is None:
        return None
    mode = "detach" if detach else "run"
    # -B as the host has it: -I ignores PYTHONDONTWRITEBYTECODE, and a child must not
    # leave __pycache__ folders where the host would not.
    flags = ["-I", "-S", "-B"] if sys.dont_write_bytecode else ["-I", "-S"]
    return [python, *flags, "-c", BOOTSTRAP, mode, json.dumps(search_path()), module, *arguments]


#: ``wait4`` and ``waitid`` system call numbers, by machine (Linux).
_WAIT_CALLS: Final = {
    "x86_64": (61, 247),
    "amd64": (61, 247),
    "aarch64": (260, 95),
    "arm64": (260, 95),
    "riscv64": (260, 95),
    "loongarch64": (260, 95),
}
_P_ALL: Final = 0
_ANY_CHILD: Final = 0xFFFFFFFF  # wait4's pid -1, as the int register holds it


def _waits_for_any_child(task: str, calls: tuple[int, int] | None) -> bool:
    """Whether thread ``task`` of this process is blocked in a wait any child can end."""
    try:
        with open(f"/proc/self/task/{task}/syscall") as file:
            fields = file.read().split()
    except OSError:
        fields = []
    if calls is not None and len(fields) > 1 and fields[0].isdigit():
        number, first = int(fields[0]), int(fields[1], 16) & 0xFFFFFFFF
        if number == calls[0]:  # wait4(pid, ...): -1 is "any child"
            return first == _ANY_CHILD  # a group (0, -pgid) is not ours: own session
        if number == calls[1]:  # waitid(idtype, ...)
            return first == _P_ALL
        return False
    try:  # an unknown machine: any wait at all counts
        with open(f"/proc/self/task/{task}/wchan") as file:
            return file.read().strip() == "do_wait"
    except OSError:
        return False


def host_is_waiting() -> bool:
    """Whether another thread of this process is blocked in ``os.wait()`` (Linux).

    A child's exit wakes every such wait: a host blocked in ``os.wait()`` while our
    short-lived intermediate exits would as likely reap it as we would. Starting a
    child is therefore put off while this is true. Elsewhere (no ``/proc``) ``False``.
    """
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    import threading

    me = str(threading.get_native_id())
    calls = _WAIT_CALLS.get(os.uname().machine.lower()) if hasattr(os, "uname") else None
    return any(task != me and _waits_for_any_child(task, calls) for task in tasks)


def _host_is_init() -> bool:
    """Orphans are re-parented to the host itself when it is PID 1 of its namespace."""
    return os.getpid() == 1 or sys.platform == "win32"


def reap() -> None:
    """Collect the exit status of directly started workers that have ended."""
    for child in list(_direct):
        with contextlib.suppress(Exception):
            if child.poll() is None:
                continue
        with contextlib.suppress(ValueError):
            _direct.remove(child)


def _environment() -> dict[str, str] | None:
    """The host's environment for a child, with a relative ``FLWR_HOME`` or
    ``FLWR_TELEMETRY_MACHINE_CONFIG`` made absolute (from the folder the host started
    in): a child runs in `SAFE_FOLDER`, where the same words would name another folder
    or file, and the uploader reads the settings there before each delivery. ``None``:
    the environment as it is."""
    from ._choice import MACHINE_FILE_VARIABLE, machine_file
    from ._config import STARTED_IN

    changed: dict[str, str] = {}
    raw = os.environ.get(MACHINE_FILE_VARIABLE, "").strip()
    if raw and not os.path.isabs(raw):
        changed[MACHINE_FILE_VARIABLE] = machine_file(os.environ)
    home = os.environ.get("FLWR_HOME", "").strip()
    if home and not home.startswith("~") and not os.path.isabs(home):
        changed["FLWR_HOME"] = os.path.normpath(os.path.join(STARTED_IN, home))
    return {**os.environ, **changed} if changed else None


def _start(
    kind: type[_P],
    argv: list[str],
    stdout: int,
    *,
    pass_fds: Sequence[int] = (),
    creationflags: int = 0,
) -> _P:
    """Start ``argv`` (from `command`) as every child here starts: stdin and stderr on
    ``/dev/null``, in `SAFE_FOLDER`, in a new session, inheriting no descriptor but
    ``pass_fds``. ``kind`` is `_Child` for a worker that may outlive its object."""
    return kind(  # our own interpreter and bootstrap
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        cwd=SAFE_FOLDER,
        env=_environment(),
        close_fds=True,
        pass_fds=tuple(pass_fds),
        start_new_session=sys.platform != "win32",
        creationflags=creationflags,
    )


def start_detached(
    module: str,
    arguments: Sequence[str],
    *,
    pass_fds: Sequence[int] = (),
    started: Callable[[], None] | None = None,
) -> bool:
    """Start ``module`` as a detached, isolated, idle worker; whether it started.

    ``pass_fds`` are inherited by the worker (a lock it holds until it ends). The call
    costs the caller the start of one interpreter's fork (about 10 ms) and never raises.
    ``started`` is called once the first child exists: from then on the worker starts
    even if this process ends (the host's exit need not wait for the rest).
    ``False`` also while another thread of the host is blocked in ``os.wait()``
    (`host_is_waiting`): a caller that can, tries again later.
    """
    try:
        reap()
        if host_is_waiting():
            return False  # not now: see `host_is_waiting`
        direct = _host_is_init()
        argv = command(module, arguments, detach=not direct)
        if argv is None:
            return False
        child = _start(
            _Child, argv, subprocess.DEVNULL, pass_fds=pass_fds, creationflags=_DETACHED_FLAGS
        )
        if started is not None:
            started()
        if direct:
            _direct.append(child)
            return True
        # The intermediate forks the worker and exits: reap it the moment it does (a
        # blocking waitpid, not `wait(timeout)`, which polls with growing pauses), so the
        # host's own os.wait() has next to no moment to see it. It runs nothing but
        # interpreter start-up (standard library only) and a fork, so it cannot hang.
        # ChildProcessError (the host reaped it first, or ignores SIGCHLD) is handled
        # inside `wait`.
        return child.wait() == 0
    except Exception:
        return False


def run_isolated(module: str, arguments: Sequence[str], timeout: float) -> bytes | None:
    """Run ``module`` in an isolated, idle child and return its output, or ``None``.

    ``None`` when it cannot start, fails, or outlives ``timeout`` (then it is killed,
    with any process it started in its session).
    """
    argv = command(module, arguments, detach=False)
    if argv is None:
        return None
    try:
        child = _start(subprocess.Popen, argv, subprocess.PIPE)
    except Exception:
        return None
    try:
        output, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        killpg = getattr(os, "killpg", None)
        with contextlib.suppress(OSError):
            if killpg is not None:
                killpg(child.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        child.kill()
        child.communicate()
        return None
    return output if child.returncode == 0 else None
