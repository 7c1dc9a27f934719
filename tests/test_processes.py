"""os.fork, multiprocessing (every start method), pools, threads and asyncio."""

from __future__ import annotations

from pathlib import Path

import pytest

from .distributions import write_distribution
from .helpers import REPO, run_python
from .servers import Endpoint

# Children deliver at exit; a generous budget keeps a loaded machine from dropping them
# (the budget itself is tested in test_delivery).
FAST = {"FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware", "FLWR_TELEMETRY_EXIT_TIMEOUT": "20"}


def clusters(endpoint: Endpoint) -> dict[str, str]:
    return {p["event_type"]: p["context"]["cluster"] for p in endpoint.payloads()}


def test_an_os_fork_child_delivers_its_own_events(endpoint: Endpoint) -> None:
    code = """
import os, sys
import flwr_datasets_telemetry as t
t.event("parent_before")
assert t.flush(10)
pid = os.fork()
if pid == 0:
    t.event("child")
    sys.exit(0)          # a normal interpreter exit: atexit delivers
_, status = os.waitpid(pid, 0)
t.event("parent_after")
assert t.flush(10)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST})
    assert run.returncode == 0, run.stderr
    seen = clusters(endpoint)
    assert set(seen) == {"parent_before", "child", "parent_after"}
    assert len(set(seen.values())) == 1  # the same workload keeps one cluster id


def test_fork_while_the_sender_imports_does_not_deadlock_the_child(endpoint: Endpoint) -> None:
    code = """
import os, sys, warnings
import flwr_datasets_telemetry as t
# Python 3.12+ warns about any fork of a multi-threaded process; forking while the
# sender works is what this test does on purpose (see the idle test below).
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
t.event("first")          # the sender now imports pluggy and requests...
pids = []
for n in range(5):        # ...while we fork, again and again
    pid = os.fork()
    if pid == 0:
        t.event(f"child{n}")
        t.flush(10)
        os._exit(0)
    pids.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
assert codes == [0] * 5, codes
assert t.flush(10)
"""
    for _ in range(3):  # the race is with the sender's first imports: try it a few times
        endpoint.bodies.clear()
        run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST}, timeout=60)
        assert (run.returncode, run.stderr) == (0, "")
        assert set(clusters(endpoint)) == {"first", *(f"child{n}" for n in range(5))}


def test_an_idle_process_forks_single_threaded(endpoint: Endpoint) -> None:
    code = """
import os, threading
import flwr_datasets_telemetry as t
t.event("before")
assert t.flush(10)
for thread in threading.enumerate():
    if thread is not threading.main_thread():
        thread.join(5)
assert threading.active_count() == 1, threading.enumerate()
pid = os.fork()  # -W error: Python 3.12's multi-threaded fork warning would fail here
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
"""
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "PYTHONWARNINGS": "error", **FAST}
    run = run_python(code, env)
    assert (run.returncode, run.stderr) == (0, "")
    assert len(endpoint.payloads()) == 1


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_children_deliver_for_every_start_method(
    method: str, endpoint: Endpoint
) -> None:
    code = f"""
import multiprocessing as mp
import flwr_datasets_telemetry as t
from tests.fake_flwr_datasets import FederatedDataset

def work(n):
    FederatedDataset(dataset=f"child{{n}}", partitioners={{"train": 2}}).load_split("train")

if __name__ == "__main__":
    ctx = mp.get_context({method!r})
    procs = [ctx.Process(target=work, args=(n,)) for n in range(3)]
    for p in procs: p.start()
    for p in procs: p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0]
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST}, as_file=True)
    assert run.returncode == 0, run.stderr
    assert endpoint.wait_for(3)  # delivered by the uploader, after the children exit
    names = sorted(p["event_details"]["dataset_name"] for p in endpoint.payloads())
    assert names == ["child0", "child1", "child2"]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pools_work_and_exit_cleanly(method: str, endpoint: Endpoint) -> None:
    code = f"""
import multiprocessing as mp
import flwr_datasets_telemetry as t

@t.track("square")
def square(x):
    return x * x

if __name__ == "__main__":
    square(0)
    with mp.get_context({method!r}).Pool(4) as pool:
        assert pool.map(square, range(100)) == [x * x for x in range(100)]
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST}, as_file=True)
    assert (run.returncode, run.stderr) == (0, "")
    assert run.seconds < 30
    assert endpoint.wait_for(1)
    payloads = endpoint.payloads()
    assert payloads
    assert {p["event_type"] for p in payloads} == {"square"}
    assert len(payloads) <= 5  # the parent and each worker at most once


def test_asyncio_tasks(endpoint: Endpoint) -> None:
    code = """
import asyncio
import flwr_datasets_telemetry as t

@t.track("fetch")
async def fetch(split):
    await asyncio.sleep(0.01)
    return split

async def main():
    return await asyncio.gather(*(fetch(s) for s in ["train", "test"] * 50))

assert len(asyncio.run(main())) == 100
assert t.flush(10)
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST})
    assert run.returncode == 0, run.stderr
    splits = sorted(p["event_details"]["split"] for p in endpoint.payloads())
    assert splits == ["test", "train"]


def test_a_slow_plugin_import_never_makes_the_host_s_fork_wait(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    started = tmp_path / "import-started"
    write_distribution(
        site,
        "acme-slow",
        {"slow": "acme_slow"},
        {"acme_slow": f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(4)\n"},
    )
    code = f"""
import os, time, warnings
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
import flwr_datasets_telemetry as t
t.event("first")
while not os.path.exists({str(started)!r}):
    time.sleep(0.01)
waits = []
for n in range(5):
    begin = time.monotonic()
    pid = os.fork()
    if pid == 0:
        t.event(f"child{{n}}")  # a child forked mid-import stays silent
        t.flush(1)
        os._exit(0)
    waits.append(time.monotonic() - begin)
    os.waitpid(pid, 0)
print(max(waits))
"""
    run = run_python(
        code,
        {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "PYTHONPATH": f"{site}:{REPO}", **FAST},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) < 0.5  # it waited a whole second per fork before
    assert endpoint.wait_for(1)
    assert {p["event_type"] for p in endpoint.payloads()} == {"first"}
