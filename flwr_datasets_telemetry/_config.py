"""Configuration from environment variables, read once when the package starts.

A value that cannot be parsed never raises: it falls back to the safe choice and the
reason is kept in ``Config.problems`` so that logging (when on) can explain it.
"""

from __future__ import annotations

import os

from . import _choice

TYPE_CHECKING = False  # import cost: see the package docstring
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Final, Generic, TypeVar

    T = TypeVar("T")
else:  # `Variable` is generic to the type checker only: here `Generic[T]` is `object`
    T = None
    Generic = {T: object}

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
#: How long (seconds) a detached uploader may sleep in all, waiting for an endpoint out of
#: reach to come back, before it leaves the events to a later one.
DEFAULT_RETRY_WAIT = 3600.0
MAX_RETRY_WAIT = 86400.0

#: The words a yes/no variable may hold, in any case.
_YES: Final = ("1", "true", "yes", "on")
_NO: Final = ("0", "false", "no", "off")
_FLAGS: Final = dict.fromkeys(_YES, True) | dict.fromkeys(_NO, False)


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
        "retry_wait",
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
        retry_wait: float = DEFAULT_RETRY_WAIT,
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
        #: How long an uploader may sleep in all for an endpoint out of reach to come back.
        self.retry_wait = retry_wait

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


class Variable(Generic[T]):
    """An environment variable: how a value is parsed (``None`` means unclear), what it
    is when unset, what an unclear value counts as, and why (for the problem report)."""

    __slots__ = ("expected", "name", "parse", "unclear", "unset", "why")

    def __init__(  # noqa: PLR0913 - the columns of the table below
        self,
        name: str,
        parse: Callable[[str], T | None],
        *,
        unset: T,
        unclear: T,
        why: str,
        expected: str = "a yes/no value",
    ) -> None:
        self.name = name
        self.parse = parse
        self.unset, self.unclear = unset, unclear  # the two fallbacks, side by side
        self.why = why
        self.expected = expected

    def raw(self, env: Mapping[str, str]) -> str:
        return env.get(self.name, "").strip()

    def read(self, env: Mapping[str, str], problems: list[str]) -> T:
        """The variable's value; ``unset`` if unset; ``unclear`` (explained) if unclear."""
        raw = self.raw(env)
        if not raw:
            return self.unset
        value = self.parse(raw)
        if value is None:
            problems.append(f"{self.name}={raw!r} is not {self.expected}; {self.why}")
            return self.unclear
        return value


def _flag(raw: str) -> bool | None:
    """``True``/``False`` for a recognised yes/no word, ``None`` for anything else."""
    return _FLAGS.get(raw.strip().lower())


def _url(raw: str) -> str | None:
    """The endpoint if it is an http(s) URL with a host; ``None`` otherwise."""
    scheme, sep, rest = raw.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    valid = bool(sep) and scheme.lower() in ("http", "https") and bool(host.split(":")[0])
    return raw if valid else None


def _seconds(raw: str, most: float = MAX_EXIT_TIMEOUT) -> float | None:
    """A number of seconds from 0 to ``most`` (never NaN); ``None`` otherwise."""
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if 0.0 <= seconds <= most else None


def _retry_seconds(raw: str) -> float | None:
    return _seconds(raw, MAX_RETRY_WAIT)


def _names(raw: str) -> frozenset[str]:
    """Comma-separated plugin names, lower case; empty items are skipped."""
    return frozenset(name.strip().lower() for name in raw.split(",") if name.strip())


_SAFE: Final = "telemetry is disabled to be safe"

