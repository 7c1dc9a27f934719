"""Peak memory growth over many calls with rotating arguments, after a warm-up.

Arguments: ``plain`` or ``tracked`` (is ``work`` decorated?), CALLS. Prints the
growth of ``ru_maxrss`` (KiB on Linux) over the measured calls.
"""

from __future__ import annotations

import resource
import sys

import flwr_datasets_telemetry as t

mode, calls = sys.argv[1], int(sys.argv[2])


def work(split: str, n: int) -> int:  # noqa: ARG001  (split: what `track` records)
    return n


if mode == "tracked":
    work = t.track("work")(work)
elif mode != "plain":
    raise SystemExit(f"plain or tracked, not {mode!r}")
for i in range(10_000):
    work("train", i)
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
splits = ("train", "test", "valid")
for i in range(calls):
    work(splits[i % 3], i)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start)
