"""`compat`: Flower Datasets' own ``event(EventType..., {...})``, through this package."""

from __future__ import annotations

import ast
import builtins
import importlib.util
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry import compat
from flwr_datasets_telemetry.compat import EventType, event
from flwr_datasets_telemetry.testing import CapturedEvents

from .helpers import run_python

FLOWER_EVENT_TYPES = [
    "PING",
    "LOAD_PARTITION_CALLED",
    "LOAD_SPLIT_CALLED",
    "PLOT_LABEL_DISTRIBUTION_CALLED",
    "PLOT_COMPARISON_LABEL_DISTRIBUTION_CALLED",
]


def flower_telemetry_module() -> ast.Module | None:
    """Flower Datasets' own telemetry module, parsed (importing it would start its pool)."""
    spec = importlib.util.find_spec("flwr_datasets")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "common" / "telemetry.py"
    return ast.parse(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_partition_details(**extra: Any) -> dict[str, Any]:
    """What `FederatedDataset.load_partition` of Flower Datasets 0.6 passes."""
    return {
        "federated_dataset_id": 140_234_567_890_123,
        "dataset_name": "mnist",
        "split": "train",
        "partitioner": "IidPartitioner",
        "num_partitions": 10,
        **extra,
    }


# -- the drop-in's shape -------------------------------------------------------------------


def test_event_types_are_flower_datasets_own_members_and_values() -> None:
    assert [(m.name, m.value) for m in EventType] == [(n, n) for n in FLOWER_EVENT_TYPES]
    assert EventType.LOAD_SPLIT_CALLED == "LOAD_SPLIT_CALLED"  # a str, as theirs
    assert json.dumps({"t": EventType.PING}) == '{"t": "PING"}'


def test_event_types_and_signature_match_the_installed_flower_datasets() -> None:
    module = flower_telemetry_module()
    if module is None:
        pytest.skip("flwr-datasets is not installed (the integration extra, Python 3.11+)")
    (enum,) = [n for n in module.body if isinstance(n, ast.ClassDef) and n.name == "EventType"]
    members = []
    for statement in enum.body:
        if isinstance(statement, ast.Assign):
            (target,) = statement.targets
            assert isinstance(target, ast.Name)
            value = statement.value
            auto = isinstance(value, ast.Call) and ast.unparse(value.func) == "auto"
            members.append((target.id, target.id if auto else ast.literal_eval(value)))
    assert [(m.name, m.value) for m in EventType] == members
    (theirs,) = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "event"]
    assert [a.arg for a in theirs.args.args] == ["event_type", "event_details"]
    assert event.__code__.co_varnames[:2] == ("event_type", "event_details")
    assert event.__defaults__ == (None,)


# -- the Future -------------------------------------------------------------------------------


def test_off_the_future_is_resolved_disabled_and_no_thread_starts() -> None:
    threads = threading.enumerate()
    future = event(EventType.PING)
    assert isinstance(future, Future)
    assert future.done()
    assert future.result(timeout=0) == compat.DISABLED == "disabled"
    seen: list[str] = []
    future.add_done_callback(lambda f: seen.append(f.result()))
    assert seen == ["disabled"]  # a resolved Future runs callbacks at once
    assert not future.cancel()
    assert event(EventType.PING) is not future  # nothing shared between callers
    assert threading.enumerate() == threads


