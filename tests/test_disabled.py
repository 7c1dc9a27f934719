"""Disabled means silent: no socket, no file, no thread, no subprocess, no cpuinfo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import run_python
from .servers import Endpoint

PROGRAM = """
import json, subprocess, sys, threading
started = []
_popen_init = subprocess.Popen.__init__
def spy(self, *args, **kwargs):
    started.append(args[0] if args else kwargs.get("args"))
    _popen_init(self, *args, **kwargs)
subprocess.Popen.__init__ = spy

import flwr_datasets_telemetry as telemetry
from tests.fake_flwr_datasets import FederatedDataset
fds = FederatedDataset(dataset="mnist", partitioners={"train": 10})
for i in range(100):
    fds.load_partition(i, "train")
telemetry.event("by_hand", {"n": 1})
print(json.dumps({
    "flushed": telemetry.flush(5),
    "threads": threading.active_count(),
    "subprocesses": started,
    "heavy": sorted(m for m in ("requests", "cpuinfo", "pluggy") if m in sys.modules),
}))
"""


@pytest.mark.parametrize(
    "env",
    [
        {"FLWR_TELEMETRY_ENABLED": "0"},
        {"FLWR_TELEMETRY_ENABLED": "off"},
        {"DO_NOT_TRACK": "1"},
        {"DO_NOT_TRACK": "true"},
    ],
    ids=lambda env: "=".join(next(iter(env.items()))),
)
def test_disabled_by_variable(env: dict[str, str], endpoint: Endpoint, home: Path) -> None:
    run = run_python(PROGRAM, {**env, "FLWR_TELEMETRY_ENDPOINT": endpoint.url})
    assert (run.returncode, run.stderr) == (0, "")
    facts = json.loads(run.stdout)
    assert facts == {"flushed": True, "threads": 1, "subprocesses": [], "heavy": []}
    assert endpoint.connections == 0
    assert not home.exists()


def test_disabled_with_logging_sends_and_writes_nothing(endpoint: Endpoint, home: Path) -> None:
    run = run_python(
        PROGRAM,
        {
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_TELEMETRY_LOGGING": "1",
            "FLWR_TELEMETRY_ENDPOINT": endpoint.url,
        },
    )
    assert run.returncode == 0
    assert "event load_partition: {" in run.stderr
    assert "event by_hand: {" in run.stderr
    assert "delivered" not in run.stderr
    assert endpoint.connections == 0
    assert not home.exists()
