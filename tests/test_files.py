"""Files under $FLWR_HOME: only regular files of ours are read or written, never blocking.

A FIFO, a socket, a folder or a symlink (dangling, to another file, in a loop) where
the package expects its own file is treated as not ours: never opened for blocking
I/O, never followed, never written through, never an exception.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flwr_datasets_telemetry import _files

from .helpers import REPO, Run, run_command

SOURCE = "0b9ef7a2-1c5c-4f61-9d5e-8c1f3c2a9b10"


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def dangling(path: Path) -> Path:
    path.symlink_to(path.parent / "elsewhere" / "target")
    return path


def loop(path: Path) -> Path:
    path.symlink_to(path)
    return path


def folder(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    sockets: list[socket.socket] = []

    def make(path: Path) -> Path:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.listen()
        sockets.append(server)
        return path

    yield make
    for server in sockets:
        server.close()


SPECIALS: dict[str, Callable[[Path], Path]] = {
    "fifo": fifo,
    "dangling-symlink": dangling,
    "symlink-loop": loop,
    "folder": folder,
}


@pytest.mark.parametrize("make", SPECIALS.values(), ids=SPECIALS.keys())
def test_anything_but_a_regular_file_is_not_ours(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path / "file")
    with pytest.raises(_files.NotOursError):
        _files.read_regular(path, 100)
    assert _files.read_or_none(path, 100) is None


def test_a_socket_is_not_ours(tmp_path: Path, unix_socket: Callable[[Path], Path]) -> None:
    with pytest.raises(_files.NotOursError):
        _files.read_regular(unix_socket(tmp_path / "s"), 100)


def test_a_symlink_to_a_readable_file_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SOURCE)
    (tmp_path / "link").symlink_to(secret)
    with pytest.raises(_files.NotOursError):
        _files.read_regular(tmp_path / "link", 100)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_another_users_file_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text(SOURCE)
    os.chown(path, 12345, 12345)
    with pytest.raises(_files.NotOursError):
        _files.read_regular(path, 100)


def test_reads_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        _files.read_regular(path, 100)
    path.write_bytes(b"x" * 100)
    assert _files.read_regular(path, 100) == b"x" * 100


def test_missing_is_file_not_found_even_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    for path in (tmp_path / "missing", tmp_path / "a-file" / "below"):
        with pytest.raises(FileNotFoundError):
            _files.read_regular(path, 100)


def test_a_lock_is_never_created_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "hardware.lock").symlink_to(outside / "created")
    with pytest.raises(_files.NotOursError):
        _files.open_lock(tmp_path / "hardware.lock")
    assert list(outside.iterdir()) == []


def test_a_fifo_lock_is_refused_without_blocking(tmp_path: Path) -> None:
    with pytest.raises(_files.NotOursError):
        _files.open_lock(fifo(tmp_path / "hardware.lock"))


def test_home_is_made_only_where_its_parent_exists(tmp_path: Path) -> None:
    assert not _files.make_home(tmp_path / "no-such-home" / ".flwr")
    assert not (tmp_path / "no-such-home").exists()
    assert _files.make_home(tmp_path / ".flwr")
    assert (tmp_path / ".flwr").stat().st_mode & 0o777 == 0o700


def test_a_subfolder_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    outside.mkdir()
    (home / "telemetry").symlink_to(outside)
    assert _files.make_folder(home, "telemetry") is None
    assert _files.make_folder(home, "other") == home / "other"


def test_publishing_replaces_a_planted_symlink_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("theirs")
    (tmp_path / "cache").symlink_to(target)
    with pytest.raises(FileExistsError):
        _files.publish(tmp_path / "cache", b"ours", replace=False)
    _files.publish(tmp_path / "cache", b"ours", replace=True)
    assert target.read_text() == "theirs"
    assert not (tmp_path / "cache").is_symlink()
    assert (tmp_path / "cache").read_bytes() == b"ours"
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "target"]  # no temp left


# -- end to end: the command line and a tracked call, with a hostile $FLWR_HOME --------


def run(command: list[str], env: dict[str, str], timeout: float = 30) -> Run:
    """A user's command with this test's environment; a hang fails the test, not the run."""
    child_env = {**os.environ, **env}
    child_env["PYTHONPATH"] = os.pathsep.join((str(REPO / "tests" / "fake_modules"), str(REPO)))
    return run_command(command, child_env, timeout)


def console_script() -> str:
    found = shutil.which("flwr-datasets-telemetry", path=str(Path(sys.executable).parent))
    assert found is not None, "the console script is not installed"
    return found


TRACKED_CALL_CODE = """
from flwr_datasets_telemetry import track, flush
track("hostile_home")(lambda: None)()
flush(5)
"""
TRACKED_CALL = [sys.executable, "-c", TRACKED_CALL_CODE]


@pytest.mark.parametrize("make", [fifo, loop], ids=["fifo", "symlink-loop"])
def test_a_special_source_file_never_hangs_the_command_line(
    home: Path, make: Callable[[Path], Path]
) -> None:
    home.mkdir()
    source = make(home / "source")
    done = run([console_script(), "status"], {})
    assert done.returncode == 0, done.stderr
    tracked = run(TRACKED_CALL, {"FLWR_TELEMETRY_LOGGING": "1"})
    assert tracked.returncode == 0, tracked.stderr
    assert "event hostile_home:" in tracked.stderr
    assert not source.is_file()  # left alone: never followed, replaced or written
    done = run([console_script(), "forget"], {})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["hardware.json", "hardware.lock"])
def test_a_fifo_in_the_hardware_cache_never_hangs_a_tracked_call(home: Path, name: str) -> None:
    (home / "telemetry").mkdir(parents=True)
    fifo(home / "telemetry" / name)
    start = time.monotonic()
    done = run(TRACKED_CALL, {"FLWR_TELEMETRY_LOGGING": "1"})
    assert done.returncode == 0, done.stderr
    assert "event hostile_home:" in done.stderr
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("name", ["telemetry/hardware.lock", "telemetry/hardware.json", "source"])
def test_a_planted_symlink_creates_nothing_outside_the_home(
    home: Path, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "telemetry").mkdir(parents=True)
    (home / name).symlink_to(outside / "planted")
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "go").touch()
    code = (
        "import time\nfrom flwr_datasets_telemetry import track, flush\n"
        "track('planted')(lambda: None)()\nflush(5)\n"
    )
    done = run([sys.executable, "-c", code], {"FAKE_CPUINFO": f"gate:{gate}"})
    assert done.returncode == 0, done.stderr
    if name != "telemetry/hardware.lock":  # a probe may run: let it finish its work
        deadline = time.monotonic() + 20
        while not (gate / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert list(outside.iterdir()) == []


def test_a_home_folder_that_does_not_exist_is_never_created(tmp_path: Path) -> None:
    missing_home = tmp_path / "no-such-user"
    done = run(TRACKED_CALL, {"HOME": str(missing_home), "FLWR_HOME": str(missing_home / ".flwr")})
    assert done.returncode == 0, done.stderr
    done = run(TRACKED_CALL, {"HOME": str(missing_home)})
    assert done.returncode == 0, done.stderr
    assert not missing_home.exists()
