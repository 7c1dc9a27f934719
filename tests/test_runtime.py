"""The hand-off itself: a bounded queue, counted drops, an honest `flush`."""

from __future__ import annotations

import re
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry import _runtime, event, flush, hookimpl
from flwr_datasets_telemetry._config import Config

from .fake_flwr_datasets import FederatedDataset, IidPartitioner
from .helpers import run_python
from .servers import Endpoint


class GatedTransport:
    """Holds every delivery until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.delivered: list[str] = []
        self.payloads: list[dict[str, Any]] = []
        self.waiting = threading.Event()

    @hookimpl
    def telemetry_send(self, payload: dict[str, Any]) -> bool:
        self.waiting.set()
        self.gate.wait(10)
        self.delivered.append(payload["event_type"])
        self.payloads.append(dict(payload))
        return True


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Any:
    transport = GatedTransport()
    config = Config(home=None, blocked=frozenset({"hardware", "http"}), autoload=False)
    runtime = _runtime.Runtime(config, _runtime.random_uuid(), {"gated": transport})
    monkeypatch.setattr(_runtime.STATE, "current", runtime)
    yield runtime, transport
    transport.gate.set()
    runtime.close()


def test_overflow_is_dropped_and_counted_and_flush_says_so(gated: Any) -> None:
    runtime, transport = gated
    total = _runtime.MAX_QUEUE + 500
    for n in range(total):
        event(f"kind{n}")
    assert flush(0.05) is False  # the sender is held at the gate
    # The first batch may already be in the sender's hands.
    assert 500 - _runtime.BATCH <= runtime.dropped <= 500
    transport.gate.set()
    assert flush(10) is False  # everything left was delivered, but some were lost
    assert len(transport.delivered) == total - runtime.dropped
    event("after")
    assert flush(10) is True  # nothing lost since the last flush


def test_one_sender_thread_while_busy_and_none_when_idle(gated: Any) -> None:
    runtime, transport = gated

    def burst(n: int) -> None:
        for i in range(50):
            event(f"t{n}-{i}")

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert transport.waiting.wait(10)  # the sender runs (and counted itself) by now
    assert runtime.senders == 1  # held at the gate, with 399 events queued behind
    transport.gate.set()
    assert flush(10)
    assert len(transport.delivered) == 400
    assert runtime.senders == 0


def test_queued_events_keep_no_host_object_alive(gated: Any) -> None:
    """An argument (or ``self``) dropped by the host is freed at once, not when the
    event is built; the event still carries its facts (from the caller's snapshot)."""
    _, transport = gated
    event("hold the sender")
    assert transport.waiting.wait(10)
    dataset = FederatedDataset(dataset="mnist", partitioners={"train": 2})
    partitioner = IidPartitioner(3)
    alive: list[weakref.ref[object]] = [weakref.ref(dataset), weakref.ref(partitioner)]
    dataset.load_split("train")
    partitioner.load_partition(0)
    del dataset, partitioner
    assert [ref() for ref in alive] == [None, None]  # queued, yet freed
    transport.gate.set()
    assert flush(10)
    details = {p["event_type"]: p["event_details"] for p in transport.payloads}
    assert details["load_split"]["dataset_name"] == "mnist"
    assert details["load_split"]["num_partitions"] == 2
    assert details["partitioner_load_partition"]["num_partitions"] == 3


def test_a_signal_handler_re_entering_a_tracked_call_never_deadlocks(endpoint: Endpoint) -> None:
    code = """
import os, signal, sys
from flwr_datasets_telemetry import track, flush

@track("inner")
def inner(n):
    return n

calls = []
def handler(signum, frame):
    calls.append(inner(len(calls)))

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
for i in range(20000):
    inner(i % 7)
signal.setitimer(signal.ITIMER_REAL, 0, 0)
print("done", len(calls) > 0, flush(10))
"""
    for _ in range(3):
        run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url}, 60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["done", "True", "True"]
        assert run.stderr == ""


