"""What PyPI users and administrators get: the sdist, the wheel, and the no-op plugin.

Everything is built from a copy of this checkout after the README's own
``pip install ./examples/noop-plugin`` has run in it, which leaves the leftovers of an
in-tree build (``examples/noop-plugin/build/``, ``*.egg-info/``) that must not ship.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

import pytest

from flwr_datasets_telemetry import __version__

from .helpers import REPO, run_python

#: The README's command for administrators, run as written from the checkout's root.
README_COMMAND = "pip install ./examples/noop-plugin"
#: Not part of a checkout: virtual environments, caches, this project's own builds.
_NOT_COPIED = (".git", ".venv*", ".mypy_cache", ".ruff_cache", ".pytest_cache", "dist", "build")


def _not_copied(folder: str, names: list[str]) -> set[str]:
    return shutil.ignore_patterns(*_NOT_COPIED)(folder, names) if Path(folder) == REPO else set()


@dataclass(frozen=True)
class Built:
    checkout: Path
    plugin_site: Path
    sdist: list[str]
    wheel: list[str]
    metadata: list[tuple[str, str]]


def _run(command: list[str], cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("packaging")
    checkout = root / "checkout"
    shutil.copytree(REPO, checkout, ignore=_not_copied)
    pycache = checkout / "tests" / "__pycache__"
    pycache.mkdir(exist_ok=True)
    (pycache / "leftover.cpython-311.pyc").write_bytes(b"")

    site = root / "site"
    pip, *arguments = README_COMMAND.split()
    _run([sys.executable, "-m", pip, *arguments, "--no-deps", "--target", str(site)], checkout)

    out = root / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(checkout)], root)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    with tarfile.open(sdist) as archive:
        sdist_names = [name.partition("/")[2] for name in archive.getnames()]
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
        info = f"flwr_datasets_telemetry-{__version__}.dist-info/METADATA"
        headers = HeaderParser().parsestr(archive.read(info).decode())
    return Built(checkout, site, sdist_names, wheel_names, list(headers.items()))


def test_the_readme_says_how_administrators_install_the_noop_plugin() -> None:
    assert f"$ {README_COMMAND}" in (REPO / "README.rst").read_text()


def test_the_readme_command_installs_the_off_switch(built: Built) -> None:
    assert any(built.plugin_site.glob("flwr_datasets_telemetry_noop-*.dist-info"))
    run = run_python(
        "import flwr_datasets_telemetry as t; s = t.status(); print(s.enabled, s.reason)",
        {"PYTHONPATH": str(built.plugin_site)},
    )
    assert run.stdout.strip() == "False by plugin 'noop' (flwr-datasets-telemetry-noop 1.0.0)"


def test_the_build_leftovers_were_there(built: Built) -> None:
    # The premise of the next tests: pip's in-tree build left these in the checkout.
    plugin = built.checkout / "examples" / "noop-plugin"
    assert (plugin / "build").is_dir()
    assert any(plugin.glob("*.egg-info"))


def _leftovers(names: list[str]) -> list[str]:
    return [
        name
        for name in names
        if "/build/" in f"/{name}"
        or "__pycache__" in name
        or name.endswith(".pyc")
        # The sdist's own egg-info is written by setuptools for every sdist, not a leftover.
        or (".egg-info" in name and not name.startswith("flwr_datasets_telemetry.egg-info"))
    ]


def test_the_sdist_ships_sources_tests_and_docs_and_no_leftovers(built: Built) -> None:
    assert _leftovers(built.sdist) == []
    for name in (
        "CHANGELOG.md",
        "README.rst",
        "LICENSE",
        "flwr_datasets_telemetry/py.typed",
        "flwr_datasets_telemetry/payload.schema.json",
        "tests/conftest.py",
        "tests/test_packaging.py",
        "examples/noop-plugin/setup.cfg",
        "examples/noop-plugin/flwr_datasets_telemetry_noop.py",
    ):
        assert name in built.sdist, name


def test_the_wheel_ships_the_package_only(built: Built) -> None:
    assert _leftovers(built.wheel) == []
    assert "flwr_datasets_telemetry/py.typed" in built.wheel
    assert "flwr_datasets_telemetry/payload.schema.json" in built.wheel
    tops = {name.split("/")[0] for name in built.wheel}
    assert tops == {"flwr_datasets_telemetry", f"flwr_datasets_telemetry-{__version__}.dist-info"}


def test_the_metadata_pypi_shows(built: Built) -> None:
    fields: dict[str, list[str]] = {}
    for key, value in built.metadata:
        fields.setdefault(key, []).append(value)
    assert fields["License-Expression"] == ["Apache-2.0"]
    assert "License" not in fields  # the legacy free-text field
    urls = dict(value.split(", ", 1) for value in fields["Project-URL"])
    assert set(urls) == {"Source", "Changelog", "Issues", "Documentation"}
    assert all(url.startswith("https://") for url in urls.values())
    assert "Framework :: Pytest" in fields["Classifier"]
    assert any(c.startswith("Topic :: ") for c in fields["Classifier"])
    runtime = {req.split(">")[0].split(";")[0] for req in fields["Requires-Dist"] if ";" not in req}
    # urllib3 is imported directly (the HTTP transport's retries); requests needs it anyway.
    assert runtime == {"pluggy", "requests", "urllib3", "py-cpuinfo"}
