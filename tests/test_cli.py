"""The command line, run as users run it: the installed console script in a subprocess."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry import __version__
from flwr_datasets_telemetry._status import Status
from flwr_datasets_telemetry.collectors.hardware import machine_key

from .distributions import pip_install
from .helpers import REPO, Run
from .schema import validated
from .servers import Endpoint

SOURCE = "0b9ef7a2-1c5c-4f61-9d5e-8c1f3c2a9b10"
#: 128 + SIGPIPE, as the module documents.
BROKEN_PIPE = 141
VARIABLES = (
    "FLWR_TELEMETRY_ENABLED",
    "FLWR_TELEMETRY_LOGGING",
    "DO_NOT_TRACK",
    "FLWR_HOME",
    "FLWR_TELEMETRY_ENDPOINT",
    "FLWR_TELEMETRY_DISABLE_COLLECTORS",
    "FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD",
    "FLWR_TELEMETRY_EXIT_TIMEOUT",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
)


def console_script() -> str:
    """The ``flwr-datasets-telemetry`` that pip installed next to this interpreter."""
    found = shutil.which("flwr-datasets-telemetry", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("the console script is not installed: pip install this package first")
    return found


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This test's environment plus ``env``, with this checkout's code first on the path."""
    merged = {**os.environ, **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (merged.get("PYTHONPATH"), str(REPO)) if p)
    return merged


def cli(*args: str, env: dict[str, str] | None = None, stdout: int = subprocess.PIPE) -> Run:
    done = subprocess.run(
        [console_script(), *args],
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stdout or "", done.stderr, 0.0)


def payload_of(human_output: str) -> Any:
    """The JSON part of ``preview``'s human output (its ``#`` lines are comments)."""
    lines = human_output.splitlines()
    return json.loads("\n".join(line for line in lines if not line.startswith("#")))


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry under ``folder``: mode, modification time and content."""
    entries: dict[str, tuple[int, int, bytes]] = {}
    for path in sorted([folder, *folder.rglob("*")]):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else b""
        entries[str(path.relative_to(folder))] = (info.st_mode, info.st_mtime_ns, content)
    return entries


@pytest.fixture(scope="module")
def noop_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install("noop-plugin", tmp_path_factory.mktemp("noop-site"))


@pytest.fixture
def stored_source(home: Path) -> Path:
    home.mkdir()
    (home / "source").write_text(SOURCE + "\n")
    (home / "unrelated").write_text("keep me")
    return home / "source"


@pytest.fixture
def warm_home(stored_source: Path) -> Path:
    """A home as a real event leaves it: the id and this machine's cached CPU facts."""
    home = stored_source.parent
    (home / "telemetry").mkdir(mode=0o700)
    facts = {"cpu_brand": "Cached CPU 9000", "cpu_arch": "X86_64", "cpu_bits": 64}
    cache = {"machine": machine_key(), "facts": {**facts, "cpu_hz_advertised": 1}}
    (home / "telemetry" / "hardware.json").write_text(json.dumps(cache))
    (home / "telemetry" / "hardware.lock").touch()
    return home


# --- version, help ----------------------------------------------------------------


def test_version() -> None:
    run = cli("--version")
    assert (run.returncode, run.stdout) == (0, f"flwr-datasets-telemetry {__version__}\n")


def test_python_dash_m_is_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flwr_datasets_telemetry", "--version"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"flwr-datasets-telemetry {__version__}\n")


def test_help_describes_each_command_and_every_variable() -> None:
    run = cli("--help")
    assert run.returncode == 0
    for command in ("status", "preview", "forget"):
        assert any(
            line.split()[:1] == [command] and len(line.split()) > 1
            for line in run.stdout.splitlines()
        )
    for variable in VARIABLES:
        assert variable in run.stdout
    assert "141" in run.stdout  # the exit status of a closed pipe is documented


@pytest.mark.parametrize("command", ["status", "preview", "forget"])
def test_each_command_has_a_description(command: str) -> None:
    run = cli(command, "--help")
    assert run.returncode == 0
    usage, description = run.stdout.split("\n\n")[:2]
    assert usage.startswith(f"usage: flwr-datasets-telemetry {command}")
    assert len(description.split()) > 10, description


def test_usage_errors_exit_two() -> None:
    run = cli("frobnicate")
    assert run.returncode == 2
    assert "invalid choice" in run.stderr
    assert cli().returncode == 2
    negative = cli("preview", "--num-partitions", "-3")
    assert negative.returncode == 2
    assert "not a whole number" in negative.stderr