def test_a_del_calling_tracked_code_at_exit_never_hangs_nor_hides_the_host_s_output(
    endpoint: Endpoint,
) -> None:
    code = """
import sys
from flwr_datasets_telemetry import track

class Dataset:
    @track("close")
    def close(self, split="train"):
        return split

    def __del__(self):
        self.close()
        sys.stdout.write("host finalizer ran\\n")

keep = Dataset()
keep.close()
cycle = Dataset()
cycle.me = cycle
"""
    for _ in range(8):
        run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url}, 30)
        assert run.returncode == 0, run.stderr
        assert run.stdout.count("host finalizer ran") == 2
        assert run.stderr == ""


@pytest.mark.parametrize("timeout", [float("inf"), 1e10, 1e300])
def test_flush_accepts_any_timeout(timeout: float, captured: Any) -> None:
    event("huge timeout")
    assert flush(timeout) is True
    assert captured.details("huge timeout") == [{"outcome": "success"}]


def test_events_dropped_at_exit_are_said_with_logging_on(black_hole: Any) -> None:
    code = "import flwr_datasets_telemetry as t\nfor n in range(10): t.event(f'kind{n}')\n"
    run = run_python(
        code,
        {
            "FLWR_TELEMETRY_ENDPOINT": black_hole.url,
            "FLWR_TELEMETRY_EXIT_TIMEOUT": "0",
            "FLWR_TELEMETRY_LOGGING": "1",
        },
    )
    assert run.returncode == 0
    assert re.search(r"\d+ event\(s\) dropped at exit: the exit budget \(0 s", run.stderr)


