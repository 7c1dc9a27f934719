"""HOSTS processes started at once, each emitting one event: the CPU of every process.

Argument: HOSTS. Each host is ``python -c`` running ``t.event("once")`` and ending, with
no flush: a Flower simulation's workers, started together. The uploader a host starts
is a detached grandchild (double fork, new session), invisible to the benchmark's own
``RUSAGE_CHILDREN``; this program therefore makes itself a child subreaper (Linux), so
that every orphan among its descendants is re-parented to it, and reaps every
descendant before it reports: when it returns, every uploader has ended, the outbox it
delivered is empty, and the CPU of all of them is counted.

Each reaped process comes with its own CPU time and that of the children it reaped
itself (``wait4``), so the two kinds are told apart. Prints JSON, CPU in seconds (user +
system): ``hosts`` (the hosts, with what each reaped: the uploader's short-lived
intermediate, a hardware probe it waited for), ``orphans`` and ``orphan_cpu`` (how many
processes were re-parented here and reaped, and their CPU: the uploaders, and any
detached hardware probe), ``reaped`` (hosts + orphans), ``failed`` (hosts that did not
exit 0), ``total`` (``RUSAGE_CHILDREN``: everything), ``complete`` (``false`` if some
descendant still ran at the deadline: all are killed, and the figures mean nothing).
Elsewhere than Linux it prints ``{"unsupported": REASON}``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys

HOST = 'import flwr_datasets_telemetry as t\nt.event("once")\n'
PR_SET_CHILD_SUBREAPER = 36
DEADLINE = 120  # seconds for every descendant to end: then report, never hang


class Expired(Exception):  # noqa: N818  (not an error: the deadline)
    pass


def expire(_signum: int, _frame: object) -> None:
    raise Expired


def become_subreaper() -> str | None:
    """Adopt this process's orphaned descendants; why not, if it cannot."""
    if sys.platform != "linux":
        return f"child subreapers are Linux only, not {sys.platform}"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}"
    return None


def start_host() -> int:
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    return os.posix_spawn(
        sys.executable, [sys.executable, "-c", HOST], os.environ, file_actions=quiet
    )


def children() -> list[int]:
    pids: list[int] = []
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children") as file:
            pids += [int(pid) for pid in file.read().split()]
    return pids


def kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def kill_descendants() -> None:
    """SIGKILL and reap what still runs below; each host killed orphans its own children."""
    for _ in range(20):
        pids = children()
        if not pids:
            return
        for pid in pids:
            kill(pid)


reason = become_subreaper()
if reason is not None:
    print(json.dumps({"unsupported": reason}))
    sys.exit(0)
hosts = {start_host() for _ in range(int(sys.argv[1]))}
host_cpu = orphan_cpu = 0.0
orphans = failed = reaped = 0
complete = True
signal.signal(signal.SIGALRM, expire)
signal.alarm(DEADLINE)
try:
    while True:
        try:
            pid, status, usage = os.wait4(-1, 0)  # the child's usage and its reaped children's
        except ChildProcessError:
            break
        cpu, reaped = usage.ru_utime + usage.ru_stime, reaped + 1
        if pid in hosts:
            host_cpu += cpu
            failed += os.waitstatus_to_exitcode(status) != 0
        else:
            orphans += 1
            orphan_cpu += cpu
    signal.alarm(0)
except Expired:
    complete = False
    kill_descendants()
import resource  # noqa: E402  (not on Windows: after the check above)

total = resource.getrusage(resource.RUSAGE_CHILDREN)
print(
    json.dumps(
        {
            "hosts": host_cpu,
            "orphans": orphans,
            "orphan_cpu": orphan_cpu,
            "reaped": reaped,
            "failed": failed,
            "total": total.ru_utime + total.ru_stime,
            "complete": complete,
        }
    )
)