#: The variables, one row each, with what an unclear value counts as side by side: it
#: never turns telemetry on, nor a plugin's off switch off, nor sends an event anywhere
#: but where it was meant to go. Two paths are read apart: ``FLWR_HOME`` (checked on
#: disk, `_home`) and ``FLWR_TELEMETRY_MACHINE_CONFIG`` (`_choice.machine_file`).
ENABLED: Final = Variable("FLWR_TELEMETRY_ENABLED", _flag, unset=None, unclear=False, why=_SAFE)
DO_NOT_TRACK: Final = Variable("DO_NOT_TRACK", _flag, unset=None, unclear=True, why=_SAFE)
LOGGING: Final = Variable(
    "FLWR_TELEMETRY_LOGGING", _flag, unset=None, unclear=False, why="logging stays off"
)
NO_AUTOLOAD: Final = Variable(
    "FLWR_TELEMETRY_DISABLE_PLUGIN_AUTOLOAD",
    _flag,
    unset=None,
    unclear=False,
    why="plugins are loaded (a plugin may be what turns telemetry off)",
)
ENDPOINT: Final = Variable(
    "FLWR_TELEMETRY_ENDPOINT",
    _url,
    unset=DEFAULT_ENDPOINT,
    unclear=None,  # `read_config` keeps it as given, for `status`, and turns telemetry off
    why="telemetry is disabled rather than sent elsewhere",
    expected="an http(s) URL",
)
EXIT_TIMEOUT: Final = Variable(
    "FLWR_TELEMETRY_EXIT_TIMEOUT",
    _seconds,
    unset=DEFAULT_EXIT_TIMEOUT,
    unclear=DEFAULT_EXIT_TIMEOUT,
    why=f"using {DEFAULT_EXIT_TIMEOUT:g}",
    expected=f"a number of seconds from 0 to {MAX_EXIT_TIMEOUT:g}",
)
RETRY_WAIT: Final = Variable(
    "FLWR_TELEMETRY_RETRY_WAIT",
    _retry_seconds,
    unset=DEFAULT_RETRY_WAIT,
    unclear=DEFAULT_RETRY_WAIT,
    why=f"using {DEFAULT_RETRY_WAIT:g}",
    expected=f"a number of seconds from 0 to {MAX_RETRY_WAIT:g}",
)
DISABLE_COLLECTORS: Final[Variable[frozenset[str]]] = Variable(
    "FLWR_TELEMETRY_DISABLE_COLLECTORS",
    _names,
    unset=frozenset(),
    unclear=frozenset(),  # never used: every value is a list of names, empty ones skipped
    why="",
)


def _home(environ: Mapping[str, str], problems: list[str]) -> str | None:
    """The home folder, absolute; ``None`` (and why, in ``problems``) if unusable: then
    nothing is stored, and each process sends a fresh source id."""
    raw = environ.get("FLWR_HOME", "").strip() or os.path.join("~", ".flwr")
    home = os.path.expanduser(raw)
    why = None
    if home.startswith("~"):
        why = "names no home folder that exists"
    else:
        # From the folder the process started in: the same after a chdir (children get
        # it absolute: `_spawn._environment`).
        home = os.path.normpath(os.path.join(STARTED_IN, home))
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


def variable_says_local(env: Mapping[str, str]) -> str | None:
    """``"FLWR_TELEMETRY_ENABLED=local"`` (as set) if the variable asks for local-only
    mode, else ``None``: at start (`_on_off`) and later (`_choice.late_choice`)."""
    raw = ENABLED.raw(env)
    return f"{ENABLED.name}={raw}" if _choice.word(raw) == _choice.LOCAL else None


def variables_say_off(env: Mapping[str, str], problems: list[str] | None = None) -> str | None:
    """Which of ``FLWR_TELEMETRY_ENABLED`` and ``DO_NOT_TRACK`` says off (``"NAME=value"``),
    if one does; ``problems`` collects the values that could not be read.

    The one reading of the two, at start (`_on_off`) and before each event is built and
    sent (`_choice.late_choice`): a value means the same whenever it is set.
    """
    notes: list[str] = [] if problems is None else problems
    enabled_says_off = variable_says_local(env) is None and ENABLED.read(env, notes) is False
    do_not_track = DO_NOT_TRACK.read(env, notes)  # read either way: its problem is noted
    if enabled_says_off:
        return f"{ENABLED.name}={ENABLED.raw(env)}"
    if do_not_track:
        return f"{DO_NOT_TRACK.name}={DO_NOT_TRACK.raw(env)}"
    return None


def _on_off(
    env: Mapping[str, str], home: str | None, problems: list[str]
) -> tuple[str | None, bool, tuple[tuple[str, str], ...]]:
    """``(what disabled telemetry, local-only?, every source consulted)``."""
    sources: list[tuple[str, str]] = []
    sources.append((ENABLED.name, ENABLED.raw(env) or "unset"))
    sources.append((DO_NOT_TRACK.name, DO_NOT_TRACK.raw(env) or "unset"))
    local_only = variable_says_local(env) is not None
    disabled_by = variables_say_off(env, problems)

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

    logging_on = LOGGING.read(env, problems) is True
    endpoint = ENDPOINT.read(env, problems)
    if endpoint is None:  # kept as given, for `status` to show; nothing is sent
        endpoint = ENDPOINT.raw(env)
        if disabled_by is None:
            disabled_by = f"{ENDPOINT.name} (not an http(s) URL)"
    exit_timeout = EXIT_TIMEOUT.read(env, problems)
    retry_wait = RETRY_WAIT.read(env, problems)
    blocked = DISABLE_COLLECTORS.read(env, problems)
    autoload = NO_AUTOLOAD.read(env, problems) is not True

    return Config(
        disabled_by=disabled_by,
        logging=logging_on,
        endpoint=endpoint,
        home=home,
        blocked=blocked,
        autoload=autoload,
        exit_timeout=exit_timeout,
        retry_wait=retry_wait,
        problems=tuple(problems),
        local_only=local_only,
        sources=sources,
    )
