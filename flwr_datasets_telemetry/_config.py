"""Configuration from environment variables, read once when the package starts.

A value that cannot be parsed never raises: it falls back to the safe choice and the
reason is kept in ``Config.problems`` so that logging (when on) can explain it.
"""

from __future__ import annotations

import os

from . import _choice

TYPE_CHECKING = False  # import cost: see the package docstring
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Final

DEFAULT_ENDPOINT = "https://telemetry.flower.ai/api/v1/event"


def _working_folder() -> str:
    try:
        return os.getcwd()
    except OSError:
        return os.sep


#: The working folder when the package was imported: children never import from it.
STARTED_IN = _working_folder()
#: Seconds pending events may hold up exit; with interpreter shutdown, under a second.
DEFAULT_EXIT_TIMEOUT = 0.8
MAX_EXIT_TIMEOUT = 30.0

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Config:
    """Everything the environment decides, parsed once (a plain class: see `_track`)."""

    __slots__ = (
        "autoload",
        "blocked",
        "disabled_by",
        "enabled",
        "endpoint",
        "exit_timeout",
        "home",
        "in_process",
        "local_only",
        "logging",
        "problems",
        "sources",
    )

    def __init__(  # noqa: PLR0913 - one keyword per variable
        self,
        *,
        disabled_by: str | None = None,
        logging: bool = False,
        endpoint: str = DEFAULT_ENDPOINT,
        home: str | None = None,
        blocked: frozenset[str] = frozenset(),
        autoload: bool = True,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
        problems: tuple[str, ...] = (),
        local_only: bool = False,
        sources: tuple[tuple[str, str], ...] = (),
        in_process: bool = False,
    ) -> None:
        #: Which variable turned telemetry off, as ``NAME=value``; ``None`` if none did.
        self.disabled_by = disabled_by
        self.enabled = disabled_by is None
        self.logging = logging
        self.endpoint = endpoint
        #: Folder of the source id; ``None`` when no home folder can be found.
        self.home = home
        self.blocked = blocked
        self.autoload = autoload
        self.exit_timeout = exit_timeout
        self.problems = problems
        #: Events are recorded under the home folder and never uploaded.
        self.local_only = local_only
        #: Every source consulted for on/off, in order: ``(source, what it says)``.
        self.sources = sources
        #: Events never leave the process (`testing.capture_events`): no opt-out applies.
        self.in_process = in_process

    @property
    def active(self) -> bool:
        """Whether tracked calls need to be handed to the background at all."""
        return self.enabled or self.logging

    @property
    def home_path(self) -> Path | None:
        from pathlib import Path

        return None if self.home is None else Path(self.home)

    @property
    def source_file(self) -> Path | None:
        home = self.home_path
        return None if home is None else home / "source"


class YesNo:
    """A yes/no variable, and what a value that is neither counts as (and why)."""

    __slots__ = ("name", "unclear", "why")

    def __init__(self, name: str, unclear: bool, why: str) -> None:
        self.name = name
        self.unclear = unclear
        self.why = why


#: The yes/no variables, each with its fallback side by side: an unclear value never
#: turns telemetry on, nor a plugin's off switch off.
ENABLED: Final = YesNo("FLWR_TELEMETRY_ENABLED", False, "telemetry is disabled to be safe")
DO_NOT_TRACK: Final = YesNo("DO_NOT_TRACK", True, "telemetry is disabled to be safe")
LOGGING: Final = YesNo("FLWR_TELEMETRY_LOGGING", False, "logging stays off")
NO_AUTOLOAD: Final = YesNo(
    "FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD",
    False,
    "plugins are loaded (a plugin may be what turns telemetry off)",
)


def yes_no(env: Mapping[str, str], variable: YesNo, problems: list[str]) -> bool | None:
    """The variable's value; ``None`` if unset; its fallback (explained) if unclear."""
    raw = env.get(variable.name, "").strip()
    if not raw:
        return None
    flag = _flag(raw)
    if flag is None:
        problems.append(f"{variable.name}={raw!r} is not a yes/no value; {variable.why}")
        return variable.unclear
    return flag


def _flag(raw: str | None) -> bool | None:
    """``True``/``False`` for a recognised boolean word, ``None`` for anything else."""
    if raw is None:
        return None
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