def test_on_the_future_says_queued_and_no_thread_pool_is_made(captured: CapturedEvents) -> None:
    futures = [event(EventType.PING), event("PING"), event(EventType.LOAD_SPLIT_CALLED)]
    assert [f.result(timeout=0) for f in futures] == [compat.QUEUED] * 3
    assert compat.QUEUED == "queued"
    assert not [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")]
    assert [p["event_type"] for p in captured.payloads()] == ["PING", "LOAD_SPLIT_CALLED"]


def test_any_string_or_string_enum_is_a_type_anything_else_is_ignored(
    captured: CapturedEvents,
) -> None:
    class Theirs(str):
        __slots__ = ()

    assert event(Theirs("custom")).result(timeout=0) == "queued"
    assert event(42).result(timeout=0) == compat.IGNORED == "ignored"  # type: ignore[arg-type]
    assert event(None).result(timeout=0) == "ignored"  # type: ignore[arg-type]
    assert [p["event_type"] for p in captured.payloads()] == ["custom"]


# -- what is sent --------------------------------------------------------------------------


def test_load_partition_details_become_the_names_collector_s_facts(
    captured: CapturedEvents,
) -> None:
    event(EventType.LOAD_PARTITION_CALLED, load_partition_details())
    (payload,) = captured.payloads()
    assert payload["event_type"] == "LOAD_PARTITION_CALLED"
    assert payload["event_details"] == {
        "dataset_name": "mnist",
        "split": "train",
        "partitioner": "IidPartitioner",
        "num_partitions": 10,
        "outcome": "success",
    }
    body = json.dumps(payload)
    assert "federated_dataset_id" not in body
    assert "140234567890123" not in body


def test_the_visualisation_events_keep_their_facts(captured: CapturedEvents) -> None:
    event(EventType.PLOT_LABEL_DISTRIBUTION_CALLED, {"plot_type": "heatmap"})
    event(
        EventType.PLOT_COMPARISON_LABEL_DISTRIBUTION_CALLED, {"num_compare": 3, "plot_type": "bar"}
    )
    assert [(p["event_type"], p["event_details"]) for p in captured.payloads()] == [
        ("PLOT_LABEL_DISTRIBUTION_CALLED", {"plot_type": "heatmap", "outcome": "success"}),
        (
            "PLOT_COMPARISON_LABEL_DISTRIBUTION_CALLED",
            {"num_compare": 3, "plot_type": "bar", "outcome": "success"},
        ),
    ]


def test_values_that_could_carry_user_data_are_not_sent(captured: CapturedEvents) -> None:
    private = "/home/alice/thesis/data"
    event(EventType.PLOT_LABEL_DISTRIBUTION_CALLED, {"plot_type": private})
    event(
        EventType.LOAD_PARTITION_CALLED,
        load_partition_details(partitioner=private, num_partitions=True, token=private),
    )
    event(EventType.PLOT_COMPARISON_LABEL_DISTRIBUTION_CALLED, {"num_compare": "3"})
    assert captured.details() == [
        {"plot_type": "<other>", "outcome": "success"},
        {"dataset_name": "mnist", "split": "train", "partitioner": "<other>", "outcome": "success"},
        {"outcome": "success"},
    ]
    assert "alice" not in json.dumps(captured.payloads())


def test_a_local_dataset_is_a_placeholder_and_checked_off_the_caller_s_thread(
    captured: CapturedEvents, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_private_data").mkdir()
    monkeypatch.chdir(tmp_path)  # a Hub-like name that is a folder here
    touched: list[int] = []

    def spy(original: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            if any("my_private_data" in str(arg) for arg in args):
                touched.append(threading.get_ident())
            return original(*args, **kwargs)

        return recorded

    for name in ("stat", "lstat", "listdir", "scandir"):
        monkeypatch.setattr(os, name, spy(getattr(os, name)))
    monkeypatch.setattr(builtins, "open", spy(builtins.open))

    future = event(EventType.LOAD_SPLIT_CALLED, {"dataset_name": "my_private_data"})
    assert touched == []  # the caller's thread handed the name over untouched
    assert future.result(timeout=0) == "queued"
    assert captured.details() == [{"dataset_name": "<local>", "outcome": "success"}]
    assert touched
    assert threading.get_ident() not in touched


def test_details_that_are_not_a_readable_mapping_send_a_bare_event(
    captured: CapturedEvents,
) -> None:
    class Hostile(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError(key)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError

        def __len__(self) -> int:
            return 1

        def __contains__(self, key: object) -> bool:
            return True

    assert event("PING", Hostile()).result(timeout=0) == "queued"
    assert event("LOAD_SPLIT_CALLED", ["dataset_name"]).result(timeout=0) == "queued"  # type: ignore[arg-type]
    assert captured.details() == [{"outcome": "success"}, {"outcome": "success"}]


def test_identical_events_are_sent_once(captured: CapturedEvents) -> None:
    for partition_id in range(50):  # as Flower Datasets calls it, without its bookkeeping
        event(
            EventType.LOAD_PARTITION_CALLED,
            load_partition_details(federated_dataset_id=partition_id),
        )
    event(EventType.LOAD_PARTITION_CALLED, load_partition_details(split="test"))
    assert [d["split"] for d in captured.details()] == ["train", "test"]


def test_the_owner_is_the_module_that_calls_event(captured: CapturedEvents) -> None:
    caller: dict[str, Any] = {"__name__": "pluggy._a_caller", "event": event}
    exec("future = event('PING')", caller)  # noqa: S102 - code that belongs to pluggy
    assert caller["future"].result(timeout=0) == "queued"
    (payload,) = captured.payloads()
    assert payload["context"]["package"]["package_name"] == "pluggy"


# -- in a real interpreter ------------------------------------------------------------------

LOGGED = """
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry.compat import EventType, event
details = {"dataset_name": "mnist", "token": "s3cr3t-value", "federated_dataset_id": 140230}
event(EventType.PING)  # the sender is now starting: the note must not race it
print(event(EventType.LOAD_SPLIT_CALLED, details).result(timeout=0))
print(event(EventType.LOAD_SPLIT_CALLED, {**details, "split": "test"}).result(timeout=0))
t.flush(10)
"""


def test_dropped_keys_are_named_once_when_logging_is_on() -> None:
    run = run_python(
        LOGGED,
        {
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_TELEMETRY_LOGGING": "1",
            "FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware",
        },
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["disabled", "disabled"]  # logged, never sent
    notes = [line for line in run.stderr.splitlines() if "not sent" in line]
    assert notes == [
        (
            "flwr_datasets_telemetry: event LOAD_SPLIT_CALLED: "
            "details not sent (unknown to this package): token"
        )
    ]
    payloads = [line for line in run.stderr.splitlines() if "event LOAD_SPLIT_CALLED: {" in line]
    assert len(payloads) == 2  # one handler: every line once
    assert run.stderr.count("event PING: {") == 1
    assert "s3cr3t-value" not in run.stderr
    assert "140230" not in run.stderr


def test_silent_without_logging() -> None:
    run = run_python(LOGGED, {"FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware"})
    assert (run.returncode, run.stdout.split(), run.stderr) == (0, ["queued", "queued"], "")
