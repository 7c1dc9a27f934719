"""Running user programs in real interpreters, the way users run them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_python(
    code: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    *,
    as_file: bool = False,
    argv: list[str] | None = None,
) -> Run:
    """Run ``code`` in a fresh interpreter with this test's environment plus ``env``.

    ``as_file`` runs it as a script file, which spawn and forkserver children need.
    """
    child_env = {k: v for k, v in os.environ.items()}
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), child_env.get("PYTHONPATH", "")) if p
    )
    source = textwrap.dedent(code)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "program.py"
        script.write_text(source)
        command = [sys.executable, str(script)] if as_file else [sys.executable, "-c", source]
        command += argv or []
        return run_command(command, child_env, timeout)


def run_command(
    command: list[str], env: dict[str, str], timeout: float, *, cwd: Path | None = None
) -> Run:
    """``command`` with exactly ``env``, no input, output captured; a hang fails the test."""
    start = time.monotonic()
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def recorded_outcomes(home: Path | None = None) -> str:
    """The uploader's delivery record of this test's home, one outcome per line.

    Outcomes are the uploader's: a host only logs that it queued an event.
    """
    from flwr_datasets_telemetry import _outbox

    folder = home if home is not None else Path(os.environ["FLWR_HOME"])
    return "\n".join(entry.outcome or "" for entry in _outbox.records(str(folder)))


def as_unprivileged(command: list[str]) -> list[str]:
    """``command`` as user ``nobody`` when the tests run as root (who reads through any
    mode); skips the test where privileges cannot be dropped."""
    import shutil

    import pytest

    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv to drop privileges")
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    usable = subprocess.run(
        [*drop, sys.executable, "-c", "pass"], capture_output=True, timeout=60, check=False
    )
    if usable.returncode != 0:  # e.g. its shared library lies in root's own folder
        pytest.skip("this interpreter cannot run as an unprivileged user here")
    return [*drop, *command]
