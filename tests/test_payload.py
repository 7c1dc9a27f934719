"""Payload assembly and sanitising, and the `names` collector's privacy rules."""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry._call import ArgumentPlan, TrackedCall
from flwr_datasets_telemetry._payload import (
    MAX_ITEMS,
    MAX_LOOKED,
    MAX_STRING,
    MAX_VALUES,
    assemble,
    dumps,
    sanitize,
)
from flwr_datasets_telemetry.collectors import names

from .fake_flwr_datasets import DirichletPartitioner, FederatedDataset, IidPartitioner

IDENTITY = {"source": "s", "cluster": "c"}


def test_sanitize_keeps_json_values_and_drops_the_rest() -> None:
    clean = sanitize(
        {
            "text": "x" * 1000,
            "int": 3,
            "big": 2**80,
            "float": 1.5,
            "nan": math.nan,
            "none": None,
            "flag": True,
            "list": [1, object(), "a"],
            "nested": {"a": {"b": {"c": {"d": {"e": 1}}}}},
            "object": object(),
            "bad key!": 1,
            3: "non-string key",
        }
    )
    assert clean == {
        "text": "x" * MAX_STRING,
        "int": 3,
        "float": 1.5,
        "none": None,
        "flag": True,
        "list": [1, "a"],
        "nested": {"a": {"b": {"c": {}}}},
    }
    json.dumps(clean, allow_nan=False)


class Endless(Mapping[Any, Any]):
    """A lazy mapping of a billion keys: costs its plugin nothing to return."""

    def __init__(self, valid: bool, nested: bool = False) -> None:
        self.valid, self.nested, self.read = valid, nested, 0

    def __getitem__(self, key: Any) -> Any:
        return 0

    def __len__(self) -> int:
        return 10**9

    def __iter__(self) -> Iterator[Any]:
        for n in range(10**9):
            self.read += 1
            yield f"k{n}" if self.valid else n

    def items(self) -> Any:
        for key in self:
            yield key, (Endless(self.valid, nested=True) if self.nested else 0)


@pytest.mark.parametrize(("valid", "nested"), [(False, False), (True, False), (True, True)])
def test_a_huge_answer_is_read_only_so_far(valid: bool, nested: bool) -> None:
    """A hostile or broken collector's answer costs a bounded amount of work and notes,
    valid keys or not, nested or not: the build took 0.84 s and 200 MiB for 2 million
    invalid keys (notes kept with logging off)."""
    answer = Endless(valid, nested)
    notes: list[str] = []
    clean = sanitize(answer, notes=notes)
    assert answer.read <= MAX_LOOKED + 1
    assert len(notes) <= 2 * MAX_VALUES  # one per value read, one per mapping cut
    assert len(json.dumps(clean)) < 64 << 10  # what one outbox entry takes
    if valid and not nested:
        assert len(clean) == MAX_ITEMS
    assert sum(1 for _ in _leaves(clean)) <= MAX_VALUES


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


def test_third_parties_get_their_own_key_and_cannot_overwrite_others() -> None:
    answers = [
        ("version", {"package_name": "flwr-datasets"}),
        ("platform", {"system": "Linux"}),
        ("hardware", {"cpu_count": 4}),
        ("names", {"split": "train", "outcome": "success"}),
        ("accelerators", {"gpus": 2}),
        ("source", {"stolen": True}),
        ("cluster", {"stolen": True}),
        ("hw", {"stolen": True}),
        ("event_details", {"stolen": True}),
        ("junk", ["not", "a", "mapping"]),
        ("Bad Name!", {"x": 1}),
    ]
    payload = assemble("load_partition", {"extra": 1}, answers, IDENTITY)
    assert payload == {
        "schema_version": 1,
        "event_type": "load_partition",
        "event_details": {"extra": 1, "split": "train", "outcome": "success"},
        "context": {
            "source": "s",
            "cluster": "c",
            "package": {"package_name": "flwr-datasets"},
            "platform": {"system": "Linux"},
            "hw": {"cpu_count": 4},
            "accelerators": {"gpus": 2},
            "event_details": {"stolen": True},
        },
    }


def test_dumps_is_compact_ascii_json() -> None:
    body = dumps({"a": "é", "b": [1, 2]})
    assert body == b'{"a":"\\u00e9","b":[1,2]}'


def collect(func: Any, *args: Any, outcome: str = "success", **kwargs: Any) -> dict[str, Any]:
    arguments = ArgumentPlan.for_function(func).pick(args, kwargs)
    return names.telemetry_collect(TrackedCall.handed_over("e", "m", arguments, outcome, None))


