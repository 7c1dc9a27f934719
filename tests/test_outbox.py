"""The outbox and the record on disk: whole files, owner-only, bounded, never a trap."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry import _delivery, _outbox
from flwr_datasets_telemetry._outbox import Entry

from .helpers import REPO, as_unprivileged

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file semantics")

URL = "http://127.0.0.1:9/api/v1/event"
DAY = 24 * 3600.0


def body(n: int = 0, size: int = 0) -> bytes:
    return json.dumps({"event_type": f"e{n}", "pad": "x" * size}).encode()


def outbox_files(home: Path) -> list[str]:
    return sorted(os.listdir(home / "telemetry" / "outbox"))


def test_round_trip_exact_bytes_owner_only(home: Path) -> None:
    sent = [body(n) for n in range(3)]
    for data in sent:
        _outbox.append(str(home), URL, data)
    entries = _outbox.waiting(str(home))
    assert [e.body for e in entries] == sent
    assert {e.endpoint for e in entries} == {URL}
    for folder in (home, home / "telemetry", home / "telemetry" / "outbox"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in outbox_files(home):
        path = home / "telemetry" / "outbox" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert name.endswith(".ev")  # no temporary file left behind


def test_never_creates_folders_above_home(tmp_path: Path) -> None:
    home = tmp_path / "missing" / "home"
    with pytest.raises(_outbox.OutboxError):
        _outbox.append(str(home), URL, body())
    assert not (tmp_path / "missing").exists()


def test_count_bound_drops_the_oldest_and_counts_them(home: Path) -> None:
    for n in range(_outbox.MAX_EVENTS + 5):
        _outbox.append(str(home), URL, body(n), now=1000.0 + n)
    entries = _outbox.waiting(str(home))
    assert len(entries) == _outbox.MAX_EVENTS
    assert entries[0].body == body(5)
    assert entries[-1].body == body(_outbox.MAX_EVENTS + 4)
    assert _outbox.dropped(str(home))["full"] == 5


def test_a_trim_racing_another_deletes_no_event_the_bounds_allow(home: Path) -> None:
    """Two hosts trim an outbox 10 over its bound from the same listing; one has
    already deleted the 10 oldest when the other starts. The second must delete none:
    an event gone is gone, whoever unlinked it."""
    for n in range(_outbox.MAX_EVENTS + 10):
        write_raw(home, NAME.format(1000 + n, n), good_file(body(n)))
    listing = outbox_files(home)
    for name in listing[:10]:  # the first trim's work
        (home / "telemetry" / "outbox" / name).unlink()
    drops = dict.fromkeys(_outbox.DROP_REASONS, 0)
    with _outbox.opened(str(home)) as (_, outbox):
        _outbox._trim(outbox, listing, 2000.0, drops)  # the second, from the same listing
    assert outbox_files(home) == listing[10:]
    assert drops["full"] == 0


def test_byte_bound(home: Path) -> None:
    for n in range(40):  # 40 x 50 KiB: twice the bound
        _outbox.append(str(home), URL, body(n, 50_000), now=1000.0 + n)
    sizes = [(home / "telemetry" / "outbox" / n).stat().st_size for n in outbox_files(home)]
    assert sum(sizes) <= _outbox.MAX_BYTES
    assert len(sizes) == 20
    assert _outbox.dropped(str(home))["full"] == 20


def test_an_oversized_event_is_counted_and_never_written(home: Path) -> None:
    with pytest.raises(_outbox.OversizedError):
        _outbox.append(str(home), URL, body(0, _outbox.MAX_ENTRY))
    assert not (home / "telemetry" / "outbox").exists()
    assert _outbox.dropped(str(home))["oversized"] == 1


def test_events_older_than_seven_days_expire(home: Path) -> None:
    now = 1_800_000_000.0
    _outbox.append(str(home), URL, body(1), now=now - 8 * DAY)
    _outbox.append(str(home), URL, body(2), now=now - 6 * DAY)
    _outbox.append(str(home), URL, body(3), now=now)
    assert [e.body for e in _outbox.waiting(str(home))] == [body(2), body(3)]
    assert _outbox.dropped(str(home))["expired"] == 1


def test_a_clock_jumping_ahead_does_not_drop_everything(home: Path) -> None:
    now = 1_800_000_000.0
    for n in range(3):
        _outbox.append(str(home), URL, body(n), now=now + n)
    with _outbox.opened(str(home)) as (_, outbox):
        assert _outbox.trim(outbox, now + 365 * DAY) == {"expired": 0, "full": 0}
    # The first event written after the jump makes the old ones old, and only then.
    _outbox.append(str(home), URL, body(9), now=now + 365 * DAY)
    assert [e.body for e in _outbox.waiting(str(home))] == [body(9)]


def test_a_clock_set_back_keeps_events_from_the_future(home: Path) -> None:
    now = 1_800_000_000.0
    _outbox.append(str(home), URL, body(1), now=now)
    _outbox.append(str(home), URL, body(2), now=now - 30 * DAY)
    assert len(_outbox.waiting(str(home))) == 2


def write_raw(home: Path, name: str, data: bytes) -> None:
    folder = home / "telemetry" / "outbox"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def good_file(data: bytes, endpoint: str = URL) -> bytes:
    header = {"time": 1.0, "endpoint": endpoint, "size": len(data), "crc": zlib.crc32(data)}
    return _outbox.MAGIC + json.dumps(header).encode() + b"\n" + data


NAME = "{:020d}-0000100-{:012x}.ev"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        good_file(body(1))[:-3],  # truncated: a crash before the data reached the disk
        good_file(body(1)).replace(b'"e1"', b'"e2"'),  # changed: the CRC disagrees
        b"\x00" * 200,
        b"FLWRT1 not json\n{}",
        b'FLWRT1 ["a list"]\n{}',
        _outbox.MAGIC + b'{"time": "soon", "endpoint": 3, "size": 2, "crc": 0}\n{}',
        good_file(b"x" * (_outbox.MAX_ENTRY + 10)),
        _outbox.MAGIC + b"[" * 3000 + b"\n{}",  # the parser raises RecursionError
    ],
    ids=[
        "empty", "truncated", "changed", "zeros", "bad-json", "list", "bad-types", "huge",
        "deep",
    ],
)  # fmt: skip
def test_bad_files_are_skipped_never_raised(home: Path, data: bytes) -> None:
    write_raw(home, NAME.format(1, 1), data)
    write_raw(home, NAME.format(2, 2), good_file(body(7)))
    assert [e.body for e in _outbox.waiting(str(home))] == [body(7)]


def test_foreign_files_are_ignored_and_left_alone(home: Path) -> None:
    write_raw(home, "notes.txt", good_file(body(1)))
    _outbox.append(str(home), URL, body(2))
    assert [e.body for e in _outbox.waiting(str(home))] == [body(2)]
    assert _outbox.forget(str(home))
    assert (home / "telemetry" / "outbox" / "notes.txt").exists()


def test_an_outbox_that_is_a_symlink_is_never_followed(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (home / "telemetry").mkdir(parents=True)
    (home / "telemetry" / "outbox").symlink_to(elsewhere)
    with pytest.raises(_outbox.OutboxError):
        _outbox.append(str(home), URL, body())
    assert list(elsewhere.iterdir()) == []
    assert _outbox.waiting(str(home)) == []


def test_an_outbox_that_is_a_file(home: Path) -> None:
    (home / "telemetry").mkdir(parents=True)
    (home / "telemetry" / "outbox").write_text("not a folder")
    with pytest.raises(_outbox.OutboxError):
        _outbox.append(str(home), URL, body())
    assert _outbox.waiting(str(home)) == []


def test_traps_in_place_of_entries_are_skipped(home: Path, tmp_path: Path) -> None:
    """A FIFO (would block a plain open), a symlink to a valid event, a folder."""
    folder = home / "telemetry" / "outbox"
    folder.mkdir(parents=True)
    os.mkfifo(folder / NAME.format(1, 1))
    target = tmp_path / "valid"
    target.write_bytes(good_file(body(5)))
    (folder / NAME.format(2, 2)).symlink_to(target)
    (folder / NAME.format(3, 3)).mkdir()
    _outbox.append(str(home), URL, body(6))
    done: list[list[Entry]] = []
    reader = threading.Thread(target=lambda: done.append(_outbox.waiting(str(home))), daemon=True)
    reader.start()
    reader.join(10)
    assert [e.body for e in done[0]] == [body(6)]


def test_a_claim_is_won_once_and_released(home: Path) -> None:
    name = _outbox.append(str(home), URL, body())
    with _outbox.opened(str(home)) as (_, outbox):
        first = _outbox.claim(outbox, name, "a" * 12)
        assert first is not None
        assert _outbox.claim(outbox, name, "b" * 12) is None
        assert _outbox.waiting_names(outbox) == []
        assert [e.body for e in _outbox.waiting(str(home))] == [body()]  # shown by `log`
        _outbox.release(outbox, first)
        assert _outbox.waiting_names(outbox) == [name]


def test_stale_claims_come_back_fresh_ones_stay(home: Path) -> None:
    now = time.time()
    names = [_outbox.append(str(home), URL, body(n)) for n in range(3)]
    with _outbox.opened(str(home)) as (_, outbox):
        _outbox.claim(outbox, names[0], "a" * 12, now=now - 2 * _outbox.STALE_CLAIM)  # dead
        _outbox.claim(outbox, names[1], "b" * 12, now=now)  # at work
        _outbox.claim(outbox, names[2], "c" * 12, now=now + 2 * _outbox.STALE_CLAIM)  # clock
        assert _outbox.recover(outbox, now) == 2
        assert _outbox.waiting_names(outbox) == [names[0], names[2]]


def test_an_old_event_just_taken_is_not_a_dead_writer_s_temporary_file(home: Path) -> None:
    """`take` renames an event to a temporary name, then reads it: an event older than
    `STALE_TEMP` keeps its old mtime through the rename, and a `recover` in between
    must not delete it as a dead writer's file (it would vanish unrecorded)."""
    name = _outbox.append(str(home), URL, body(1))
    path = home / "telemetry" / "outbox" / name
    hours_ago = time.time() - 2 * _outbox.STALE_TEMP
    os.utime(path, (hours_ago, hours_ago))
    taken = path.with_name(".tmp-000000000001")
    path.rename(taken)  # `take`'s first step
    with _outbox.opened(str(home)) as (_, outbox):
        _outbox.recover(outbox)
        assert taken.exists()
        _outbox.recover(outbox, time.time() + 2 * _outbox.STALE_TEMP)  # really left behind
        assert not taken.exists()


