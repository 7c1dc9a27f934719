"""Review of the first-event cost work (issue 10): pool workers and the quiet moment.

`datasets` runs its workers with `multiprocess` (the dill-based twin of
`multiprocessing`), not `multiprocessing`: a worker of either must not lose its event.
"""

from __future__ import annotations

import pytest

from .helpers import run_python
from .servers import Endpoint

FAST = {"FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware", "FLWR_TELEMETRY_EXIT_TIMEOUT": "20"}

_POOL_PROGRAM = """
import importlib, sys, time
import flwr_datasets_telemetry as t

mp = importlib.import_module(sys.argv[1])

@t.track("work")
def work(n):
    return n

def task(n):
    work(n)
    end = time.monotonic() + float(sys.argv[2])  # the worker keeps the interpreter busy
    while time.monotonic() < end:
        pass
    return n

if __name__ == "__main__":
    if sys.argv[3] == "with":  # `with Pool()` ends with terminate(): SIGTERM, no exit hooks
        with mp.get_context("fork").Pool(2) as pool:
            assert pool.map(task, [0, 1], chunksize=1) == [0, 1]
    else:  # close() and join(): the workers end normally (through os._exit)
        pool = mp.get_context("fork").Pool(2)
        assert pool.map(task, [0, 1], chunksize=1) == [0, 1]
        pool.close()
        pool.join()
"""


def _pool_events(endpoint: Endpoint, module: str, busy: float, ending: str) -> int:
    pytest.importorskip(module)
    run = run_python(
        _POOL_PROGRAM,
        {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST},
        as_file=True,
        argv=[module, str(busy), ending],
    )
    assert (run.returncode, run.stderr) == (0, "")
    endpoint.wait_for(2, timeout=10)
    return len(endpoint.payloads())


@pytest.mark.parametrize("module", ["multiprocessing", "multiprocess"])
def test_a_busy_pool_worker_s_event_survives_the_pool_s_terminate(
    module: str, endpoint: Endpoint
) -> None:
    """Each worker calls a tracked function, then runs Python for 0.7 s; `with Pool()`
    then SIGTERMs it. Before df8b7be the event was built meanwhile (2 of 2 delivered,
    6 runs of 6); since, the sender waits for a quiet moment that comes only with the
    SIGTERM (0 of 2). The working tree exempts `multiprocessing` children only."""
    assert _pool_events(endpoint, module, 0.7, "with") == 2


@pytest.mark.parametrize("module", ["multiprocessing", "multiprocess"])
def test_a_pool_worker_that_ends_normally_delivers_its_event(
    module: str, endpoint: Endpoint
) -> None:
    """A worker ends through ``os._exit``: only a `util.Finalize` of *its* package runs.
    `_lifecycle.register_exit_hooks` registers one with `multiprocessing.util` only, so a
    `multiprocess` worker never gets its exit flush (lost before this session too, for
    short tasks; since df8b7be also for busy ones)."""
    assert _pool_events(endpoint, module, 0.0, "close") == 2