def test_one_call_failing_to_build_costs_only_itself_in_its_batch(
    gated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collectors are isolated already; anything else that fails while one call of a
    batch is built (here: injected) must not take the other calls with it."""
    from flwr_datasets_telemetry._pipeline import Pipeline

    runtime, transport = gated
    build = Pipeline.build

    def failing_build(self: Pipeline, call: Any, notes: Any = None) -> Any:
        if call.event_type == "bad":
            raise SystemExit(3)
        return build(self, call, notes)

    monkeypatch.setattr(Pipeline, "build", failing_build)
    event("first")  # held at the gate: the next ones queue up and go as one batch
    assert transport.waiting.wait(10)
    for kind in ("a", "bad", "b", "c"):
        event(kind)
    transport.gate.set()
    assert flush(10) is False  # one was lost...
    assert sorted(transport.delivered) == ["a", "b", "c", "first"]  # ...and only that one
    assert runtime.failed == 1


def test_a_module_imported_when_needed_is_imported_under_the_fork_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import_guarded` holds `IMPORT_GUARD` for the import (a fork waits for it), and
    takes nothing for a module already imported."""
    (tmp_path / "slow_to_import.py").write_text(
        "import builtins\nbuiltins.entered.set()\nbuiltins.proceed.wait(10)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entered, proceed = threading.Event(), threading.Event()
    monkeypatch.setattr("builtins.entered", entered, raising=False)
    monkeypatch.setattr("builtins.proceed", proceed, raising=False)
    worker = threading.Thread(target=_runtime.import_guarded, args=("slow_to_import",))
    worker.start()
    try:
        assert entered.wait(10)
        assert _runtime.IMPORT_GUARD.locked()  # a host's fork would wait here
    finally:
        proceed.set()
        worker.join(10)
    assert not _runtime.IMPORT_GUARD.locked()
    assert "slow_to_import" in sys.modules
    monkeypatch.delitem(sys.modules, "slow_to_import")

    with _runtime.IMPORT_GUARD:  # held: an imported module must not wait for it
        _runtime.import_guarded("json")


def _host_busy_until(stop: threading.Event, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main thread's CPU clock runs as fast as the wall clock until ``stop`` is
    set, then stands still: a host busy, then paused, whatever else the machine runs."""
    monkeypatch.setattr(
        _runtime, "_cpu_of_main_thread", lambda: 0.0 if stop.is_set() else time.monotonic()
    )


def _waiting_runtime() -> tuple[_runtime.Runtime, threading.Condition]:
    runtime = _runtime.Runtime(Config(home=None), _runtime.random_uuid())
    cond = threading.Condition(runtime._lock)
    runtime._cond = cond
    return runtime, cond


def test_the_first_build_waits_while_the_host_is_busy_and_goes_when_it_pauses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the other threads keep a CPU busy the sender sleeps (the first build would
    cost them three times its CPU time); it goes on once the host pauses."""
    runtime, cond = _waiting_runtime()
    stop = threading.Event()
    _host_busy_until(stop, monkeypatch)
    pause = threading.Timer(0.4, stop.set)  # the host pauses after 0.4 s
    started = time.monotonic()
    pause.start()
    try:
        runtime._wait_while_busy(cond, started + 30)
        waited = time.monotonic() - started
    finally:
        pause.join()
    assert 0.4 <= waited < 10, waited


def test_a_flush_ends_the_wait_for_a_quiet_moment_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime, cond = _waiting_runtime()
    _host_busy_until(threading.Event(), monkeypatch)  # busy for good
    started = time.monotonic()
    waiter = threading.Thread(target=runtime._wait_while_busy, args=(cond, started + 30))
    waiter.start()
    assert runtime.flush(5)  # nothing queued: at once, and it wakes the sender
    waiter.join(10)
    assert not waiter.is_alive()
    assert time.monotonic() - started < 10


def test_the_wait_for_a_quiet_moment_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, cond = _waiting_runtime()
    _host_busy_until(threading.Event(), monkeypatch)  # never pauses
    started = time.monotonic()
    runtime._wait_while_busy(cond, started + 0.3)
    waited = time.monotonic() - started
    assert 0.3 <= waited < 10, waited
    assert _runtime.QUIET_WAIT <= 1.0  # the bound a host's events may wait, documented


def test_the_sender_waits_while_the_main_thread_computes_and_only_then() -> None:
    """The real clocks: a main thread in a busy loop holds the first build back; an
    idle one, or a busy background thread, does not."""
    run = run_python(
        """
        import threading, time
        from flwr_datasets_telemetry import _runtime

        def waited(busy_main, busy_thread):
            runtime = _runtime.Runtime(_runtime.CONFIG, "c")
            cond = threading.Condition(runtime._lock)
            stop, took = threading.Event(), []
            def spin():
                while not stop.is_set():
                    pass
            def sender():
                started = time.monotonic()
                runtime._wait_while_busy(cond, started + 0.6)
                took.append(time.monotonic() - started)
                stop.set()
            if busy_thread:
                threading.Thread(target=spin).start()
            threading.Thread(target=sender).start()
            if busy_main:
                spin()
            stop.wait(10)
            time.sleep(0.05)
            return took[0]

        print(waited(True, False) >= 0.6, waited(False, False) < 0.3, waited(False, True) < 0.3)
        """
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True", "True"]


@pytest.mark.parametrize("module", ["multiprocessing", "multiprocess"])
def test_a_multiprocessing_worker_never_waits_for_a_quiet_moment(module: str) -> None:
    """A pool ends busy workers with SIGTERM (no exit hooks): their first events must
    be built at once, busy or not (`multiprocess`: the twin `datasets` uses)."""
    pytest.importorskip(module)
    run = run_python(
        f"""
        import threading, time
        import {module} as multiprocessing
        from flwr_datasets_telemetry import _runtime

        def in_worker(_):
            runtime = _runtime.Runtime(_runtime.CONFIG, "c")
            cond = threading.Condition(runtime._lock)
            took = []
            def sender():
                started = time.monotonic()
                runtime._quiet_moment(cond)
                took.append(time.monotonic() - started)
            thread = threading.Thread(target=sender)
            thread.start()
            while thread.is_alive():  # the worker's main thread computes meanwhile
                pass
            return took[0], _runtime._in_multiprocessing_child()

        if __name__ == "__main__":
            assert not _runtime._in_multiprocessing_child()
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                waited, child = pool.map(in_worker, [0])[0]
            print(child, waited < 0.5)
        """,
        as_file=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True"]
