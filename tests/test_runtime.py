"""The hand-off itself: a bounded queue, counted drops, an honest `flush`."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flwr_datasets_telemetry import _runtime, event, flush, hookimpl
from flwr_datasets_telemetry._config import Config


class GatedTransport:
    """Holds every delivery until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.delivered: list[str] = []

    @hookimpl
    def telemetry_send(self, payload: dict[str, Any]) -> bool:
        self.gate.wait(10)
        self.delivered.append(payload["event_type"])
        return True


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Any:
    transport = GatedTransport()
    config = Config(home=None, blocked=frozenset({"hardware", "http"}), autoload=False)
    runtime = _runtime.Runtime(config, _runtime.random_uuid(), {"gated": transport})
    monkeypatch.setattr(_runtime, "current", runtime)
    yield runtime, transport
    transport.gate.set()
    runtime.close()


def test_overflow_is_dropped_and_counted_and_flush_says_so(gated: Any) -> None:
    runtime, transport = gated
    total = _runtime.MAX_QUEUE + 500
    for n in range(total):
        event(f"kind{n}")
    assert flush(0.05) is False  # the sender is held at the gate
    assert 499 <= runtime.dropped <= 500  # the first may already be in the sender's hands
    transport.gate.set()
    assert flush(10) is False  # everything left was delivered, but some were lost
    assert len(transport.delivered) == total - runtime.dropped
    event("after")
    assert flush(10) is True  # nothing lost since the last flush


def senders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "flwr-datasets-telemetry"]


def test_one_sender_thread_while_busy_and_none_when_idle(gated: Any) -> None:
    _, transport = gated
    for thread in senders():  # another test's sender, finishing its last event
        thread.join(5)

    def burst(n: int) -> None:
        for i in range(50):
            event(f"t{n}-{i}")

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(senders()) == 1  # held at the gate, with 399 events queued behind
    transport.gate.set()
    assert flush(10)
    assert len(transport.delivered) == 400
    for thread in senders():
        thread.join(5)
    assert senders() == []
