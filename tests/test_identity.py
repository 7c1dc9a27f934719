"""The source id file: created once, atomically, owner-only; trouble never raises."""

from __future__ import annotations

import os
import stat
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from flwr_datasets_telemetry._identity import (
    MAX_SOURCE_BYTES,
    canonical_uuid,
    read_source,
    source_id,
)

SOURCE = "0b9ef7a2-1c5c-4f61-9d5e-8c1f3c2a9b10"


def is_uuid(value: str | None) -> bool:
    return value is not None and str(uuid.UUID(value)) == value


def test_created_once_with_owner_only_permissions(home: Path) -> None:
    path = home / "source"
    first = source_id(path, create=True)
    assert is_uuid(first)
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert source_id(path, create=True) == first
    assert [p.name for p in home.iterdir()] == ["source"]  # no temporary file left


def test_not_created_when_not_allowed(home: Path) -> None:
    assert source_id(home / "source", create=False) is None
    assert not home.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"not-a-uuid\n", b"\xff\xfe\x00garbage", b"7" * (MAX_SOURCE_BYTES + 10)],
    ids=["empty", "corrupt", "binary", "huge"],
)
def test_a_bad_file_is_replaced_by_a_fresh_id(home: Path, content: bytes) -> None:
    home.mkdir()
    (home / "source").write_bytes(content)
    assert read_source(home / "source") is None
    fresh = source_id(home / "source", create=True)
    assert is_uuid(fresh)
    assert read_source(home / "source") == fresh


def test_an_unreadable_source_gives_a_fresh_id_and_is_left_alone(home: Path) -> None:
    (home / "source").mkdir(parents=True)  # a directory cannot be read as a file
    fresh = source_id(home / "source", create=True)
    assert is_uuid(fresh)
    assert (home / "source").is_dir()


def test_a_home_that_is_a_file_gives_a_fresh_id(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "flwr"
    not_a_folder.write_text("I am a file")
    assert is_uuid(source_id(not_a_folder / "source", create=True))
    assert not_a_folder.read_text() == "I am a file"


def test_an_unwritable_home_gives_a_fresh_id() -> None:
    # Not with chmod: CI runs as root, which ignores permissions; nobody writes /proc.
    assert is_uuid(source_id(Path("/proc/flwr-test/source"), create=True))


def test_processes_starting_together_agree_on_one_id(home: Path) -> None:
    results: list[str | None] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        results.append(source_id(home / "source", create=True))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert read_source(home / "source") == results[0]


def _within(seconds: float, function: Callable[[], str | None]) -> str | None:
    """``function()``, failing the test (instead of hanging it) if it blocks."""
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"blocked for more than {seconds} s"
    return result[0]


def test_a_fifo_in_place_of_the_source_never_blocks_and_is_left_alone(home: Path) -> None:
    home.mkdir()
    os.mkfifo(home / "source")
    assert _within(5, lambda: read_source(home / "source")) is None
    assert is_uuid(_within(5, lambda: source_id(home / "source", create=True)))
    assert stat.S_ISFIFO((home / "source").lstat().st_mode)


def test_a_symlinked_source_is_never_followed(home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "someone-elses-id"
    outside.write_text(SOURCE + "\n")
    home.mkdir()
    (home / "source").symlink_to(outside)
    assert read_source(home / "source") is None
    fresh = source_id(home / "source", create=True)
    assert fresh != SOURCE
    assert is_uuid(fresh)
    assert outside.read_text() == SOURCE + "\n"
    assert (home / "source").is_symlink()


def test_a_dangling_symlink_creates_nothing_where_it_points(home: Path, tmp_path: Path) -> None:
    home.mkdir()
    (home / "source").symlink_to(tmp_path / "outside")
    assert is_uuid(source_id(home / "source", create=True))
    assert not (tmp_path / "outside").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_another_users_source_is_neither_read_nor_replaced(home: Path) -> None:
    # `sudo` keeping HOME: root must not take over (or lock the user out of) their id.
    home.mkdir()
    (home / "source").write_text(SOURCE + "\n")
    os.chown(home / "source", 12345, 12345)
    assert read_source(home / "source") is None
    assert source_id(home / "source", create=True) != SOURCE
    assert (home / "source").stat().st_uid == 12345
    assert (home / "source").read_text() == SOURCE + "\n"


def test_a_home_whose_parent_is_missing_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-user" / ".flwr"
    assert is_uuid(source_id(missing / "source", create=True))
    assert not (tmp_path / "no-such-user").exists()


@pytest.mark.parametrize(
    "text",
    [
        SOURCE,
        SOURCE.upper(),
        f"  {SOURCE}\n",
        "{" + SOURCE + "}",
        f"urn:uuid:{SOURCE}",
        SOURCE.replace("-", ""),
        "0b9ef7a21c5c-4f61-9d5e-8c1f3c2a9b10",  # hyphens anywhere, as `uuid` allows
    ],
)
def test_an_id_is_read_as_the_uuid_module_reads_it(text: str) -> None:
    """The stored id is parsed without `uuid` (which imports `platform`): every form
    `uuid.UUID` accepts and a tool may write gives the same canonical id."""
    assert canonical_uuid(text) == str(uuid.UUID(text.strip())) == SOURCE


@pytest.mark.parametrize(
    "text", ["", "not-a-uuid", SOURCE[:-1], SOURCE + "0", SOURCE.replace("0", "g"), "{}" * 16]
)
def test_anything_else_is_not_an_id(text: str) -> None:
    with pytest.raises(ValueError, match="not a UUID"):
        canonical_uuid(text)


def test_new_ids_are_random_version_4_uuids() -> None:
    ids = {source_id(None, create=True) for _ in range(50)}
    assert len(ids) == 50
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
