"""The anonymous source id in ``$FLWR_HOME/source``.

The file holds one random UUID and nothing else. It is created at the first event
that is really sent, atomically (a temporary file hard-linked into place, so two
processes starting together agree on one id) and readable by its owner only. Any
trouble — missing, empty, corrupt, huge, unreadable or unwritable file, a home that is
a file — gives a fresh id for this process instead of an exception. Only a regular
file of ours is ever read (see `_files`): a FIFO, socket, folder or symlink in its
place is left alone, never followed or waited on, and this process uses a fresh id.
``$FLWR_HOME`` is created only where its parent folder exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from . import _files
from ._runtime import random_uuid

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

#: A valid file is one UUID; anything longer is not ours to read whole.
MAX_SOURCE_BYTES: Final = 128
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_UUID_DIGITS: Final = 32


def canonical_uuid(text: str) -> str:
    """``text`` as ``str(uuid.UUID(text))`` has it, for the forms a person or tool
    writes (any case, braces, ``urn:uuid:``, no hyphens); `ValueError` otherwise.

    Not `uuid` itself: on Linux before Python 3.13 it imports `platform`, and the
    two cost a bare interpreter's first event about 2.5 ms.
    """
    digits = text.strip().replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
    if len(digits) != _UUID_DIGITS or not _HEX.issuperset(digits):
        raise ValueError("not a UUID")
    h = digits.lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _read(path: Path) -> str:
    """The stored id.

    Raises `FileNotFoundError` if missing, `ValueError` if a file of ours holds
    something else than one UUID (it may be replaced), and `OSError` (`_files.NotOursError`
    among them) for anything that must be left alone.
    """
    raw = _files.read_regular(path, MAX_SOURCE_BYTES)
    return canonical_uuid(raw.decode())


def read_source(path: Path | None) -> str | None:
    """The stored id, or ``None`` if there is no valid one (never raises, never blocks)."""
    if path is None:
        return None
    try:
        return _read(path)
    except (OSError, ValueError):
        return None


def _write_new(path: Path, on_created: Callable[[str], None] | None = None) -> str:
    """Store a new id unless another process just did; the id in the file wins.

    ``on_created`` runs in the one process whose id was stored (the one-time notice).
    """
    new_id = random_uuid()
    if not _files.make_home(path.parent):
        return new_id  # a home that cannot be made: this process's id only
    data = (new_id + "\n").encode()
    try:
        _files.publish(path, data, replace=False)
    except FileExistsError:
        try:
            return _read(path)
        except ValueError:  # a corrupt file of ours is replaced
            _files.publish(path, data, replace=True)
        except OSError:  # vanished or not ours: keep the fresh id, touch nothing
            return new_id
    if on_created is not None:
        on_created(new_id)
    return new_id


def source_id(
    path: Path | None, *, create: bool, on_created: Callable[[str], None] | None = None
) -> str | None:
    """The id to send: the stored one, else a new one (stored if ``create``).

    Without ``create`` (telemetry disabled, or a preview), a missing id stays missing
    and ``None`` is returned: nothing is written.
    """
    if path is None:
        return random_uuid() if create else None
    try:
        return _read(path)
    except FileNotFoundError:
        pass  # missing (or a home that is a file): create it
    except ValueError:
        pass  # empty, corrupt or huge: replace it
    except OSError:
        return random_uuid() if create else None  # not ours or unreadable: leave it
    if not create:
        return None
    try:
        return _write_new(path, on_created)
    except (OSError, ValueError):  # unwritable: a fresh id for this process only
        return random_uuid()
