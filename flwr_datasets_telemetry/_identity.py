"""The anonymous source id in ``$FLWR_HOME/source``.

The file holds one random UUID and nothing else. It is created at the first event
that is really sent, atomically (a temporary file hard-linked into place, so two
processes starting together agree on one id) and readable by its owner only. Any
trouble — missing, empty, corrupt, huge, unreadable or unwritable file, a home that is
a file — gives a fresh id for this process instead of an exception.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

#: A valid file is one UUID; anything longer is not ours to read whole.
MAX_SOURCE_BYTES: Final = 128


def _read(path: Path) -> str:
    """The stored id; `OSError` if unreadable, `ValueError` if not one UUID."""
    with path.open("rb") as file:
        raw = file.read(MAX_SOURCE_BYTES + 1)
    if len(raw) > MAX_SOURCE_BYTES:
        raise ValueError("source file too large")
    return str(uuid.UUID(raw.decode().strip()))


def read_source(path: Path | None) -> str | None:
    """The stored id, or ``None`` if there is no valid one (never raises)."""
    if path is None:
        return None
    try:
        return _read(path)
    except (OSError, ValueError):
        return None


def _write_new(path: Path) -> str:
    """Store a new id unless another process just did; the id in the file wins."""
    new_id = str(uuid.uuid4())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=".source-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(new_id + "\n")
        try:
            os.link(temp_name, path)
        except FileExistsError:
            existing = read_source(path)
            if existing is not None:
                return existing
            os.replace(temp_name, path)  # a corrupt file is replaced
        except OSError:  # no hard links on this file system
            os.replace(temp_name, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
    return new_id


def source_id(path: Path | None, *, create: bool) -> str | None:
    """The id to send: the stored one, else a new one (stored if ``create``).

    Without ``create`` (telemetry disabled, or a preview), a missing id stays missing
    and ``None`` is returned: nothing is written.
    """
    if path is None:
        return str(uuid.uuid4()) if create else None
    try:
        return _read(path)
    except (FileNotFoundError, NotADirectoryError):
        pass  # missing (or a home that is a file): create it
    except ValueError:
        pass  # empty, corrupt or huge: replace it
    except OSError:
        return str(uuid.uuid4()) if create else None  # unreadable: leave it alone
    if not create:
        return None
    try:
        return _write_new(path)
    except (OSError, ValueError):  # unwritable: a fresh id for this process only
        return str(uuid.uuid4())
