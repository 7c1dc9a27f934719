"""A whole program of short calls, timed from outside: what a user's run takes.

Arguments: ``plain`` or ``tracked`` (is ``work`` decorated?), CALLS. Both variants
import the package, so the difference between them is the decoration alone.
"""

from __future__ import annotations

import sys

import flwr_datasets_telemetry as t

mode, calls = sys.argv[1], int(sys.argv[2])


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