def test_names_from_self_and_arguments_without_running_host_code() -> None:
    fds = FederatedDataset(dataset="mnist", partitioners={"train": 10, "test": IidPartitioner(3)})
    facts = collect(FederatedDataset.load_partition, fds, 7, split="test")
    assert facts == {
        "dataset_name": "mnist",
        "split": "test",
        "partitioners": {
            "train": {"partitioner": "IidPartitioner", "num_partitions": 10},
            "test": {"partitioner": "IidPartitioner", "num_partitions": 3},
        },
        "partitioner": "IidPartitioner",
        "num_partitions": 3,
        "outcome": "success",
    }
    assert 7 not in json.loads(json.dumps(facts)).values()


def test_names_of_a_partitioner_method() -> None:
    partitioner = DirichletPartitioner(12)
    facts = collect(DirichletPartitioner.load_partition, partitioner, 5, outcome="KeyError")
    assert facts == {
        "partitioner": "DirichletPartitioner",
        "num_partitions": 12,
        "outcome": "KeyError",
    }


def test_arguments_outside_the_allow_list_never_reach_collectors() -> None:
    def load(dataset: str, partition_id: int, token: str, split: str = "train") -> None: ...

    arguments = ArgumentPlan.for_function(load).pick(("mnist", 3, "hunter2"), {})
    assert arguments == {"dataset": "mnist"}


@pytest.mark.parametrize(
    "name",
    [
        "/home/alice/data",
        "~/data",
        "./data",
        "..\\data",
        "C:\\Users\\alice",
        "a/b/c",
        "x" * 200,
        "with space",
        "",
    ],
)
def test_path_like_dataset_names_are_replaced(name: str) -> None:
    assert names.dataset_label(name) == names.LOCAL_DATASET


def test_a_hub_like_name_that_exists_on_disk_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "alice" / "private").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert names.dataset_label("alice/private") == names.LOCAL_DATASET
    assert names.dataset_label("flwrlabs/cifar10") == "flwrlabs/cifar10"
    assert names.dataset_label("mnist") == "mnist"


def test_a_relative_local_folder_stays_local_after_the_host_changes_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project" / "patients_smith_2024").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    call = TrackedCall.handed_over("e", "m", {"dataset": "patients_smith_2024"}, "success", None)
    monkeypatch.chdir(tmp_path / "elsewhere")  # before the sender builds the event
    assert names.telemetry_collect(call)["dataset_name"] == names.LOCAL_DATASET


def test_snapshots_keep_facts_but_no_host_object() -> None:
    class Proxy:
        """A lazy proxy: any attribute access on it is host code."""

        def __getattribute__(self, name: str) -> Any:
            raise AssertionError(f"host code ran: {name}")

    fds = FederatedDataset(dataset="mnist", partitioners={"train": IidPartitioner(4)})
    fds.__dict__["_lazy"] = Proxy()
    call = TrackedCall.handed_over("e", "m", {"self": fds, "split": "train"}, "success", None)
    referents = gc.get_referents(*call.arguments.values())
    assert fds not in referents
    facts = names.telemetry_collect(call)
    assert facts["dataset_name"] == "mnist"
    assert facts["num_partitions"] == 4


def test_the_date_is_now_in_utc_as_datetime_writes_it() -> None:
    """`utc_now` stands in for ``datetime.now(timezone.utc).isoformat()``."""
    import datetime

    from flwr_datasets_telemetry._pipeline import utc_now

    before = datetime.datetime.now(datetime.timezone.utc)
    stamp = utc_now()
    after = datetime.datetime.now(datetime.timezone.utc)
    parsed = datetime.datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert before - datetime.timedelta(microseconds=1) <= parsed <= after
    assert len(stamp) == len("2026-11-28T09:57:02.645256+00:00")


def test_remembering_sent_events_costs_little_memory_per_event() -> None:
    """De-duplication keeps up to 10,000 distinct events per process: a hash each, not
    the payload (875 bytes each, 8 MiB in all)."""
    import tracemalloc

    from flwr_datasets_telemetry._config import Config
    from flwr_datasets_telemetry._pipeline import Pipeline

    pipeline = Pipeline(Config(home=None, blocked=frozenset({"hardware"})), "cluster")
    calls = [
        TrackedCall.handed_over(f"kind{n}", "__main__", {}, "success", None) for n in range(2000)
    ]
    pipeline._prepare(calls[0])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ready = [pipeline._prepare(call) for call in calls[1:]]
        assert all(event is not None for event in ready)
        del ready
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept / len(calls) < 200  # bytes per remembered event
    assert all(pipeline._prepare(call) is None for call in calls[:10])  # still remembered