def test_record_keeps_the_last_thousand(home: Path) -> None:
    for n in range(_outbox.RECORD_EVENTS + 3):
        assert _outbox.record(str(home), Entry("", 1.0, URL, body(n)), f"outcome {n}")
    kept = _outbox.records(str(home))
    assert len(kept) == _outbox.RECORD_EVENTS
    assert kept[-1].outcome == f"outcome {_outbox.RECORD_EVENTS + 2}"
    assert kept[-1].body == body(_outbox.RECORD_EVENTS + 2)
    assert [e.outcome for e in _outbox.records(str(home), 2)] == [
        f"outcome {_outbox.RECORD_EVENTS + 1}",
        f"outcome {_outbox.RECORD_EVENTS + 2}",
    ]


def test_forget_deletes_ours_and_follows_no_symlink(home: Path, tmp_path: Path) -> None:
    _outbox.append(str(home), URL, body(1))
    _outbox.record(str(home), Entry("", 1.0, URL, body(1)), "delivered")
    with pytest.raises(_outbox.OversizedError):
        _outbox.append(str(home), URL, body(0, _outbox.MAX_ENTRY))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / NAME.format(1, 1).replace(".ev", ".rec")
    victim.write_bytes(b"not ours to delete")
    shutil.rmtree(home / "telemetry" / "record")
    (home / "telemetry" / "record").symlink_to(elsewhere)
    assert not _outbox.forget(str(home))  # the record path is a trap: said, not followed
    assert victim.exists()
    assert _outbox.waiting(str(home)) == []
    assert _outbox.dropped(str(home)) == dict.fromkeys(_outbox.DROP_REASONS, 0)
    assert not (home / "telemetry" / "outbox").exists()


