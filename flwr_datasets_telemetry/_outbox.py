"""The outbox and the delivery record: one small file per event under ``$FLWR_HOME``.

::

    $FLWR_HOME/telemetry/
        outbox/   <time>-<size>-<random>.ev            an event waiting for the uploader
                  <time>-<size>-<random>.ev.claim-...  the same, being sent by one uploader
        record/   <time>-<size>-<random>.rec           the last 1,000 outcomes, exact bytes
        dropped.json                                   what the bounds dropped, per reason

Homes on clusters live on NFS, Lustre or GPFS, where ``O_APPEND`` is not atomic across
machines and locks may be node-local. So nothing is ever appended to a shared file: an
event is written whole under a temporary name and published with ``os.link`` in the
same folder, and an uploader claims one with ``os.rename``. A reader sees a whole
event or nothing; a claim is won by one uploader. Each file carries its body's length
and CRC, so a file cut short by a crash is recognised and dropped, never sent.

Every file is opened relative to a folder descriptor, with ``O_NOFOLLOW |
O_NONBLOCK``, and read only if ``fstat`` says it is a regular file: a symlink, FIFO or
folder planted in our place is skipped, never followed or waited on. Folders are made
owner-only (0700) and files 0600; only ``$FLWR_HOME`` itself may be created, never a
folder above it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
import zlib
from typing import TYPE_CHECKING, Final, NamedTuple

from . import _files

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: Bounds of the outbox (waiting events): count, bytes, age.
MAX_EVENTS: Final = 1000
MAX_BYTES: Final = 1 << 20
MAX_AGE: Final = 7 * 24 * 3600.0
#: One event file at most; a payload is about 1 KiB, its strings are capped.
MAX_ENTRY: Final = 64 << 10
#: Bounds of the delivery record.
RECORD_EVENTS: Final = 1000
RECORD_BYTES: Final = 4 << 20
#: A claim this old (seconds) belongs to an uploader that died: the event waits again.
#: One send takes well under a minute (timeouts, bounded retries, capped Retry-After).
STALE_CLAIM: Final = 300.0
#: A temporary file this old was left by a writer that died.
STALE_TEMP: Final = 3600.0
#: Reasons for drops, as counted in ``dropped.json`` (and shown by ``status``).
DROP_REASONS: Final = ("full", "expired", "oversized", "corrupt")

MAGIC: Final = b"FLWRT1 "
_NAME: Final = r"(\d{20})-(\d{7})-([0-9a-f]{12})"
_EVENT: Final = re.compile(_NAME + r"\.ev")
_CLAIMED: Final = re.compile(_NAME + r"\.ev\.claim-(\d{20})-([0-9a-f]{12})")
_RECORD: Final = re.compile(_NAME + r"\.rec")
#: Written by `_delivery`: one per endpoint that was out of reach.
_BACKOFF: Final = re.compile(r"backoff-[0-9a-f]{8}\.json")
_EVENT_LENGTH: Final = len("00000000000000000000-0000000-000000000000.ev")
_FILE_FLAGS: Final = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_COUNTS: Final = "dropped.json"
_UID: Final = os.geteuid() if hasattr(os, "geteuid") else 0


class OutboxError(OSError):
    """The outbox cannot take the event (no home, read-only or full disk, a trap)."""


class OversizedError(ValueError):
    """The event is larger than `MAX_ENTRY`: dropped and counted, never written."""


class Entry(NamedTuple):
    """One event on disk: waiting in the outbox, or an outcome in the record."""

    name: str
    #: When the host wrote it (seconds since the epoch, the host's clock).
    time: float
    endpoint: str
    #: The exact bytes that are (or were) sent.
    body: bytes
    #: The delivery outcome (record only), e.g. ``"delivered by 'http'"``.
    outcome: str | None = None
    #: When the outcome happened (record only).
    done: float | None = None


# -- folders and files -----------------------------------------------------------------


@contextlib.contextmanager
def _folder(home: str, *parts: str, create: bool) -> Iterator[int]:
    """A descriptor of ``home/parts...``; no part below ``home`` may be a symlink.

    With ``create``, ``home`` itself (not its parents) and each part are made 0700.
    """
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(home, 0o700)
    fd = os.open(home, _DIR_FLAGS)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def read_regular(folder: int, name: str, limit: int) -> bytes | None:
    """The whole file if it is a regular file of at most ``limit`` bytes, else ``None``."""
    try:
        fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=folder)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit or info.st_uid != _UID:
            return None
        data = _files.read_at_most(fd, limit)
        return data if len(data) <= limit else None
    except OSError:
        return None
    finally:
        os.close(fd)


def random_token() -> str:
    return os.urandom(6).hex()


def publish(folder: int, name: str, data: bytes, *, replace: bool = False) -> None:
    """Write ``data`` under a temporary name, then give it ``name`` in one step."""
    temp = f".tmp-{random_token()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o600, dir_fd=folder)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if replace:
            os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
            return
        try:  # never replaces a file of that name; on NFS, safer than rename
            os.link(temp, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder)


def take(outbox: int, name: str, limit: int) -> tuple[bool, bytes | None]:
    """Take event ``name`` out of the outbox in one step: whether it was there to take
    (not claimed by an uploader meanwhile), and its bytes (see `read_regular`).

    Renamed first, then read: no claim, release or second taker can come in between.
    A crash after the rename leaves a temporary file that `recover` deletes, unsent.
    """
    temp = f".tmp-{random_token()}"
    try:
        os.rename(name, temp, src_dir_fd=outbox, dst_dir_fd=outbox)
    except OSError:
        return False, None
    try:
        return True, read_regular(outbox, temp, limit)
    finally:
        unlink(outbox, temp)


def unlink(folder: int, name: str) -> bool:
    try:
        os.unlink(name, dir_fd=folder)
    except OSError:
        return False
    return True


def _names(folder: int) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


# -- the file format -------------------------------------------------------------------


def _encode(endpoint: str, body: bytes, when: float, outcome: str | None = None) -> bytes:
    header: dict[str, object] = {
        "time": when,
        "endpoint": endpoint,
        "size": len(body),
        "crc": zlib.crc32(body),
    }
    if outcome is not None:
        header["outcome"] = outcome
        header["done"] = time.time()
    return MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def decode(name: str, data: bytes | None) -> Entry | None:
    """The entry in ``data``, or ``None`` if it is not a whole file of ours."""
    if data is None or not data.startswith(MAGIC):
        return None
    head, newline, body = data[len(MAGIC) :].partition(b"\n")
    try:
        header = _files.parse_json(head) if newline else None
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    when, endpoint, outcome, done = (header.get(k) for k in ("time", "endpoint", "outcome", "done"))
    if (
        not isinstance(when, (int, float))
        or not isinstance(endpoint, str)
        or header.get("size") != len(body)
        or header.get("crc") != zlib.crc32(body)
        or not (outcome is None or isinstance(outcome, str))
        or not (done is None or isinstance(done, (int, float)))
    ):
        return None
    return Entry(name, float(when), endpoint, body, outcome, None if done is None else float(done))


def _file_name(when: float, size: int, suffix: str, order: int = 0) -> str:
    """Names sort by time; ``order`` (nanoseconds) keeps the events of one batch in turn."""
    nanoseconds = max(0, int(when * 1e9)) + order
    return f"{nanoseconds:020d}-{min(size, 9_999_999):07d}-{random_token()}{suffix}"


# -- drop counts -----------------------------------------------------------------------


def _read_counts(telemetry: int) -> dict[str, int]:
    counts = dict.fromkeys(DROP_REASONS, 0)
    try:
        stored = _files.parse_json(read_regular(telemetry, _COUNTS, 4096) or b"{}")
    except ValueError:
        stored = {}
    if isinstance(stored, dict):
        for reason in DROP_REASONS:
            value = stored.get(reason)
            if isinstance(value, int) and value >= 0:
                counts[reason] = value
    return counts


def count_drops(telemetry: int, drops: dict[str, int]) -> None:
    """Add ``drops`` to the stored counts (two writers at once may lose an increment)."""
    if not any(drops.values()):
        return
    counts = _read_counts(telemetry)
    for reason, number in drops.items():
        counts[reason] = counts.get(reason, 0) + number
    with contextlib.suppress(OSError):
        publish(telemetry, _COUNTS, json.dumps(counts).encode(), replace=True)


def dropped(home: str | None) -> dict[str, int]:
    """Events dropped by the bounds so far, per reason (for ``status``); never raises."""
    if home is None:
        return dict.fromkeys(DROP_REASONS, 0)
    try:
        with _folder(home, "telemetry", create=False) as telemetry:
            return _read_counts(telemetry)
    except OSError:
        return dict.fromkeys(DROP_REASONS, 0)


# -- the host's side -------------------------------------------------------------------


def append(home: str, endpoint: str, body: bytes, now: float | None = None) -> str:
    """Publish one event in the outbox and keep the outbox within its bounds.

    Returns the entry's name. Raises `OversizedError` for an event too large to keep (it is
    counted), and `OutboxError` when the outbox cannot be written at all.
    """
    (name,) = append_many(home, endpoint, [body], now)
    if name is None:
        raise OversizedError(f"event of {len(body)} bytes exceeds {MAX_ENTRY}")
    return name


def append_many(
    home: str, endpoint: str, bodies: list[bytes], now: float | None = None
) -> list[str | None]:
    """Publish events in the outbox, then keep it within its bounds (once for all).

    Returns each entry's name, ``None`` for an event too large to keep (counted).
    Raises `OutboxError` when the outbox cannot be written at all.
    """
    when = time.time() if now is None else now
    encoded = [_encode(endpoint, body, when) for body in bodies]
    names: list[str | None] = [None] * len(encoded)
    try:
        with _folder(home, "telemetry", create=True) as telemetry:
            drops = {"oversized": sum(len(data) > MAX_ENTRY for data in encoded)}
            if drops["oversized"] < len(encoded):  # else no outbox is made for nothing
                with _folder(home, "telemetry", "outbox", create=True) as outbox:
                    _publish_all(outbox, encoded, names, when)
                    drops.update(trim(outbox, when))
            count_drops(telemetry, drops)
    except OSError as error:
        raise OutboxError(f"outbox not writable: {type(error).__name__}: {error}") from error
    return names


def _publish_all(outbox: int, encoded: list[bytes], names: list[str | None], when: float) -> None:
    """Publish each event that fits, naming it in ``names``; all or none of them: a
    failure half-way (a full disk) takes back what this batch wrote, then raises."""
    try:
        for index, data in enumerate(encoded):
            if len(data) <= MAX_ENTRY:
                name = names[index] = _file_name(when, len(data), ".ev", index)
                publish(outbox, name, data)
    except BaseException:
        for index, written in enumerate(names):
            if written is not None:
                unlink(outbox, written)
                names[index] = None
        raise


def trim(outbox: int, now: float) -> dict[str, int]:
    """Drop waiting events beyond the bounds, oldest first; the number per reason.

    Age is measured from the newest event's time when the clock says later than
    that: a clock jumping ahead by weeks expires what is older than the newest event
    by seven days, never everything at once; events stamped in the future are young.
    """
    # Runs at every append: names are sliced rather than matched, and only the oldest
    # are looked at closely (a fifth of the cost with a full outbox).
    found = sorted(n for n in _names(outbox) if len(n) == _EVENT_LENGTH and n.endswith(".ev"))
    drops = {"expired": 0, "full": 0}
    try:
        _trim(outbox, found, now, drops)
    except ValueError:  # a foreign name that looks like ours: now match each one
        _trim(outbox, [n for n in found if _EVENT.fullmatch(n)], now, drops)
    return drops


def _trim(outbox: int, found: list[str], now: float, drops: dict[str, int]) -> None:
    reference = min(now, int(found[-1][:20]) / 1e9) if found else now
    start = 0
    while start < len(found) and reference - int(found[start][:20]) / 1e9 > MAX_AGE:
        drops["expired"] += unlink(outbox, found[start])
        start += 1
    kept = found[start:]
    if len(kept) <= MAX_EVENTS and len(kept) * MAX_ENTRY <= MAX_BYTES:
        return
    sizes = [int(name[21:28]) for name in kept]
    total = sum(sizes)
    # An event is gone whoever unlinked it: another trim, an uploader's claim. Counting
    # only our own unlinks made racing trims delete younger events the bounds allow.
    for gone, (name, size) in enumerate(zip(kept, sizes, strict=True)):
        if len(kept) - gone <= MAX_EVENTS and total <= MAX_BYTES:
            break
        drops["full"] += unlink(outbox, name)
        total -= size


# -- the uploader's side ---------------------------------------------------------------


def discard_waiting(home: str | None) -> int:
    """Delete the events not sent yet (an opt-out by command); how many. Never raises."""
    if home is None:
        return 0
    try:
        with _folder(home, "telemetry", "outbox", create=False) as outbox:
            found = [n for n in _names(outbox) if _EVENT.fullmatch(n) or _CLAIMED.fullmatch(n)]
            return sum(unlink(outbox, name) for name in found)
    except OSError:
        return 0


def names(outbox: int) -> set[str]:
    """Every name in the outbox folder (waiting and claimed events, temporary files)."""
    return set(_names(outbox))


def waiting_names(outbox: int) -> list[str]:
    """Names of the unclaimed events, oldest first."""
    return sorted(name for name in _names(outbox) if _EVENT.fullmatch(name))


def read(outbox: int, name: str) -> Entry | None:
    """The event in ``name``, or ``None`` if it is gone, not ours, or not whole."""
    return decode(name, read_regular(outbox, name, MAX_ENTRY))


def claim(outbox: int, name: str, token: str, now: float | None = None) -> str | None:
    """Rename ``name`` to a claim of this uploader; ``None`` if another got it first."""
    when = time.time() if now is None else now
    claimed = f"{name}.claim-{max(0, int(when * 1e9)):020d}-{token}"
    try:
        os.rename(name, claimed, src_dir_fd=outbox, dst_dir_fd=outbox)
    except OSError:
        return None
    return claimed


def release(outbox: int, claimed: str) -> bool:
    """Put a claimed event back, for a later try; whether the claim was still there."""
    try:
        os.rename(
            claimed, claimed.split(".claim-", maxsplit=1)[0], src_dir_fd=outbox, dst_dir_fd=outbox
        )
    except OSError:
        return False
    return True


def backoff_names(telemetry: int) -> list[str]:
    """The back-off files `_delivery` keeps, one per endpoint that failed."""
    return [name for name in _names(telemetry) if _BACKOFF.fullmatch(name)]


def claims(listing: Iterable[str]) -> dict[str, str]:
    """The claimed events among the names of an outbox ``listing``: each event's name,
    with the name of its claim."""
    return {
        name.split(".claim-", maxsplit=1)[0]: name for name in listing if _CLAIMED.fullmatch(name)
    }


def exists(folder: int, name: str) -> bool:
    """Whether ``name`` is (still) in ``folder``."""
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return False
    return True


def finish(outbox: int, claimed: str) -> bool:
    """Forget a claimed event for good (delivered, or never deliverable); whether the
    claim was still there (``forget`` may have deleted it meanwhile)."""
    return unlink(outbox, claimed)


def drop_corrupt(telemetry: int, outbox: int, name: str) -> None:
    if unlink(outbox, name):
        count_drops(telemetry, {"corrupt": 1})


def recover(outbox: int, now: float | None = None) -> int:
    """Put back claims of dead uploaders and delete dead writers' temporary files.

    A claim is stale when its time is more than `STALE_CLAIM` away from now, in either
    direction (a clock set back must not hide an event for ever). Its event may have
    reached the endpoint before the uploader died: it is sent again (twice, never half).
    Returns how many events were put back.
    """
    current = time.time() if now is None else now
    back = 0
    for name in _names(outbox):
        match = _CLAIMED.fullmatch(name)
        if match and abs(current - int(match.group(4)) / 1e9) > STALE_CLAIM:
            release(outbox, name)
            back += 1
        elif name.startswith(".tmp-"):
            with contextlib.suppress(OSError):
                info = os.stat(name, dir_fd=outbox, follow_symlinks=False)
                # Both times: `take` renames an event (keeping its old mtime) to a
                # temporary name it is about to read; the rename is its ctime.
                times = (info.st_mtime, info.st_ctime)
                if min(abs(current - t) for t in times) > STALE_TEMP:
                    os.unlink(name, dir_fd=outbox)
    return back


@contextlib.contextmanager
def opened(home: str, *, create: bool = False) -> Iterator[tuple[int, int]]:
    """Descriptors of the telemetry folder and the outbox, for the uploader."""
    with (
        _folder(home, "telemetry", create=create) as telemetry,
        _folder(home, "telemetry", "outbox", create=create) as outbox,
    ):
        yield telemetry, outbox


# -- the delivery record ---------------------------------------------------------------


def record(home: str, entry: Entry, outcome: str) -> str | None:
    """Keep ``outcome`` of ``entry`` with its exact bytes (the last 1,000); the record's
    name, ``None`` if it could not be written. Never raises."""
    data = _encode(entry.endpoint, entry.body, entry.time, outcome)
    name = _file_name(time.time(), len(data), ".rec")
    try:
        with _folder(home, "telemetry", "record", create=True) as folder:
            publish(folder, name, data)
            _trim_record(folder)
    except OSError:
        return None
    return name


def unrecord(home: str, names: list[str]) -> None:
    """Delete the records ``names`` (written just as telemetry was turned off)."""
    with contextlib.suppress(OSError), _folder(home, "telemetry", "record", create=False) as folder:
        for name in names:
            unlink(folder, name)


def _trim_record(folder: int) -> None:
    found = sorted(
        (name, int(match.group(2))) for name in _names(folder) if (match := _RECORD.fullmatch(name))
    )
    total = sum(size for _, size in found)
    for index, (name, size) in enumerate(found):
        if len(found) - index <= RECORD_EVENTS and total <= RECORD_BYTES:
            break
        unlink(folder, name)
        total -= size


def records(home: str | None, limit: int = RECORD_EVENTS) -> list[Entry]:
    """The last ``limit`` outcomes, oldest first; unreadable ones are skipped."""
    if home is None or limit <= 0:
        return []
    try:
        with _folder(home, "telemetry", "record", create=False) as folder:
            names = sorted(n for n in _names(folder) if _RECORD.fullmatch(n))[-limit:]
            found = (decode(n, read_regular(folder, n, MAX_ENTRY + 1024)) for n in names)
            return [entry for entry in found if entry is not None]
    except OSError:
        return []


def as_dict(entry: Entry) -> dict[str, object]:
    """An entry for ``log --json``: the body as text (payloads are ASCII JSON)."""
    return {
        "time": entry.time,
        "endpoint": entry.endpoint,
        "outcome": entry.outcome,
        "done": entry.done,
        "body": entry.body.decode("utf-8", "replace"),
    }


def waiting(home: str | None) -> list[Entry]:
    """The events waiting in the outbox (claimed ones included), oldest first."""
    if home is None:
        return []
    try:
        with _folder(home, "telemetry", "outbox", create=False) as outbox:
            names = sorted(
                n for n in _names(outbox) if _EVENT.fullmatch(n) or _CLAIMED.fullmatch(n)
            )
            found = (read(outbox, name) for name in names)
            return [entry for entry in found if entry is not None]
    except OSError:
        return []


def forget(home: str | None) -> bool:
    """Delete the outbox, the record, the counts and back-offs; True if none is left.

    Only our own file names are deleted, each in its folder (never through a
    symlink); a folder left empty is removed.
    """
    if home is None:
        return True
    clean = True
    try:
        telemetry = os.open(os.path.join(home, "telemetry"), _DIR_FLAGS | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        for sub, patterns in (("outbox", (_EVENT, _CLAIMED)), ("record", (_RECORD,))):
            try:
                folder = os.open(sub, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=telemetry)
            except FileNotFoundError:
                continue
            except OSError:
                clean = False
                continue
            try:
                for name in _names(folder):
                    ours = any(p.fullmatch(name) for p in patterns) or name.startswith(".tmp-")
                    if ours and not unlink(folder, name):
                        clean = False
            finally:
                os.close(folder)
            with contextlib.suppress(OSError):
                os.rmdir(sub, dir_fd=telemetry)
        for name in _names(telemetry):  # the counts, and the endpoints backed off from
            if name == _COUNTS or _BACKOFF.fullmatch(name):
                clean = unlink(telemetry, name) and clean
    finally:
        os.close(telemetry)
    return clean