# --- closed pipes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["status"], ["preview"], ["--json", "preview"], ["forget", "--json"]]
)
def test_a_closed_pipe_ends_the_command_quietly(args: list[str], home: Path) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone before the first byte, as after `head -0`
    try:
        run = cli(*args, stdout=writer)
    finally:
        os.close(writer)
    assert (run.returncode, run.stderr) == (BROKEN_PIPE, "")
    assert not home.exists()


def test_help_into_a_closed_pipe_is_quiet() -> None:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        run = cli("--help", stdout=writer)
    finally:
        os.close(writer)
    assert run.returncode in {0, BROKEN_PIPE}
    assert run.stderr == ""


@pytest.mark.parametrize(("args", "lines"), [(["status"], 1), (["preview"], 2)])
def test_piped_into_head(args: list[str], lines: int, stored_source: Path) -> None:
    # `status | head -1`: whether head has gone before the command writes is a race;
    # either way the command ends quietly.
    command = subprocess.Popen(
        [console_script(), *args],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.run(
        ["head", f"-{lines}"],
        stdin=command.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert command.stdout is not None
    command.stdout.close()
    _, stderr = command.communicate(timeout=60)
    assert command.returncode in {0, BROKEN_PIPE}
    assert stderr == b""
    assert len(head.stdout.splitlines()) == lines


# --- status -------------------------------------------------------------------------


def test_status_enabled_by_default(stored_source: Path) -> None:
    run = cli("status")
    assert run.returncode == 0, run.stderr
    assert "telemetry: enabled by default" in run.stdout
    assert f"source id: {SOURCE}" in run.stdout
    assert str(stored_source) in run.stdout
    for name in ("version", "platform", "hardware", "names", "http"):
        assert f"  {name:<10} from flwr-datasets-telemetry" in run.stdout


def test_status_json_disabled_by_variable() -> None:
    run = cli(
        "status",
        "--json",
        env={"DO_NOT_TRACK": "1", "FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware"},
    )
    state = json.loads(run.stdout)
    assert state["enabled"] is False
    assert state["reason"] == "by DO_NOT_TRACK=1"
    assert state["source"] is None
    assert state["blocked"] == ["hardware"]
    assert "hardware" not in state["plugins"]


def test_status_json_holds_every_status_field() -> None:
    state = json.loads(cli("status", "--json").stdout)
    assert set(state) == {field.name for field in dataclasses.fields(Status)}


def test_status_never_promises_an_id_while_disabled() -> None:
    run = cli("status", env={"FLWR_TELEMETRY_ENABLED": "0"})
    assert "source id: none (none is created while telemetry is off)" in run.stdout
    assert "created with the first event" not in run.stdout


def test_status_disabled_by_plugin_names_the_distribution(noop_site: Path) -> None:
    run = cli("--json", "status", env={"PYTHONPATH": str(noop_site)})
    state = json.loads(run.stdout)
    assert state["enabled"] is False
    assert state["reason"] == "by plugin 'noop' (flwr-datasets-telemetry-noop 1.0.0)"


# --- preview ------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, {"FLWR_TELEMETRY_ENABLED": "0"}], ids=["enabled", "disabled"])
def test_preview_sends_nothing_and_creates_no_home(
    env: dict[str, str], endpoint: Endpoint, home: Path
) -> None:
    run = cli("preview", "--json", env={**env, "FLWR_TELEMETRY_ENDPOINT": endpoint.url})
    assert run.returncode == 0, run.stderr
    payload = validated(json.loads(run.stdout))
    assert payload["event_type"] == "LOAD_PARTITION_CALLED"
    assert {"package", "platform", "hw"} <= set(payload["context"])
    assert payload["context"]["source"] is None
    assert endpoint.connections == 0
    assert not home.exists()


def test_preview_shows_the_stored_id_and_cached_facts_and_changes_nothing(
    warm_home: Path, endpoint: Endpoint
) -> None:
    before = snapshot(warm_home)
    run = cli("preview", "--json", env={"FLWR_TELEMETRY_ENDPOINT": endpoint.url})
    assert run.returncode == 0, run.stderr
    context = validated(json.loads(run.stdout))["context"]
    assert context["source"] == SOURCE
    assert context["hw"]["cpu_brand"] == "Cached CPU 9000"
    assert snapshot(warm_home) == before
    assert endpoint.connections == 0


def test_preview_with_a_cold_cache_starts_and_writes_nothing(stored_source: Path) -> None:
    home = stored_source.parent
    before = snapshot(home)
    run = cli("preview", "--json")
    assert run.returncode == 0, run.stderr
    context = validated(json.loads(run.stdout))["context"]
    assert context["source"] == SOURCE
    assert "cpu_brand" not in context["hw"]  # no probe: the standard-library facts only
    assert snapshot(home) == before


def test_preview_reports_the_owner_a_flower_datasets_event_would_have() -> None:
    expected: dict[str, str | None]
    try:
        dist = metadata.distribution("flwr-datasets")
        expected = {"package_name": dist.metadata["Name"], "package_version": dist.version}
    except metadata.PackageNotFoundError:
        expected = {"package_name": None, "package_version": None}
    package = json.loads(cli("preview", "--json").stdout)["context"]["package"]
    assert {key: package[key] for key in expected} == expected
    assert package["telemetry_version"] == __version__


def test_preview_event_details_come_from_the_names_collector() -> None:
    run = cli(
        "preview",
        "--json",
        "--event",
        "LOAD_SPLIT_CALLED",
        "--dataset",
        "ylecun/mnist",
        "--split",
        "train",
        "--partitioner",
        "DirichletPartitioner",
        "--num-partitions",
        "10",
    )
    payload = validated(json.loads(run.stdout))
    assert payload["event_type"] == "LOAD_SPLIT_CALLED"
    partitioner = {"partitioner": "DirichletPartitioner", "num_partitions": 10}
    assert payload["event_details"] == {
        "dataset_name": "ylecun/mnist",
        "split": "train",
        "partitioners": {"train": partitioner},
        **partitioner,
        "outcome": "success",
    }


def test_preview_of_a_local_dataset_hides_its_path(tmp_path: Path) -> None:
    run = cli("preview", "--json", "--dataset", str(tmp_path), "--num-partitions", "3")
    details = validated(json.loads(run.stdout))["event_details"]
    assert details["dataset_name"] == "<local>"
    assert str(tmp_path) not in run.stdout
    assert (details["partitioner"], details["num_partitions"]) == ("IidPartitioner", 3)


def test_preview_human_output_says_whether_it_would_be_sent(stored_source: Path) -> None:
    run = cli("preview", env={"FLWR_TELEMETRY_ENABLED": "no"})
    assert run.stdout.startswith(
        "# would NOT be sent: telemetry is disabled by FLWR_TELEMETRY_ENABLED=no"
    )
    assert payload_of(run.stdout)["context"]["source"] == SOURCE


def test_preview_says_why_there_is_no_id(home: Path) -> None:
    run = cli("preview")
    assert f"# source: null here; the first event sent creates one in {home / 'source'}" in (
        run.stdout
    )
    assert payload_of(run.stdout)["context"]["source"] is None


# --- forget -------------------------------------------------------------------------


def test_forget_prints_then_deletes_only_the_source_file(stored_source: Path) -> None:
    run = cli("forget")
    assert run.returncode == 0
    assert f"deleted source id {SOURCE}" in run.stdout
    assert "telemetry@flower.ai" in run.stdout
    assert not stored_source.exists()
    assert (stored_source.parent / "unrelated").read_text() == "keep me"
    again = cli("forget", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout) == {
        "source": None,
        "file": str(stored_source),
        "deleted": False,
        "events_deleted": {"waiting": 0, "recorded": 0},
    }


def test_forget_json(stored_source: Path) -> None:
    run = cli("--json", "forget")
    assert json.loads(run.stdout) == {
        "source": SOURCE,
        "file": str(stored_source),
        "deleted": True,
        "events_deleted": {"waiting": 0, "recorded": 0},
    }


def test_forget_failure_is_one_line_and_exit_code_one(home: Path) -> None:
    (home / "source").mkdir(parents=True)  # a directory cannot be unlinked as a file
    run = cli("forget")
    assert run.returncode == 1
    assert run.stderr.startswith("flwr-datasets-telemetry: cannot delete")
    assert len(run.stderr.splitlines()) == 1
    assert "Traceback" not in run.stderr


def test_forget_json_failure_is_json_with_an_error(home: Path) -> None:
    (home / "source").mkdir(parents=True)
    run = cli("forget", "--json")
    assert run.returncode == 1
    answer = json.loads(run.stdout)
    assert answer["deleted"] is False
    assert answer["file"] == str(home / "source")
    assert answer["error"].startswith("cannot delete")
    assert run.stderr == ""


def test_console_script_is_declared() -> None:
    setup = (REPO / "setup.cfg").read_text()
    assert "flwr-datasets-telemetry = flwr_datasets_telemetry.cli:main" in setup


def test_status_fields_without_a_line_of_their_own_are_still_shown() -> None:
    # `Status` grows; a field the command does not know yet is printed, not hidden.
    from flwr_datasets_telemetry.cli import _generic_lines

    assert _generic_lines("home_problem", "FLWR_HOME is a file") == [
        "home problem: FLWR_HOME is a file"
    ]
    assert _generic_lines("warnings", ["a", "b"]) == ["warnings:  a", "warnings:  b"]
    assert _generic_lines("counts", {"dropped": 2}) == ["counts:", "  dropped    2"]
