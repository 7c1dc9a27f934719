"""Pool workers of `multiprocessing` and of `multiprocess` (the dill-based twin with
which `datasets` runs its worker pools): a worker of either must not lose its event.
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
def work(split):  # an argument events keep: two tasks are two events, in one worker too
    return split

def task(n):
    work(f"split{n}")
    end = time.monotonic() + float(sys.argv[2])  # the worker keeps the interpreter busy
    while time.monotonic() < end:
        pass
    return n

if __name__ == "__main__":  # close() and join(): the workers end normally (os._exit)
    pool = mp.get_context("fork").Pool(2)
    assert pool.map(task, [0, 1], chunksize=1) == [0, 1]
    pool.close()
    pool.join()
"""


def _pool_events(endpoint: Endpoint, module: str, busy: float) -> int:
    pytest.importorskip(module)
    run = run_python(
        _POOL_PROGRAM,
        {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST},
        as_file=True,
        argv=[module, str(busy)],
    )
    assert (run.returncode, run.stderr) == (0, "")
    endpoint.wait_for(2, timeout=10)
    return len(endpoint.payloads())


@pytest.mark.parametrize("module", ["multiprocessing", "multiprocess"])
def test_a_pool_worker_that_ends_normally_delivers_its_event(
    module: str, endpoint: Endpoint
) -> None:
    """A worker ends through ``os._exit``: only a `util.Finalize` of *its* package runs,
    so the exit flush is registered with each of `multiprocessing` and `multiprocess`
    (a `multiprocess` worker's events were lost). A worker's event must also be built
    before the pool's ``terminate`` (SIGTERM): `tests/test_outbox_flow.py` covers a
    built one, `tests/test_runtime.py` that a worker never waits to build it."""
    assert _pool_events(endpoint, module, 0.0) == 2