def test_forget_without_anything_is_clean(home: Path) -> None:
    assert _outbox.forget(str(home))
    assert _outbox.forget(None)
    assert not home.exists()


READ_ONLY = """
import sys
from flwr_datasets_telemetry import _outbox
try:
    _outbox.append(sys.argv[1], "http://127.0.0.1:9/", b"{}")
except _outbox.OutboxError as error:
    print("refused", type(error.__cause__).__name__)
print(_outbox.waiting(sys.argv[1]), _outbox.records(sys.argv[1]), _outbox.dropped(sys.argv[1]))
"""


def test_a_read_only_home_refuses_without_raising_anything_else() -> None:
    command = as_unprivileged([sys.executable, "-c", READ_ONLY])
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)  # not writable by the unprivileged user
        done = subprocess.run(
            [*command, folder],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=folder,
        )
        assert os.listdir(folder) == []
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "refused PermissionError"


def test_writers_racing_never_leave_half_an_event(home: Path) -> None:
    """Threads and forked children appending at once: every event whole, none lost."""
    code = """
import os, sys, threading
from flwr_datasets_telemetry import _outbox
home = sys.argv[1]
def write(tag):
    for n in range(25):
        _outbox.append(home, "http://127.0.0.1:9/", b'{"w": "%s-%d"}' % (tag.encode(), n))
pids = []
for child in range(4):
    pid = os.fork()
    if pid == 0:
        write(f"c{child}")
        os._exit(0)
    pids.append(pid)
threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
for pid in pids: os.waitpid(pid, 0)
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(home)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    bodies = sorted(json.loads(e.body)["w"] for e in _outbox.waiting(str(home)))
    expected = sorted(
        f"{tag}-{n}" for tag in ("c0", "c1", "c2", "c3", "t0", "t1", "t2", "t3") for n in range(25)
    )
    assert bodies == expected


def test_a_foreign_file_with_a_name_like_ours_does_not_stop_the_bounds(home: Path) -> None:
    write_raw(home, "zzzzzzzzzzzzzzzzzzzz-zzzzzzz-zzzzzzzzzzzz.ev", b"foreign")
    for n in range(_outbox.MAX_EVENTS + 2):
        _outbox.append(str(home), URL, body(n), now=1000.0 + n)
    assert len(_outbox.waiting(str(home))) == _outbox.MAX_EVENTS
    assert (home / "telemetry" / "outbox" / "zzzzzzzzzzzzzzzzzzzz-zzzzzzz-zzzzzzzzzzzz.ev").exists()


def test_a_batch_keeps_its_order_and_counts_what_is_too_large(home: Path) -> None:
    bodies = [body(n) for n in range(40)]
    bodies.insert(7, body(99, _outbox.MAX_ENTRY))  # too large: counted, never written
    names = _outbox.append_many(str(home), URL, bodies, now=1000.0)
    assert names[7] is None
    assert all(name is not None for i, name in enumerate(names) if i != 7)
    assert [e.body for e in _outbox.waiting(str(home))] == bodies[:7] + bodies[8:]
    assert _outbox.dropped(str(home))["oversized"] == 1


def test_a_batch_that_cannot_be_written_whole_leaves_nothing_behind(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk half-way: the events written so far are taken back (they go
    in-process instead, and would otherwise be sent twice)."""
    real, calls = _outbox.publish, []

    def publish_until_full(folder: int, name: str, data: bytes, *, replace: bool = False) -> None:
        calls.append(name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(folder, name, data, replace=replace)

    monkeypatch.setattr(_outbox, "publish", publish_until_full)
    with pytest.raises(_outbox.OutboxError):
        _outbox.append_many(str(home), URL, [body(n) for n in range(5)])
    assert _outbox.waiting(str(home)) == []


DEEP = b"[" * 3000  # a few KiB that json's parser meets with RecursionError


def test_a_deeply_nested_drop_count_file_reads_as_no_drops(home: Path) -> None:
    (home / "telemetry").mkdir(parents=True)
    (home / "telemetry" / "dropped.json").write_bytes(DEEP)
    assert _outbox.dropped(str(home)) == dict.fromkeys(_outbox.DROP_REASONS, 0)
    _outbox.append(str(home), URL, body(1))  # and the outbox still takes events
    assert [e.body for e in _outbox.waiting(str(home))] == [body(1)]


def test_a_deeply_nested_record_is_skipped(home: Path) -> None:
    _outbox.record(str(home), _outbox.Entry("x", 1.0, URL, body(1), None, None), "delivered")
    folder = home / "telemetry" / "record"
    (folder / "00000000000000000001-0000010-000000000001.rec").write_bytes(
        _outbox.MAGIC + DEEP + b"\n{}"
    )
    assert [e.body for e in _outbox.records(str(home))] == [body(1)]


def test_a_deeply_nested_back_off_file_is_no_back_off(home: Path) -> None:
    _outbox.append(str(home), URL, body(1))
    with _outbox.opened(str(home)) as (telemetry, _):
        _delivery.note_failure(telemetry, URL)
        assert _delivery.backing_off(telemetry, URL) is not None
        (name,) = [n for n in os.listdir(home / "telemetry") if n.startswith("backoff-")]
        (home / "telemetry" / name).write_bytes(DEEP)
        assert _delivery.backing_off(telemetry, URL) is None


@pytest.mark.parametrize("kind", ["fifo", "folder", "symlink to a folder", "dangling symlink"])
def test_a_trap_at_the_uploader_lock_is_removed_and_nothing_else(
    home: Path, tmp_path: Path, kind: str
) -> None:
    telemetry = home / "telemetry"
    (telemetry / "outbox").mkdir(parents=True)
    target = tmp_path / "target"
    target.mkdir()
    lock = telemetry / _delivery.LOCK
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "folder":
        lock.mkdir()
    else:
        lock.symlink_to(target if kind == "symlink to a folder" else tmp_path / "missing")
    with _outbox.opened(str(home)) as (telemetry_fd, _):
        assert _delivery._remove_trap(telemetry_fd, _delivery.LOCK)
    assert not os.path.lexists(lock)
    assert target.is_dir()  # never followed
    assert sorted(os.listdir(telemetry)) == ["outbox"]  # nothing left aside


def test_what_cannot_be_a_trap_is_left_alone(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full folder stays; a regular file (a real lock another host just made, seen as
    something else a moment before) is put back as it was: the same inode, so the
    lock that host holds on it still holds."""
    telemetry = home / "telemetry"
    (telemetry / "outbox").mkdir(parents=True)
    (telemetry / "full").mkdir()
    (telemetry / "full" / "keep").write_text("")
    lock = telemetry / _delivery.LOCK
    lock.write_text("")
    inode = lock.stat().st_ino
    real_stat = os.stat
    looks: list[str] = []

    def stale_first_look(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        looks.append(str(path))
        result = real_stat(path, *args, **kwargs)
        if len(looks) == 1:  # the first look still sees what was there before: a FIFO
            fields = list(result)
            fields[0] = stat.S_IFIFO | 0o600
            return os.stat_result(fields)
        return result

    with _outbox.opened(str(home)) as (telemetry_fd, _):
        assert not _delivery._remove_trap(telemetry_fd, "full")
        monkeypatch.setattr(os, "stat", stale_first_look)
        assert not _delivery._remove_trap(telemetry_fd, _delivery.LOCK)
    monkeypatch.undo()
    assert lock.stat().st_ino == inode
    assert sorted(os.listdir(telemetry)) == sorted(["full", _delivery.LOCK, "outbox"])
