"""A whole program of short calls, timed from outside: what a user's run takes.

Arguments: ``plain`` or ``tracked`` (is ``work`` decorated?), CALLS, and optionally
PRELOAD: comma-separated modules imported first, as a host that already imports them
would (`benchmarks.run.HOST_STDLIB`). Both variants import the package (and PRELOAD),
so the difference between them is the decoration alone.
"""

from __future__ import annotations

import sys

mode, calls = sys.argv[1], int(sys.argv[2])
for module in sys.argv[3].split(",") if len(sys.argv) > 3 else ():
    __import__(module)  # the host's own imports, before ours

import flwr_datasets_telemetry as t  # noqa: E402  (after the host's imports)


def work(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


if mode == "tracked":
    work = t.track("work")(work)
elif mode != "plain":
    raise SystemExit(f"plain or tracked, not {mode!r}")
for _ in range(calls):
    work(700)
