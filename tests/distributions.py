"""Real installed distributions for plugin tests: examples installed by pip, and
small ``.dist-info`` folders written on a directory that children put on sys.path."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from .helpers import REPO

EXAMPLES = REPO / "examples"


def pip_install(example: str, target: Path) -> Path:
    """``pip install --target`` one of the repository's example plugin distributions.

    From a copy: pip builds in the source folder, which must stay clean.
    """
    source = target.parent / f"{target.name}-source"
    shutil.copytree(EXAMPLES / example, source)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run(
        [*command, "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def write_distribution(
    site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """A minimal installed distribution: METADATA, entry_points.txt and its modules."""
    info = site / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[flwr_datasets_telemetry]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
