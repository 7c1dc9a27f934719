"""The environment collector: enumerations from variables and markers, never their values."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import ValidationError

from flwr_datasets_telemetry import _builtins, _ci, track
from flwr_datasets_telemetry.collectors import environment
from flwr_datasets_telemetry.testing import CapturedEvents

from .helpers import REPO, as_unprivileged, run_python
from .schema import validated
from .servers import Endpoint

#: Every variable the collector looks at.
VARIABLES = (
    *(name for name, _ in _ci.CI_VARIABLES),
    _ci.GENERIC_CI,
    *environment.COLAB_VARIABLES,
    environment.KAGGLE_VARIABLE,
    environment.KUBERNETES_VARIABLE,
    *(name for names, _ in environment.SCHEDULER_VARIABLES for name in names),
)
MODULES = ("google.colab", "ipykernel", "ray")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake Linux file system with /proc/driver and no markers, in a clean environment.

    The machine running the tests may well be a CI job in a container: none of its own
    variables, modules or markers may leak into what a test sees.
    """
    fake = tmp_path / "root"
    (fake / "proc" / "driver").mkdir(parents=True)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for module in MODULES:
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(environment, "ROOT", fake)
    monkeypatch.setattr(environment, "LINUX", True)
    environment.filesystem_facts.cache_clear()
    yield fake
    environment.filesystem_facts.cache_clear()


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))


def test_a_plain_process_reports_nothing_special(root: Path) -> None:
    assert environment.telemetry_collect() == {
        "ci": False,
        "notebook": None,
        "container": None,
        "scheduler": None,
        "simulation": False,
        "gpu_count": 0,
    }


# -- ci -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "name"), _ci.CI_VARIABLES)
def test_each_ci_service_is_named_by_its_own_variable(
    root: Path, monkeypatch: pytest.MonkeyPatch, variable: str, name: str
) -> None:
    monkeypatch.setenv(variable, "true")
    assert environment.facts()["ci"] == name
    monkeypatch.setenv("CI", "true")  # they all set CI too: the named one still wins
    assert environment.facts()["ci"] == name


