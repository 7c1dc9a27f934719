"""The one-time notice: once per source id, never in CI, never when off."""

from __future__ import annotations

from pathlib import Path

from flwr_datasets_telemetry import _notice
from flwr_datasets_telemetry._ci import CI_VARIABLES, GENERIC_CI

from .helpers import run_python
from .servers import Endpoint

ONE = "import flwr_datasets_telemetry as t\nt.event('one')\nt.flush(10)\n"
#: No CI at all, whatever the machine running the tests says.
NO_CI = {name: "" for name, _ in CI_VARIABLES} | {GENERIC_CI: ""}
FAST = {"FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware"}


def test_printed_exactly_once_across_processes_sharing_a_home(
    endpoint: Endpoint, home: Path
) -> None:
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **NO_CI, **FAST}
    code = """
import subprocess, sys
children = [subprocess.Popen([sys.executable, "-c", sys.argv[1]]) for _ in range(4)]
print([child.wait() for child in children])
"""
    together = run_python(code, env, argv=[ONE])
    assert together.returncode == 0, together.stderr
    later = run_python(ONE, env)
    assert (together.stderr + later.stderr).count(_notice.TEXT) == 1
    assert len(_notice.TEXT.splitlines()) <= 5
    assert "flwr-datasets-telemetry disable" in _notice.TEXT
    assert later.stderr == ""


def test_a_new_source_id_gets_the_notice_again(endpoint: Endpoint, home: Path) -> None:
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **NO_CI, **FAST}
    assert run_python(ONE, env).stderr == _notice.TEXT
    (home / "source").unlink()  # what `forget` does
    assert run_python(ONE, env).stderr == _notice.TEXT


def test_never_in_ci(endpoint: Endpoint, home: Path) -> None:
    for name in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TF_BUILD"):
        env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **NO_CI, name: "true", **FAST}
        run = run_python(ONE, {**env, "FLWR_HOME": str(home.parent / name)})
        assert run.stderr == ""
        assert (home.parent / name / "source").exists()  # sent all the same


def test_never_when_off_or_local_only(endpoint: Endpoint, home: Path) -> None:
    for env in ({"FLWR_TELEMETRY_ENABLED": "0"}, {"FLWR_TELEMETRY_ENABLED": "local"}):
        run = run_python(ONE, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **NO_CI, **FAST, **env})
        assert run.stderr == ""