def _home(environ: Mapping[str, str], problems: list[str]) -> str | None:
    """The home folder, absolute; ``None`` (and why, in ``problems``) if unusable: then
    nothing is stored, and each process sends a fresh source id."""
    raw = environ.get("FLWR_HOME", "").strip() or os.path.join("~", ".flwr")
    home = os.path.expanduser(raw)
    why = None
    if home.startswith("~"):
        why = "names no home folder that exists"
    else:
        home = os.path.abspath(home)  # the same folder after a chdir, and in the uploader
        if os.path.lexists(home) and (os.path.islink(home) or not os.path.isdir(home)):
            why = "is not a folder"
        elif not os.path.isdir(os.path.dirname(home)):
            why = "is in a folder that does not exist (it is never created)"
    if why is None:
        return home
    problems.append(
        f"FLWR_HOME {raw!r} {why}: nothing is stored, and each process sends a fresh id"
    )
    return None


def _valid_endpoint(url: str) -> bool:
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    return bool(sep) and scheme.lower() in ("http", "https") and bool(host.split(":")[0])


def _on_off(
    env: Mapping[str, str], home: str | None, problems: list[str]
) -> tuple[str | None, bool, tuple[tuple[str, str], ...]]:
    """``(what disabled telemetry, local-only?, every source consulted)``."""
    disabled_by: str | None = None
    sources: list[tuple[str, str]] = []

    raw_enabled = env.get(ENABLED.name, "").strip()
    sources.append((ENABLED.name, raw_enabled or "unset"))
    local_only = _choice.word(raw_enabled) == _choice.LOCAL
    if not local_only and yes_no(env, ENABLED, problems) is False:
        disabled_by = f"{ENABLED.name}={raw_enabled}"

    raw_dnt = env.get(DO_NOT_TRACK.name, "").strip()
    sources.append((DO_NOT_TRACK.name, raw_dnt or "unset"))
    if yes_no(env, DO_NOT_TRACK, problems) and disabled_by is None:
        disabled_by = f"{DO_NOT_TRACK.name}={raw_dnt}"

    for label, path, follow in (
        ("user setting", _choice.user_file(home), False),
        ("machine setting", _choice.machine_file(env), True),
    ):
        choice, problem = _choice.read_setting(path, follow=follow)
        sources.append((f"{label} {path or '(no home folder)'}", choice or "absent"))
        if problem:
            problems.append(problem)
        if choice == _choice.DISABLED and disabled_by is None:
            disabled_by = f"the {label} ({path})"
        local_only = local_only or choice == _choice.LOCAL
    return disabled_by, local_only, tuple(sources)


def read_config(environ: Mapping[str, str] | None = None) -> Config:
    """Parse the ``FLWR_*`` and ``DO_NOT_TRACK`` variables into a `Config`."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    home = _home(env, problems)
    disabled_by, local_only, sources = _on_off(env, home, problems)

    logging_on = yes_no(env, LOGGING, problems) is True

    endpoint = env.get("FLWR_TELEMETRY_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
    if not _valid_endpoint(endpoint):
        problems.append(
            f"FLWR_TELEMETRY_ENDPOINT={endpoint!r} is not an http(s) URL; "
            "telemetry is disabled rather than sent elsewhere"
        )
        if disabled_by is None:
            disabled_by = "FLWR_TELEMETRY_ENDPOINT (not an http(s) URL)"

    raw_timeout = env.get("FLWR_TELEMETRY_EXIT_TIMEOUT", "").strip()
    exit_timeout = DEFAULT_EXIT_TIMEOUT
    if raw_timeout:
        try:
            exit_timeout = float(raw_timeout)
            if not 0.0 <= exit_timeout <= MAX_EXIT_TIMEOUT:
                raise ValueError(raw_timeout)
        except ValueError:
            exit_timeout = DEFAULT_EXIT_TIMEOUT
            problems.append(
                f"FLWR_TELEMETRY_EXIT_TIMEOUT={raw_timeout!r} is not a number of seconds "
                f"from 0 to {MAX_EXIT_TIMEOUT:g}; using {DEFAULT_EXIT_TIMEOUT:g}"
            )

    blocked = frozenset(
        name.strip().lower()
        for name in env.get("FLWR_TELEMETRY_DISABLE_COLLECTORS", "").split(",")
        if name.strip()
    )

    autoload = yes_no(env, NO_AUTOLOAD, problems) is not True

    return Config(
        disabled_by=disabled_by,
        logging=logging_on,
        endpoint=endpoint,
        home=home,
        blocked=blocked,
        autoload=autoload,
        exit_timeout=exit_timeout,
        problems=tuple(problems),
        local_only=local_only,
        sources=sources,
    )