def test_jenkins_is_detected_from_a_url_it_never_reports(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JENKINS_URL", "https://jenkins.internal.example/")
    assert environment.facts()["ci"] == "jenkins"


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes", "woodpecker"])
def test_generic_ci_is_unknown(root: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert environment.facts()["ci"] == "unknown"


@pytest.mark.parametrize("value", ["", "   ", "0", "false", "False", " off ", "NO"])
def test_empty_or_negative_values_do_not_count(
    root: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    for name in VARIABLES:
        monkeypatch.setenv(name, value)
    fake_module(monkeypatch, "google.colab")  # proves the notebook check still runs
    assert environment.facts() == {
        "ci": False,
        "notebook": "colab",
        "container": None,
        "scheduler": None,
        "simulation": False,
        "gpu_count": 0,
    }


# -- notebook -------------------------------------------------------------------------------


def test_colab_from_its_module_or_its_variables(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_module(monkeypatch, "ipykernel")  # Colab runs an IPython kernel: colab still wins
    assert environment.facts()["notebook"] == "jupyter"
    for variable in environment.COLAB_VARIABLES:
        monkeypatch.setenv(variable, "release-tag-abc")
        assert environment.facts()["notebook"] == "colab"
        monkeypatch.delenv(variable)
    fake_module(monkeypatch, "google.colab")
    assert environment.facts()["notebook"] == "colab"


def test_kaggle_from_its_variable(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_module(monkeypatch, "ipykernel")
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert environment.facts()["notebook"] == "kaggle"


def test_a_module_blocked_with_none_is_not_imported(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in MODULES:
        monkeypatch.setitem(sys.modules, module, None)
    facts = environment.facts()
    assert facts["notebook"] is None
    assert facts["simulation"] is False


# -- container ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "kind"), [(".dockerenv", "docker"), ("run/.containerenv", "podman")]
)
def test_container_file_markers(root: Path, marker: str, kind: str) -> None:
    (root / marker).parent.mkdir(parents=True, exist_ok=True)
    (root / marker).touch()
    assert environment.facts()["container"] == kind


def test_a_dangling_symlink_marker_counts_and_is_not_followed(root: Path) -> None:
    (root / ".dockerenv").symlink_to(root / "nowhere")
    assert environment.facts()["container"] == "docker"


def test_kubernetes_from_its_service_variable_wins_over_the_runtime(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / ".dockerenv").touch()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert environment.facts()["container"] == "kubernetes"


def test_file_markers_mean_nothing_off_linux(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / ".dockerenv").touch()
    monkeypatch.setattr(environment, "LINUX", False)
    facts = environment.facts()
    assert facts["container"] is None
    assert facts["gpu_count"] is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert environment.facts()["container"] == "kubernetes"


# -- scheduler ------------------------------------------------------------------------------


@pytest.mark.parametrize(("variables", "name"), environment.SCHEDULER_VARIABLES)
def test_each_scheduler_from_its_job_variables(
    root: Path, monkeypatch: pytest.MonkeyPatch, variables: tuple[str, ...], name: str
) -> None:
    for variable in variables:
        monkeypatch.setenv(variable, "4242.head-node")
    assert environment.facts()["scheduler"] == name


def test_job_id_alone_is_not_grid_engine(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_ID", "17")
    assert environment.facts()["scheduler"] is None
    monkeypatch.delenv("JOB_ID")
    monkeypatch.setenv("SGE_ROOT", "/opt/sge")  # a login node with SGE's settings sourced
    assert environment.facts()["scheduler"] is None


# -- simulation -----------------------------------------------------------------------------


def test_simulation_is_whether_ray_is_imported_now(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert environment.facts()["simulation"] is False
    fake_module(monkeypatch, "ray")
    assert environment.facts()["simulation"] is True


# -- gpu_count ------------------------------------------------------------------------------


def nvidia(root: Path) -> Path:
    return root / "proc" / "driver" / "nvidia"


def test_gpus_are_the_driver_s_folders(root: Path) -> None:
    for bus in ("0000:3b:00.0", "0000:5e:00.0"):
        (nvidia(root) / "gpus" / bus).mkdir(parents=True)
    (nvidia(root) / "gpus" / "stray-file").touch()
    (nvidia(root) / "gpus" / "stray-link").symlink_to(nvidia(root) / "gpus" / "0000:3b:00.0")
    assert environment.facts()["gpu_count"] == 2


def test_a_driver_without_gpus_counts_zero(root: Path) -> None:
    (nvidia(root) / "gpus").mkdir(parents=True)
    assert environment.facts()["gpu_count"] == 0


def test_the_count_is_bounded(root: Path) -> None:
    for n in range(environment.MAX_GPU_ENTRIES + 10):
        (nvidia(root) / "gpus" / f"0000:{n:02x}:00.0").mkdir(parents=True)
    assert environment.facts()["gpu_count"] == environment.MAX_GPU_ENTRIES


def test_without_proc_the_count_is_unknown(root: Path) -> None:
    (root / "proc" / "driver").rmdir()
    assert environment.facts()["gpu_count"] is None


@pytest.mark.parametrize("where", ["nvidia", "gpus"])
def test_a_file_where_a_folder_belongs_is_unknown(root: Path, where: str) -> None:
    folder = nvidia(root) if where == "nvidia" else nvidia(root) / "gpus"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("odd")
    assert environment.facts()["gpu_count"] is None


UNREADABLE = """
import json, sys
from pathlib import Path
from flwr_datasets_telemetry.collectors import environment
print(json.dumps([environment._gpu_count(Path(root)) for root in sys.argv[1:]]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_an_unreadable_driver_folder_is_unknown() -> None:
    """A mode-000 folder, read by an unprivileged user (root reads through any mode)."""
    command = as_unprivileged([sys.executable, "-c", UNREADABLE])
    # Not under tmp_path: an unprivileged user must be able to reach the folders.
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)
        roots = [Path(folder) / "readable", Path(folder) / "unreadable"]
        for fake in roots:
            (fake / "proc/driver/nvidia/gpus/0000:3b:00.0").mkdir(parents=True)
        gpus = roots[1] / "proc/driver/nvidia/gpus"
        gpus.chmod(0)
        try:
            done = subprocess.run(
                [*command, *map(str, roots)],
                env={**os.environ, "PYTHONPATH": str(REPO)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            gpus.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [1, None]


def test_a_root_no_system_call_accepts_gives_nulls_not_an_exception(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environment, "ROOT", Path("/no\0such"))
    facts = environment.facts()
    assert facts["container"] is None
    assert facts["gpu_count"] is None


# -- caching and cost -----------------------------------------------------------------------


def test_markers_are_read_once_per_process_and_variables_at_each_event(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert environment.facts()["container"] is None
    (root / ".dockerenv").touch()
    (nvidia(root) / "gpus" / "0000:3b:00.0").mkdir(parents=True)
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    facts = environment.facts()
    assert (facts["container"], facts["gpu_count"], facts["scheduler"]) == (None, 0, "slurm")


PROBE = """
import json, sys, threading
from flwr_datasets_telemetry.collectors import environment
before, threads = set(sys.modules), threading.active_count()
facts = environment.telemetry_collect()
print(json.dumps({"facts": facts, "imported": sorted(set(sys.modules) - before),
                  "threads": threading.active_count() - threads}))
"""


def test_collecting_imports_nothing_and_starts_nothing() -> None:
    run = run_python(PROBE, {"SLURM_JOB_ID": "7", "CI": "true"})
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["imported"] == []
    assert result["threads"] == 0
    assert result["facts"]["scheduler"] == "slurm"
    assert result["facts"]["ci"] == "unknown"


# -- the payload ----------------------------------------------------------------------------


def test_the_payload_carries_enumerations_only(
    root: Path, monkeypatch: pytest.MonkeyPatch, captured: CapturedEvents, tmp_path: Path
) -> None:
    """Every variable set to a secret, every marker there: none of it leaves as a value."""
    secrets = {name: f"secret-{name.lower()}-{n}-x9q" for n, name in enumerate(VARIABLES)}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    for module in MODULES:
        fake_module(monkeypatch, module)
    (root / ".dockerenv").touch()
    (root / "run").mkdir()
    (root / "run" / ".containerenv").write_text(f'engine="podman"\nname="{secrets["CI"]}"\n')
    for bus in ("0000:3b:00.0", "0000:5e:00.0", "0000:86:00.0"):
        (nvidia(root) / "gpus" / bus).mkdir(parents=True)

    @track("probe")
    def probe(split: str) -> str:
        return split

    probe("train")
    (payload,) = captured.payloads("probe")  # the fixture validates it against the schema
    assert payload["context"][_builtins.SECTIONS["environment"]] == {
        "ci": "github_actions",
        "notebook": "colab",
        "container": "kubernetes",
        "scheduler": "slurm",
        "simulation": True,
        "gpu_count": 3,
    }
    body = json.dumps(payload)
    leaks = [*secrets.values(), socket.gethostname(), str(tmp_path), str(root)]
    found = [leak for leak in leaks if leak in body]
    assert found == []
    user = getpass.getuser()
    assert f'"{user}"' not in body
    assert f"/{user}" not in body


@pytest.mark.parametrize(
    "env",
    [
        {"ci": 0},  # false is not 0
        {"notebook": "vscode"},
        {"gpu_count": -1},
        {"extra": "field"},
    ],
)
def test_the_schema_holds_the_enumerations(env: dict[str, object]) -> None:
    payload = {
        "schema_version": 1,
        "event_type": "probe",
        "event_details": {},
        "context": {
            "source": None,
            "cluster": "6f1f6a1e-3c1b-4c55-9a57-7d0c1d4f0e2b",
            "date": "2026-11-27T12:00:00+00:00",
            "env": env,
        },
    }
    with pytest.raises(ValidationError):
        validated(payload)


PROGRAM = """
import json, sys
import flwr_datasets_telemetry as t
t.event("probe")
flushed = t.flush(10)
print(json.dumps({"flushed": flushed,
                  "imported": "flwr_datasets_telemetry.collectors.environment" in sys.modules}))
"""


@pytest.mark.parametrize("blocked", ["hardware", "hardware,environment"])
def test_blocking_the_collector_removes_the_section(endpoint: Endpoint, blocked: str) -> None:
    run = run_python(
        PROGRAM,
        {
            "FLWR_TELEMETRY_ENDPOINT": endpoint.url,
            "FLWR_TELEMETRY_DISABLE_COLLECTORS": blocked,
            "SLURM_JOB_ID": "12345",
        },
    )
    assert run.returncode == 0, run.stderr
    state = json.loads(run.stdout)
    assert state["flushed"] is True
    (payload,) = endpoint.payloads()
    validated(payload)
    if "environment" in blocked:
        assert "env" not in payload["context"]
        assert state["imported"] is False
    else:
        assert payload["context"]["env"]["scheduler"] == "slurm"
        assert state["imported"] is True
