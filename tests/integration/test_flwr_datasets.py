"""Adoption on the real Flower Datasets (installed from PyPI by the ``integration`` extra).

A real `FederatedDataset` over a small CSV the test writes (``dataset="csv"``: no hub
access), with `track` applied to the real methods, in a real interpreter whose home is
a temporary folder: flwr-datasets' own telemetry is switched off and cannot write to
the real ``~/.flwr``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ..helpers import run_python
from ..schema import validated

PROGRAM = """
import json, sys
from flwr_datasets import FederatedDataset
from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner
from flwr_datasets_telemetry import track
from flwr_datasets_telemetry.testing import capture_events

FederatedDataset.load_partition = track("load_partition")(FederatedDataset.load_partition)
FederatedDataset.load_split = track("load_split")(FederatedDataset.load_split)
IidPartitioner.load_partition = track("partitioner_load_partition")(IidPartitioner.load_partition)

csv_path = sys.argv[1]
with capture_events() as captured:
    fds = FederatedDataset(
        dataset="csv",
        data_files={"train": csv_path, "test": csv_path},
        partitioners={"train": 4, "test": DirichletPartitioner(2, partition_by="label", alpha=1.0,
                                                                 min_partition_size=0)},
    )
    sizes = [len(fds.load_partition(i, "train")) for i in range(4)]
    fds.load_split("test")
    try:
        fds.load_partition(99, "train")
    except Exception as error:
        failure = type(error).__name__
    else:
        failure = None
    standalone = IidPartitioner(num_partitions=5)
    standalone.dataset = fds.load_split("train")
    standalone.load_partition(0)
    print(json.dumps({"sizes": sizes, "failure": failure, "payloads": captured.payloads()}))
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="flwr-datasets 0.6 needs Python 3.11+")
def test_names_collector_reports_the_real_federated_dataset(tmp_path: Path) -> None:
    csv_file = tmp_path / "tiny.csv"
    rows = "\n".join(f"{i},{i % 3}" for i in range(40))
    csv_file.write_text(f"feature,label\n{rows}\n")
    home = tmp_path / "home"
    home.mkdir()
    run = run_python(
        PROGRAM,
        {
            "FLWR_TELEMETRY_ENABLED": "0",
            "HOME": str(home),
            "HF_HOME": str(tmp_path / "hf"),
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
        },
        timeout=300,
        argv=[str(csv_file)],
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert sum(result["sizes"]) == 40
    payloads = [validated(p) for p in result["payloads"]]
    by_type: dict[str, list[dict[str, object]]] = {}
    for payload in payloads:
        by_type.setdefault(payload["event_type"], []).append(payload["event_details"])

    partitioners = {
        "train": {"partitioner": "IidPartitioner", "num_partitions": 4},
        "test": {"partitioner": "DirichletPartitioner", "num_partitions": 2},
    }
    assert by_type["load_partition"][0] == {
        "dataset_name": "csv",
        "split": "train",
        "partitioners": partitioners,
        "partitioner": "IidPartitioner",
        "num_partitions": 4,
        "outcome": "success",
    }
    assert [d["outcome"] for d in by_type["load_partition"]] == ["success", result["failure"]]
    assert by_type["load_split"][0]["split"] == "test"
    assert {"dataset_name": "csv", "split": "train"}.items() <= by_type["load_split"][-1].items()
    partitioner_events = by_type["partitioner_load_partition"]
    assert {
        "partitioner": "IidPartitioner",
        "num_partitions": 5,
        "outcome": "success",
    } in partitioner_events
