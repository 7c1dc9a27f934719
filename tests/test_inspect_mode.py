"""The issue's finish line: decorate, run disabled with logging, read the payload."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .helpers import run_python
from .schema import validated

PROGRAM = """
from tests.fake_flwr_datasets import FederatedDataset, DirichletPartitioner
fds = FederatedDataset(dataset="flwrlabs/cifar10",
                       partitioners={"train": DirichletPartitioner(25), "test": 4})
for i in range(3):
    fds.load_partition(i, "train")
try:
    fds.load_partition(-1, "test")
except ValueError:
    pass
"""


def logged_payloads(stderr: str) -> list[dict[str, Any]]:
    found = re.findall(r"^flwr_datasets_telemetry: event \S+: (\{.*\})$", stderr, re.MULTILINE)
    return [validated(json.loads(body)) for body in found]


def test_disabled_with_logging_shows_the_complete_payload(home: Path) -> None:
    run = run_python(PROGRAM, {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_TELEMETRY_LOGGING": "1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    payloads = logged_payloads(run.stderr)
    assert len(payloads) == 2, run.stderr
    first, failed = payloads
    assert set(first) == {"schema_version", "event_type", "event_details", "context"}
    assert first["schema_version"] == 1
    assert first["event_type"] == "load_partition"
    assert first["event_details"] == {
        "dataset_name": "flwrlabs/cifar10",
        "split": "train",
        "partitioners": {
            "train": {"partitioner": "DirichletPartitioner", "num_partitions": 25},
            "test": {"partitioner": "IidPartitioner", "num_partitions": 4},
        },
        "partitioner": "DirichletPartitioner",
        "num_partitions": 25,
        "outcome": "success",
    }
    context = first["context"]
    assert set(context) == {"source", "cluster", "date", "package", "platform", "hw", "env"}
    assert context["source"] is None  # disabled: no id is created to be shown
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", context["cluster"]
    )
    assert set(context["package"]) == {"package_name", "package_version", "telemetry_version"}
    assert set(context["platform"]) == {
        "system",
        "release",
        "machine",
        "python_implementation",
        "python_version",
    }
    assert {"cpu_count", "memory_gib"} <= set(context["hw"])
    assert failed["event_details"]["outcome"] == "ValueError"
    assert failed["event_details"]["split"] == "test"
    assert "secret-message" not in run.stderr
    assert "/home/alice" not in run.stderr
    assert not home.exists()


def test_source_id_is_shown_when_it_exists_and_never_created(home: Path) -> None:
    home.mkdir()
    (home / "source").write_text("0b9ef7a2-1c5c-4f61-9d5e-8c1f3c2a9b10\n")
    run = run_python(PROGRAM, {"DO_NOT_TRACK": "1", "FLWR_TELEMETRY_LOGGING": "true"})
    payloads = logged_payloads(run.stderr)
    assert payloads[0]["context"]["source"] == "0b9ef7a2-1c5c-4f61-9d5e-8c1f3c2a9b10"
    assert sorted(p.name for p in home.iterdir()) == ["source"]


def test_without_logging_nothing_is_printed_even_on_bad_values() -> None:
    run = run_python(PROGRAM, {"FLWR_TELEMETRY_ENABLED": "perhaps", "DO_NOT_TRACK": "maybe"})
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_bad_values_are_explained_when_logging_is_on() -> None:
    run = run_python(
        PROGRAM,
        {
            "FLWR_TELEMETRY_ENABLED": "perhaps",
            "FLWR_TELEMETRY_LOGGING": "1",
            "FLWR_TELEMETRY_EXIT_TIMEOUT": "soon",
        },
    )
    assert "FLWR_TELEMETRY_ENABLED='perhaps' is not a yes/no value" in run.stderr
    assert "FLWR_TELEMETRY_EXIT_TIMEOUT='soon'" in run.stderr
    assert "never sent" in run.stderr
