"""The command line, run as users run it: a real interpreter, every command and flag."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .distributions import pip_install
from .helpers import REPO, Run, run_python
from .schema import validated
from .servers import Endpoint

SOURCE = "0b9ef7a2-1c5c-4f61-9d5e-8c1f3c2a9b10"


def cli(*args: str, env: dict[str, str] | None = None) -> Run:
    return run_python(
        "import sys, runpy; sys.argv = ['flwr-datasets-telemetry', *sys.argv[1:]];"
        "runpy.run_module('flwr_datasets_telemetry', run_name='__main__')\n",
        env,
        argv=list(args),
    )


@pytest.fixture(scope="module")
def noop_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install("noop-plugin", tmp_path_factory.mktemp("noop-site"))


@pytest.fixture
def stored_source(home: Path) -> Path:
    home.mkdir()
    (home / "source").write_text(SOURCE + "\n")
    (home / "unrelated").write_text("keep me")
    return home / "source"


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


def test_status_disabled_by_plugin_names_the_distribution(noop_site: Path) -> None:
    run = cli("--json", "status", env={"PYTHONPATH": f"{noop_site}{os.pathsep}{REPO}"})
    state = json.loads(run.stdout)
    assert state["enabled"] is False
    assert state["reason"] == "by plugin 'noop' (flwr-datasets-telemetry-noop 1.0.0)"


@pytest.mark.parametrize("env", [{}, {"FLWR_TELEMETRY_ENABLED": "0"}], ids=["enabled", "disabled"])
def test_preview_prints_the_payload_and_sends_and_writes_nothing(
    env: dict[str, str], endpoint: Endpoint, home: Path
) -> None:
    run = cli(
        "preview",
        "--json",
        "--event",
        "load_partition",
        env={**env, "FLWR_TELEMETRY_ENDPOINT": endpoint.url},
    )
    assert run.returncode == 0, run.stderr
    payload = validated(json.loads(run.stdout))
    assert payload["event_type"] == "load_partition"
    assert {"package", "platform", "hw"} <= set(payload["context"])
    assert payload["context"]["source"] is None
    assert endpoint.connections == 0
    assert not home.exists()


def test_preview_human_output_says_whether_it_would_be_sent(stored_source: Path) -> None:
    run = cli("preview", env={"FLWR_TELEMETRY_ENABLED": "no"})
    assert run.stdout.startswith(
        "# would NOT be sent: telemetry is disabled by FLWR_TELEMETRY_ENABLED=no"
    )
    body = run.stdout.split("\n", 2)[2]
    assert json.loads(body)["context"]["source"] == SOURCE


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
    }


def test_forget_json(stored_source: Path) -> None:
    run = cli("--json", "forget")
    assert json.loads(run.stdout) == {"source": SOURCE, "file": str(stored_source), "deleted": True}


def test_forget_failure_is_one_line_and_exit_code_one(home: Path) -> None:
    (home / "source").mkdir(parents=True)  # a directory cannot be unlinked as a file
    run = cli("forget")
    assert run.returncode == 1
    assert run.stderr.startswith("flwr-datasets-telemetry: cannot delete")
    assert len(run.stderr.splitlines()) == 1
    assert "Traceback" not in run.stderr


def test_usage_errors_exit_two() -> None:
    run = cli("frobnicate")
    assert run.returncode == 2
    assert "invalid choice" in run.stderr
    assert cli().returncode == 2


def test_console_script_is_declared() -> None:
    setup = (REPO / "setup.cfg").read_text()
    assert "flwr-datasets-telemetry = flwr_datasets_telemetry.cli:main" in setup
