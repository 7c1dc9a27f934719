"""The ``telemetry_events`` fixture, used the way a library's own tests would use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fake_flwr_datasets import FederatedDataset
from .helpers import run_python

if TYPE_CHECKING:
    from flwr_datasets_telemetry.testing import CapturedEvents


def test_load_partition_emits_one_event(telemetry_events: CapturedEvents) -> None:
    fds = FederatedDataset(dataset="mnist", partitioners={"train": 10})
    for partition_id in range(10):
        fds.load_partition(partition_id, "train")
    (details,) = telemetry_events.details("load_partition")
    assert details["dataset_name"] == "mnist"
    assert details["partitioner"] == "IidPartitioner"
    assert details["num_partitions"] == 10
    assert telemetry_events.payloads("load_split") == []


def test_the_fixture_sends_and_writes_nothing(telemetry_events: CapturedEvents, home: str) -> None:
    FederatedDataset(dataset="mnist", partitioners={"train": 2}).load_split("train")
    (payload,) = telemetry_events.payloads()
    assert payload["context"]["source"] is not None  # an id for the payload, in memory
    assert "hw" not in payload["context"]


def test_the_plugin_is_registered_and_starts_nothing_at_startup() -> None:
    code = """
import threading
import pytest
config = pytest.main(["--co", "-q", "-p", "no:cacheprovider", "--noconftest", "-o",
                      "testpaths=", "--rootdir", ".", "nonexistent_dir_xyz"],
                     plugins=[])
import sys
print("flwr_datasets_telemetry.pytest_plugin" in sys.modules, threading.active_count())
"""
    run = run_python(code)
    assert run.stdout.strip().splitlines()[-1] == "True 1"
