"""The person's choice: persistent settings files, and the late opt-out check.

Two files may hold a choice, both in the same tiny format (``telemetry = disabled``,
``enabled`` or ``local``; ``#`` starts a comment):

- the user's, ``$FLWR_HOME/telemetry.conf``, written by ``flwr-datasets-telemetry
  disable|enable``: it covers every environment and kernel that shares that home;
- the machine's, ``/etc/flwr/telemetry.conf`` (``%PROGRAMDATA%\\flwr\\telemetry.conf``
  on Windows) or wherever ``FLWR_TELEMETRY_MACHINE_CONFIG`` points: an administrator
  switches a machine or an image off with it.

A file that exists but cannot be read fully and understood (a directory, a FIFO, a
symlink loop, binary junk, too large) counts as "disabled": a broken opt-out must
never turn into an opt-in. Off always wins over anything that says on.
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False  # import cost: see the package docstring
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

USER_FILE_NAME: Final = "telemetry.conf"
MACHINE_FILE_VARIABLE: Final = "FLWR_TELEMETRY_MACHINE_CONFIG"
MAX_SETTINGS_BYTES: Final = 4096
#: Values a settings file may hold, and the variables' extra word for local-only mode.
DISABLED, ENABLED, LOCAL = "disabled", "enabled", "local"
_OFF_WORDS: Final = frozenset({"0", "false", "no", "off", DISABLED})
_ON_WORDS: Final = frozenset({"1", "true", "yes", "on", ENABLED})


def machine_file(environ: Mapping[str, str]) -> str:
    """Where the administrator's file is looked for. A relative override is taken from
    the folder the process started in: the same file before and after a ``chdir``."""
    override = environ.get(MACHINE_FILE_VARIABLE, "").strip()
    if override:
        from ._config import STARTED_IN  # imported with the package: no cost

        return os.path.join(STARTED_IN, override)
    if sys.platform == "win32":
        base = environ.get("PROGRAMDATA", "C:\\ProgramData")
        return os.path.join(base, "flwr", USER_FILE_NAME)
    return os.path.join("/etc", "flwr", USER_FILE_NAME)


def user_file(home: str | None) -> str | None:
    return None if home is None else os.path.join(home, USER_FILE_NAME)


def word(raw: str) -> str | None:
    """``disabled``/``enabled``/``local`` for a recognised value, else ``None``."""
    value = raw.strip().lower()
    if value in _OFF_WORDS:
        return DISABLED
    if value in _ON_WORDS:
        return ENABLED
    return LOCAL if value == LOCAL else None


def _read_small_regular_file(path: str, *, follow: bool) -> bytes | None:
    """The bytes of a small regular file; ``None`` if missing; `ValueError` if unusable.

    Never blocks on a FIFO or device (``O_NONBLOCK``, then a regular-file check).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:  # a symlink where none may be, a loop, no permission
        raise ValueError(error.strerror or type(error).__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_SETTINGS_BYTES:
            raise ValueError(f"larger than {MAX_SETTINGS_BYTES} bytes")
        data = os.read(fd, MAX_SETTINGS_BYTES + 1)
    except OSError as error:
        raise ValueError(error.strerror or type(error).__name__) from None
    finally:
        os.close(fd)
    if len(data) > MAX_SETTINGS_BYTES:
        raise ValueError(f"larger than {MAX_SETTINGS_BYTES} bytes")
    return data


def parse(data: bytes) -> str:
    """The choice a settings file's bytes hold; `ValueError` if there is none."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    choice: str | None = None
    for line in text.splitlines():
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        key, sep, value = content.partition("=")
        if not sep or key.strip().lower() != "telemetry":
            raise ValueError(f"unexpected line {content[:40]!r}")
        choice = word(value)
        if choice is None:
            raise ValueError(f"unknown value {value.strip()[:20]!r}")
    if choice is None:
        raise ValueError("no 'telemetry = ...' line")
    return choice


def read_setting(path: str | None, *, follow: bool) -> tuple[str | None, str | None]:
    """``(choice, problem)`` of one settings file: ``(None, None)`` when absent."""
    if path is None:
        return None, None
    try:
        data = _read_small_regular_file(path, follow=follow)
        if data is None:
            return None, None
        return parse(data), None
    except ValueError as error:
        return DISABLED, f"{path}: {error}; read as 'disabled' to be safe"


def settings_text(choice: str) -> str:
    return (
        "# Anonymous usage telemetry of Flower Datasets: your choice, written by\n"
        f"# `flwr-datasets-telemetry {'disable' if choice == DISABLED else 'enable'}`.\n"
        "# Values: disabled, enabled, local. Delete this file to go back to the default.\n"
        f"telemetry = {choice}\n"
    )


def write_setting(home: str, choice: str) -> str:
    """Store ``choice`` in the user's file atomically; its path. `OSError` if it cannot."""
    path = os.path.join(home, USER_FILE_NAME)
    if not os.path.isdir(os.path.dirname(home) or "."):
        raise OSError(f"the folder above {home} does not exist")
    try:
        os.mkdir(home, 0o700)
    except FileExistsError:
        pass
    if os.path.islink(home) or not os.path.isdir(home):
        raise OSError(f"{home} is not a folder")
    temp = os.path.join(home, f".{USER_FILE_NAME}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(settings_text(choice))
        os.replace(temp, path)
    finally:
        try:
            os.unlink(temp)
        except OSError:
            pass
    return path


def late_choice(
    home: str | None, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """``(what says "off" now, what says "local only" now)``, each as its source, or
    ``None``: the person's choice as it stands, checked on the background side before
    each event is built and again before it is handed over; costs the caller nothing.
    Read as at start: the variables, then the user's and the machine's settings."""
    from ._config import variable_says_local, variables_say_off  # loaded with the package

    env = os.environ if environ is None else environ
    off = variables_say_off(env)
    if off is not None:
        return off, None  # off wins: local-only no longer matters
    local = variable_says_local(env)
    for label, path, follow in (
        ("the user setting", user_file(home), False),
        ("the machine setting", machine_file(env), True),
    ):
        choice, _ = read_setting(path, follow=follow)
        if choice == DISABLED:
            return f"{label} ({path})", None
        if choice == LOCAL and local is None:
            local = f"{label} ({path})"
    return None, local
