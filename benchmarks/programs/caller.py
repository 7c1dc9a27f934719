"""Per-call cost of tracked calls against a pass-through wrapper, in one process.

Arguments: NUMBER (calls per round), ROUNDS, URL (where Flower Datasets 0.6.1's own
``event()`` posts, if it is installed). Prints seconds per call of each loop as JSON:
the best of interleaved rounds, the least disturbed estimate on a noisy machine.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time

import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _runtime, compat

TYPE_CHECKING = False  # no `typing` import in a program that is timed
if TYPE_CHECKING:
    from collections.abc import Callable

number, rounds, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


def work(split: str) -> str:
    return split


@functools.wraps(work)
def passthrough(*args: str, **kwargs: str) -> str:
    return work(*args, **kwargs)


tracked = t.track("bench")(work)
tracked("train")
t.flush(10)
active = _runtime.STATE.current
counter = iter(range(10**9))


def run_passthrough(n: int) -> None:
    for _ in range(n):
        passthrough("train")


def run_disabled(n: int) -> None:
    _runtime.STATE.current = None
    for _ in range(n):
        tracked("train")
    _runtime.STATE.current = active


def run_repeated(n: int) -> None:
    for _ in range(n):
        tracked("train")


def run_distinct(n: int) -> None:
    for _ in range(n):
        tracked(str(next(counter)))


def run_distinct_baseline(n: int) -> None:
    for _ in range(n):
        passthrough(str(next(counter)))


fds_details = {
    "federated_dataset_id": 1,
    "dataset_name": "mnist",
    "split": "train",
    "partitioner": "IidPartitioner",
    "num_partitions": 10,
}


def run_compat(n: int) -> None:  # a load_partition event as flwr-datasets 0.6 sends it, repeated
    for _ in range(n):
        compat.event(compat.EventType.LOAD_PARTITION_CALLED, fds_details)


loops: dict[str, Callable[[int], None]] = {
    "passthrough": run_passthrough,
    "disabled": run_disabled,
    "repeated": run_repeated,
    "distinct": run_distinct,
    "distinct_baseline": run_distinct_baseline,
    "compat": run_compat,
}
try:
    os.environ["FLWR_TELEMETRY_ENABLED"] = "1"
    # No type information in flwr-datasets (and no flwr-datasets below Python 3.11).
    from flwr_datasets.common import telemetry as flwr_telemetry  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:
    pass
else:
    flwr_telemetry.TELEMETRY_EVENTS_URL = url

    def run_flwr(n: int) -> None:
        for _ in range(n):
            flwr_telemetry.event(flwr_telemetry.EventType.PING)

    loops["flwr"] = run_flwr

best: dict[str, float] = {}
for _ in range(rounds):
    for name, loop in loops.items():
        n = number // 10 if name == "flwr" else number
        start = time.perf_counter()
        loop(n)
        best[name] = min(best.get(name, float("inf")), (time.perf_counter() - start) / n)
print(json.dumps(best), flush=True)
os._exit(0)  # flwr-datasets' executor would otherwise post every queued event at exit
