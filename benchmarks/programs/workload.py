"""A whole program of short calls, timed from outside: what a user's run takes.

Arguments: ``plain`` or ``tracked`` (is ``work`` decorated?), CALLS, SIZE (``work``'s
loop length), and optionally PRELOAD: comma-separated modules imported first, as a host
that already imports them would (`benchmarks.run.HOST_STDLIB`). Both variants import
the package (and PRELOAD), so the difference between them is the decoration alone.

``calibrate`` instead of ``plain`` prints the SIZE for which one call takes SECONDS
(the second argument, e.g. ``50e-6``) on this machine.
"""

from __future__ import annotations

import sys
import time

mode = sys.argv[1]
for module in sys.argv[4].split(",") if len(sys.argv) > 4 else ():
    __import__(module)  # the host's own imports, before ours

import flwr_datasets_telemetry as t  # noqa: E402  (after the host's imports)


def work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def calibrate(seconds: float, size: int = 1000, calls: int = 200) -> int:
    """The loop length for which one call of `work` takes ``seconds`` (best of 7)."""
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            work(size)
        best = min(best, (time.perf_counter() - start) / calls)
    return max(1, round(size * seconds / best))


if mode == "calibrate":
    print(calibrate(float(sys.argv[2])))
    sys.exit(0)
calls, size = int(sys.argv[2]), int(sys.argv[3])
if mode == "tracked":
    work = t.track("work")(work)
elif mode != "plain":
    raise SystemExit(f"plain, tracked or calibrate, not {mode!r}")
for _ in range(calls):
    work(size)
