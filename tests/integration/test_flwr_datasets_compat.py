"""The one-line adoption on the real Flower Datasets: its telemetry module is the drop-in.

A real interpreter puts `flwr_datasets_telemetry.compat` in ``sys.modules`` under the
name of Flower Datasets' own ``flwr_datasets.common.telemetry`` before importing
``flwr_datasets``, so every unchanged ``event(...)`` call site of the real library (load
a partition, a split, plot label distributions) goes through this package, with
telemetry on by default and delivered to a loopback endpoint. All data is local CSV
(``HF_*_OFFLINE=1``); ``HOME`` is a temporary folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ..helpers import run_python
from ..servers import Endpoint

PROGRAM = """
import json, logging, sys
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import compat
sys.modules["flwr_datasets.common.telemetry"] = compat  # the one line, from outside

from flwr_datasets import FederatedDataset
from flwr_datasets.common import EventType, event, telemetry
from flwr_datasets.partitioner import DirichletPartitioner
from flwr_datasets.visualization import (
    plot_comparison_label_distribution, plot_label_distributions,
)

csv_file, local_folder = sys.argv[1], sys.argv[2]

def federated():
    return FederatedDataset(
        dataset="csv",
        data_files={"train": csv_file, "test": csv_file},
        partitioners={"train": 4, "test": DirichletPartitioner(
            2, partition_by="label", alpha=1.0, min_partition_size=0)},
    )

fds = federated()
sizes = [len(fds.load_partition(i, "train")) for i in range(4)]
fds.load_partition(1, "test")
fds.load_split("test")
fds.load_split("train")
federated().load_partition(0, "train")  # a second FederatedDataset: the same event
plot_label_distributions(fds.partitioners["train"], "label", verbose_labels=False)
plot_comparison_label_distribution(
    [fds.partitioners["train"], fds.partitioners["test"]], "label", verbose_labels=False)
local = FederatedDataset(dataset=local_folder, partitioners={"train": 2})
local.load_partition(0)
ping = event(EventType.PING)
print(json.dumps({
    "sizes": sizes,
    "ping": ping.result(timeout=0),
    "drop_in": telemetry is compat and EventType is compat.EventType,
    "original_never_ran": not logging.getLogger("flwr-datasets-telemetry").handlers,
    "flushed": t.flush(30),
}))
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="flwr-datasets 0.6 needs Python 3.11+")
def test_the_real_library_s_events_arrive_through_the_drop_in(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    rows = "\n".join(f"{i},{i % 3}" for i in range(40))
    csv_file = tmp_path / "tiny.csv"
    csv_file.write_text(f"feature,label\n{rows}\n")
    local_folder = tmp_path / "private-data"
    local_folder.mkdir()
    (local_folder / "train.csv").write_text(f"feature,label\n{rows}\n")
    home = tmp_path / "home"
    home.mkdir()
    run = run_python(
        PROGRAM,
        {  # FLWR_TELEMETRY_ENABLED unset: on by default
            "FLWR_TELEMETRY_ENDPOINT": endpoint.url,
            "FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware",
            "HOME": str(home),
            "HF_HOME": str(tmp_path / "hf"),
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "MPLBACKEND": "Agg",
        },
        timeout=300,
        argv=[str(csv_file), str(local_folder)],
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result == {
        "sizes": [10, 10, 10, 10],
        "ping": "queued",
        "drop_in": True,
        "original_never_ran": True,
        "flushed": False,  # offline: queued in the outbox, not delivered
    }
    # Offline (HF_*_OFFLINE), the host only queued its events in the outbox: the
    # uploader of an online process on this machine delivers them later, like this one.
    upload = run_python(
        "import sys\nfrom flwr_datasets_telemetry._uploader import main\n"
        "sys.exit(main(sys.argv[1:]))",
        {"HOME": str(home)},
        argv=[os.environ["FLWR_HOME"]],
    )
    assert upload.returncode == 0, upload.stderr

    expected = [
        ("LOAD_PARTITION_CALLED", {"dataset_name": "csv", "split": "train",
                                   "partitioner": "IidPartitioner", "num_partitions": 4}),
        ("LOAD_PARTITION_CALLED", {"dataset_name": "csv", "split": "test",
                                   "partitioner": "DirichletPartitioner", "num_partitions": 2}),
        ("LOAD_SPLIT_CALLED", {"dataset_name": "csv", "split": "test"}),
        ("LOAD_SPLIT_CALLED", {"dataset_name": "csv", "split": "train"}),
        ("PLOT_LABEL_DISTRIBUTION_CALLED", {"plot_type": "bar"}),
        ("PLOT_COMPARISON_LABEL_DISTRIBUTION_CALLED", {"num_compare": 2, "plot_type": "bar"}),
        ("LOAD_PARTITION_CALLED", {"dataset_name": "<local>", "split": "train",
                                   "partitioner": "IidPartitioner", "num_partitions": 2}),
        ("PING", {}),
    ]  # fmt: skip
    assert endpoint.wait_for(len(expected))
    payloads = endpoint.payloads()  # each one checked against the shipped schema
    assert [
        (p["event_type"], {k: v for k, v in p["event_details"].items() if k != "outcome"})
        for p in payloads
    ] == expected
    assert {p["event_details"]["outcome"] for p in payloads} == {"success"}
    packages = [p["context"]["package"]["package_name"] for p in payloads]
    assert packages == ["flwr-datasets"] * 7 + [None]  # PING came from the program itself
    assert len({p["context"]["cluster"] for p in payloads}) == 1
    for body in endpoint.bodies:
        assert b"federated_dataset_id" not in body
        assert str(tmp_path).encode() not in body
        assert b"private-data" not in body
    assert not (home / ".flwr").exists()  # nothing of the original module's ran
