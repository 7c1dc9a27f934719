"""Files under ``$FLWR_HOME``: regular files this user made, or nothing at all.

Everything the package keeps on disk goes through here, because a home folder is a
place where anything may lie in wait: a FIFO (opening it for reading blocks forever),
a socket, a device, a folder, a symlink to another user's file or into a loop.

- Reading opens with ``O_NOFOLLOW | O_NONBLOCK`` after an ``lstat``, then checks with
  ``fstat`` that it got the same regular file, owned by this user, and reads a bounded
  amount. Anything else is `NotOursError`: never followed, never waited on.
- Writing makes a temporary file beside the target (``mkstemp``: ``O_EXCL``, mode
  0600) and publishes it whole with ``os.link`` (first writer wins) or ``os.replace``
  (last writer wins). Both replace the directory entry, never write through a symlink
  planted there, and stay atomic on NFS, Lustre or GPFS homes shared by many machines.
- Folders: ``$FLWR_HOME`` itself is created (0700) only where its parent exists — a
  missing ``HOME`` is never created — and a subfolder only as a real folder of ours.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pathlib import Path

_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_BINARY: Final = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_SAFE: Final = _NOFOLLOW | _NONBLOCK | _CLOEXEC | _BINARY
#: ``open`` with ``O_NOFOLLOW`` on a symlink: ELOOP on Linux and macOS, EMLINK on BSD.
#: ENXIO: a socket. Each means "something that is not a regular file is there".
_NOT_A_FILE_ERRORS: Final = frozenset({errno.ELOOP, errno.EMLINK, errno.ENXIO})


class NotOursError(OSError):
    """The path holds something other than a regular file owned by this user."""


def _ours(status: os.stat_result) -> bool:
    if not stat.S_ISREG(status.st_mode):
        return False
    geteuid = getattr(os, "geteuid", None)  # Windows has no owners to compare
    return geteuid is None or status.st_uid == geteuid()


def _open(path: Path, flags: int, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags | _SAFE, mode)
    except NotADirectoryError as error:  # a parent that is a file: nothing is there
        raise FileNotFoundError(error.errno, error.strerror, str(path)) from None
    except OSError as error:
        if error.errno in _NOT_A_FILE_ERRORS:
            raise NotOursError(error.errno, "not a regular file", str(path)) from None
        raise


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The whole content of ``path``, a regular file of ours of at most ``max_bytes``.

    Raises `FileNotFoundError` if nothing is there, `NotOursError` for anything that is not
    a regular file owned by this user, `ValueError` if it is larger than ``max_bytes``,
    and `OSError` if it cannot be read. Never blocks, never follows a symlink.
    """
    try:
        before = os.lstat(path)  # no open() at all on a device, a FIFO or a symlink
    except NotADirectoryError as error:
        raise FileNotFoundError(error.errno, error.strerror, str(path)) from None
    if not _ours(before):
        raise NotOursError(errno.EPERM, "not a regular file of ours", str(path))
    fd = _open(path, os.O_RDONLY)
    try:
        status = os.fstat(fd)
        if not _ours(status) or (status.st_dev, status.st_ino) != (before.st_dev, before.st_ino):
            raise NotOursError(errno.EPERM, "replaced while opened", str(path))
        data = read_at_most(fd, max_bytes)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"{path.name} is larger than {max_bytes} bytes")
    return data


def read_at_most(fd: int, max_bytes: int) -> bytes:
    """What ``fd`` holds, up to ``max_bytes`` plus one byte (which tells "too large")."""
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = os.read(fd, max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_or_none(path: Path, max_bytes: int) -> bytes | None:
    """`read_regular`, with ``None`` for every kind of trouble."""
    try:
        return read_regular(path, max_bytes)
    except (OSError, ValueError):
        return None


def parse_json(raw: bytes | str) -> Any:
    """`json.loads` for what a file or a child gave us: anything it cannot read is a
    `ValueError` — nesting too deep for the parser too, which raises `RecursionError`
    (``b"[" * 3000`` in a file of a few KiB)."""
    import json  # with the first file read, not with the package

    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def make_home(home: Path) -> bool:
    """Whether ``home`` is a folder, creating it (0700) only if its parent exists.

    A user's ``~/.flwr`` may be a symlink to a folder elsewhere (a scratch disk): that
    is followed, as the user asked for it.
    """
    try:
        os.mkdir(home, 0o700)  # not makedirs: never a folder above $FLWR_HOME
    except FileExistsError:
        pass
    except OSError:
        return False
    return os.path.isdir(home)


def make_folder(home: Path, name: str) -> Path | None:
    """``home/name`` as a real folder of ours (0700), or ``None``; never a symlink."""
    if not make_home(home):
        return None
    folder = home / name
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        status = os.lstat(folder)
    except OSError:
        return None
    geteuid = getattr(os, "geteuid", None)
    if not stat.S_ISDIR(status.st_mode) or (geteuid is not None and status.st_uid != geteuid()):
        return None
    return folder


def publish(path: Path, data: bytes, *, replace: bool) -> None:
    """Put ``data`` at ``path`` in one step, owner-only; raise `OSError` on failure.

    With ``replace`` the last writer wins (``os.replace``); without it the first one
    does and `FileExistsError` is raised if something is already there (``os.link``),
    falling back to replacing on file systems without hard links.
    """
    from . import _runtime

    _runtime.import_guarded("tempfile")  # 4 ms with `shutil`, `random`, `bz2`, `lzma`
    import tempfile

    fd, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        if replace:
            os.replace(temp, path)
            return
        try:
            os.link(temp, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some FUSE and FAT file systems)
            os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def open_lock(path: Path) -> int:
    """A descriptor on the lock file ``path``, created (0600) if missing.

    Raises `NotOursError` when anything but a regular file of ours is there: a lock file is
    never created through a planted symlink (``O_CREAT | O_NOFOLLOW`` refuses it).
    """
    fd = _open(path, os.O_RDWR | os.O_CREAT)
    try:
        if not _ours(os.fstat(fd)):
            raise NotOursError(errno.EPERM, "not a regular file of ours", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd
