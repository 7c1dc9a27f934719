"""Handing an event over for delivery, and delivering one through the transports.

::

    host (sender thread)                     uploader (one per $FLWR_HOME, detached)
    hand_over_many(config, bodies, endpoint) python -m flwr_datasets_telemetry._uploader
      |- local-only: record, done              |- takes uploader.lock (POSIX lock)
      |- outbox.append_many ---- outbox/ ----->|- claims each event (rename)
      |- offline / backing off: done           |- deliver() through telemetry_send
      '- uploader running? else start one      |- records outcome; a failure worth
         (None: no outbox or no uploader:      |  another try: back-off, sleep, retry
          the caller delivers in-process)      '- exits 2 s after the outbox is empty

Facts shared by every process of the home live next to the outbox: ``uploader.lock``
(held by the running uploader: a hint, the outbox is correct without it),
``uploader.starting`` (made by the host that starts one, so a hundred hosts start one
uploader) and one ``backoff-<crc>.json`` per endpoint that failed or was out of reach.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import sys
import time
import zlib
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from . import _files, _machine, _outbox, _runtime

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._config import Config
    from ._plugins import Plugins

UPLOADER_MODULE: Final = "flwr_datasets_telemetry._uploader"
LOCK: Final = "uploader.lock"
STARTING: Final = "uploader.starting"
#: A start announced this long ago (seconds) without an uploader taking the lock failed.
START_GRACE: Final = 30.0
#: Back-off after a connection-level failure: first delay, doubling up to a day.
FIRST_BACKOFF: Final = 60.0
MAX_BACKOFF: Final = 24 * 3600.0

#: `hand_over` outcomes, as logged in the host.
QUEUED: Final = "queued"
QUEUED_OFFLINE: Final = "queued: offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE), waits in the outbox"
QUEUED_BACKOFF: Final = "queued: the endpoint failed or was out of reach, next attempt after {}"
RECORDED_LOCALLY: Final = "recorded locally (local-only mode), never uploaded"
NOT_RECORDED: Final = "dropped: local-only and the record cannot be written"
MAYBE_SENT: Final = (
    "taken back for local-only mode while an uploader was sending it: "
    "it may have reached the endpoint"
)
#: How often `retract` looks for an event an uploader moves between two looks.
_RETRACT_LOOKS: Final = 3
OVERSIZED: Final = "dropped: larger than the outbox takes"
DROPPED_OFFLINE: Final = "dropped: offline and the outbox cannot be written"
DROPPED_DISABLED: Final = "dropped: telemetry was turned off (disable())"

_OFFLINE_VARIABLES: Final = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_SPAWN: Final = f"{__package__}._spawn"
_LOCK_BUSY: Final = (errno.EACCES, errno.EAGAIN)
_FILE_FLAGS: Final = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_HTTP_STATUS: Final = re.compile(r"\bHTTP (\d{3})\b")
#: In the ``http`` transport's messages: the endpoint cannot be reached at all.
_UNREACHABLE_WORDS: Final = ("not trying again", "ConnectionError", "Timeout")
#: How often `await_delivery` looks at the outbox: first after `_POLL` seconds, then
#: half as long again each time up to `_MAX_POLL` (a look costs about 1 ms of CPU: a
#: flush waiting seconds for an uploader must not cost the host 5 % of a core).
_POLL: Final = 0.02
_MAX_POLL: Final = 0.25
#: How long (seconds) `await_delivery` goes on with no uploader at work (one lets go
#: of its lock briefly before it ends; meanwhile it looks every `_POLL` again), and
#: how often it reads the record for attempts that failed (a back-off usually says
#: so first: this is for a home whose back-off file cannot be written).
_IDLE_FOR: Final = 0.1
_FAILED_EVERY: Final = 1.0
#: Outbox entries a host remembers, to take back after an opt-out.
MAX_RETRACTABLE: Final = 1000
#: Processes (pids) in which no uploader could be started: they deliver in-process.
_cannot_start: set[int] = set()


# -- what the configuration allows -----------------------------------------------------


def offline(environ: Any = None) -> bool:
    """Whether the Hugging Face offline switches forbid network access here."""
    env = os.environ if environ is None else environ
    return any(
        str(env.get(name, "")).strip().upper() in ("1", "ON", "YES", "TRUE")
        for name in _OFFLINE_VARIABLES
    )


# -- delivery through the transports (shared by the uploader and the in-process path) --


class Outcome(NamedTuple):
    """What happened to one event, in the words the log and the record show."""

    delivered: bool
    #: ``"delivered by 'http'"``, ``"not delivered by 'http': ConnectionError: ..."``.
    text: str
    #: Worth another try later (5xx, 429, out of reach); else the event is done with.
    retry: bool = False
    #: A connection-level failure: the machine backs off from this endpoint.
    unreachable: bool = False


def _classify(error: BaseException) -> tuple[bool, bool]:
    """``(retry, unreachable)`` for a transport's exception.

    A transport may say so itself (``error.unreachable``, ``error.status``); for
    others, requests' connection errors and the ``http`` transport's words decide.
    """
    status = getattr(error, "status", None)
    if not isinstance(status, int):
        match = _HTTP_STATUS.search(str(error))
        status = int(match.group(1)) if match else None
    if status is not None:
        return status >= 500 or status in (408, 429), False  # noqa: PLR2004
    flag = getattr(error, "unreachable", None)
    if isinstance(flag, bool):
        return True, flag
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return True, True
    text = str(error)
    if any(word in text for word in _UNREACHABLE_WORDS):
        return True, True
    return type(error).__name__ == "DeliveryError", False


def deliver(plugins: Plugins, body: bytes, payload: Any, endpoint: str) -> Outcome:
    """Offer the event to each ``telemetry_send`` implementation until one answers.

    The first non-``None`` answer wins; an implementation that raises ends the
    attempt (its exception is the outcome).
    """
    kwargs = {"body": body, "payload": payload, "endpoint": endpoint}
    for impl in plugins.implementations("telemetry_send"):
        try:
            answer = plugins.call(impl, kwargs)
        except BaseException as error:  # a plugin's SystemExit is its failure, not ours
            from ._plugins import describe

            retry, unreachable = _classify(error)
            text = f"not delivered by {impl.plugin_name!r}: {describe(error)}"
            return Outcome(delivered=False, text=text, retry=retry, unreachable=unreachable)
        if answer is not None:
            outcome = "delivered" if answer else "not delivered"
            return Outcome(bool(answer), f"{outcome} by {impl.plugin_name!r}")
    return Outcome(delivered=False, text="not delivered: no transport answered")


def in_process_only(plugins: Plugins) -> bool:
    """Whether a transport registered in this process (a test capture) must deliver.

    Such a plugin does not exist in an uploader, so its events never go to the outbox.
    """
    return any(
        plugins.origins.get(impl.plugin_name) == "registered in-process"
        for impl in plugins.implementations("telemetry_send")
    )


# -- machine-wide back-off per endpoint ------------------------------------------------


def _backoff_name(endpoint: str) -> str:
    return f"backoff-{zlib.crc32(endpoint.encode()):08x}.json"


def _read_backoff(telemetry: int, endpoint: str) -> tuple[float, float] | None:
    """``(until, delay)`` stored for ``endpoint``, if any."""
    raw = _outbox.read_regular(telemetry, _backoff_name(endpoint), 4096)
    try:
        stored = _files.parse_json(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(stored, dict) or stored.get("endpoint") != endpoint:
        return None
    until, delay = stored.get("until"), stored.get("delay")
    if not isinstance(until, (int, float)) or not isinstance(delay, (int, float)):
        return None
    return float(until), float(delay)


def backing_off(telemetry: int, endpoint: str, now: float | None = None) -> float | None:
    """When the back-off from ``endpoint`` ends, if it has not ended yet.

    A back-off ending further ahead than `MAX_BACKOFF` means the clock was set back:
    it is ignored rather than waited out.
    """
    stored = _read_backoff(telemetry, endpoint)
    current = time.time() if now is None else now
    if stored is None or not 0 < stored[0] - current <= MAX_BACKOFF:
        return None
    return stored[0]


def note_failure(telemetry: int, endpoint: str, now: float | None = None) -> float:
    """After a failure worth another try (out of reach, 5xx, 408, 429): start, or
    double, the back-off from ``endpoint``; returns the delay in seconds."""
    current = time.time() if now is None else now
    stored = _read_backoff(telemetry, endpoint)
    delay = FIRST_BACKOFF if stored is None else min(MAX_BACKOFF, max(FIRST_BACKOFF, 2 * stored[1]))
    data = json.dumps({"endpoint": endpoint, "until": current + delay, "delay": delay})
    with contextlib.suppress(OSError):
        _outbox.publish(telemetry, _backoff_name(endpoint), data.encode(), replace=True)
    return delay


def forget_old_backoffs(telemetry: int, now: float | None = None) -> None:
    """Delete the back-offs that ended more than `MAX_BACKOFF` ago, lie further ahead
    than that (a clock set back), or cannot be read: every endpoint that ever failed
    leaves one, and past that age it doubles nothing any more. Run by the uploader."""
    current = time.time() if now is None else now
    for name in _outbox.backoff_names(telemetry):
        raw = _outbox.read_regular(telemetry, name, 4096)
        if raw is None:
            continue  # not a regular file of ours: left alone
        try:
            stored = _files.parse_json(raw)
        except ValueError:
            stored = None
        until = stored.get("until") if isinstance(stored, dict) else None
        if not isinstance(until, (int, float)) or not abs(current - until) <= MAX_BACKOFF:
            _outbox.unlink(telemetry, name)


def note_reachable(telemetry: int, endpoint: str) -> None:
    """The endpoint took an event: the back-off starts from scratch next time."""
    with contextlib.suppress(OSError):
        os.unlink(_backoff_name(endpoint), dir_fd=telemetry)


# -- one uploader per home -------------------------------------------------------------


def _open_lock(telemetry: int) -> int | None:
    try:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | _FILE_FLAGS, 0o600, dir_fd=telemetry)
    except OSError:
        return None
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    os.close(fd)
    return None


def uploader_running(telemetry: int) -> bool | None:
    """Whether an uploader holds the lock; ``None`` if that cannot be known.

    POSIX record locks (``lockf``), not ``flock``: a child forked while the host holds
    its brief shared lock does not inherit it, and NFS carries them between machines.
    """
    _runtime.import_guarded("fcntl")  # where no built-in imported it (hardware blocked)
    import fcntl

    fd = _open_lock(telemetry)
    if fd is None:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        return True if error.errno in _LOCK_BUSY else None
    finally:
        os.close(fd)  # releases the shared lock
    return False


def take_lock(telemetry: int, attempts: int = 40) -> tuple[int, bool] | None:
    """The uploader's exclusive lock: its descriptor (-1 for none) and whether it is a
    real lock; ``None`` if another uploader holds it.

    A host's probe holds a shared lock for microseconds: a few short retries tell it
    from a live uploader. Where locks are not supported (some NFS and Lustre mounts),
    or the lock file cannot be opened (something not ours in its place), the lock is
    not needed for correctness — claims keep the outbox correct — but more than one
    uploader may run, so none of them waits or lingers.
    """
    _runtime.import_guarded("fcntl")  # where no built-in imported it (hardware blocked)
    import fcntl

    fd = _open_lock(telemetry)
    if fd is None and _remove_trap(telemetry, LOCK):  # else every batch starts its own
        fd = _open_lock(telemetry)
    if fd is None:
        return -1, False
    for _ in range(attempts):
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in _LOCK_BUSY:
                return fd, False
            time.sleep(0.025)
            continue
        return fd, True
    os.close(fd)
    return None


def _announce_start(telemetry: int) -> bool:
    """Make ``uploader.starting``; False if another host announced a start just now."""
    for _ in range(2):
        try:
            fd = os.open(
                STARTING,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS,
                0o600,
                dir_fd=telemetry,
            )
        except FileExistsError:
            if not _is_regular(telemetry, STARTING):
                if _remove_trap(telemetry, STARTING):
                    continue
                return True  # a trap we cannot remove: start without announcing
            if _starting(telemetry):
                return False
            with contextlib.suppress(OSError):
                os.unlink(STARTING, dir_fd=telemetry)
            continue
        with contextlib.suppress(OSError):
            os.write(fd, _starter().encode())
        os.close(fd)
        return True
    return False


def _remove_trap(folder: int, name: str) -> bool:
    """Remove what is not a regular file at our ``name``: an empty folder, a FIFO, a
    symlink (never followed); whether something was removed.

    Another host may repair it at the same moment and lock the real file it made: a
    folder is only ever `rmdir`-ed (which never removes a file), anything else is
    first moved aside and put back if it turns out to be such a file (same inode: its
    lock holds)."""
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
        if stat.S_ISREG(mode):
            return False
        if stat.S_ISDIR(mode):
            os.rmdir(name, dir_fd=folder)
            return True
        aside = f".tmp-{_outbox.random_token()}"
        os.rename(name, aside, src_dir_fd=folder, dst_dir_fd=folder)
        if stat.S_ISREG(os.stat(aside, dir_fd=folder, follow_symlinks=False).st_mode):
            with contextlib.suppress(OSError):
                os.link(aside, name, src_dir_fd=folder, dst_dir_fd=folder)
            os.unlink(aside, dir_fd=folder)
            return False
        os.unlink(aside, dir_fd=folder)
    except OSError:
        return False
    return True


def _is_regular(folder: int, name: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return True  # gone meanwhile: as if it were ours


def _starter() -> str:
    """Who announced a start: ``pid@host`` (the host name stays in this file, unsent)."""
    return f"{os.getpid()}@{_machine.uname().node}"


def _starter_gone(telemetry: int) -> bool:
    """Whether the announcing process, on this machine, no longer exists (it was
    killed between announcing and starting: nobody else should wait for it)."""
    try:
        fd = os.open(STARTING, os.O_RDONLY | _FILE_FLAGS, dir_fd=telemetry)
    except OSError:
        return False
    try:
        pid, _, host = os.read(fd, 256).decode("ascii", "replace").partition("@")
    except OSError:
        return False
    finally:
        os.close(fd)
    if host != _machine.uname().node or not pid.isdecimal():
        return False  # another machine's (a shared home): only the grace period tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _starting(telemetry: int) -> bool:
    """Whether a host announced an uploader that has not taken the lock yet."""
    try:
        info = os.stat(STARTING, dir_fd=telemetry, follow_symlinks=False)
    except OSError:
        return False
    return abs(time.time() - info.st_mtime) < START_GRACE and not _starter_gone(telemetry)


def clear_start(telemetry: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(STARTING, dir_fd=telemetry)


def ensure_uploader(telemetry: int, home: str, started: Callable[[], None] | None = None) -> bool:
    """Make sure an uploader runs for ``home``; False if none could be started.

    ``started`` is called the moment a new uploader's start has forked (the rest of
    its start-up happens without this process).
    """
    if os.getpid() in _cannot_start:
        return False
    if _turned_off():  # `disable()` came meanwhile: no file, no process
        return True  # after it (the caller takes its events back)
    if uploader_running(telemetry) is True or not _announce_start(telemetry):
        return True
    _runtime.import_guarded(_SPAWN)  # with `subprocess`: 5 ms a host that starts none saves
    from . import _spawn

    if _turned_off():  # `disable()` came meanwhile: no process after it
        clear_start(telemetry)
        return True
    if _spawn.start_detached(UPLOADER_MODULE, [os.path.abspath(home)], started=started):
        return True
    clear_start(telemetry)
    if _spawn.host_is_waiting():  # not now (the host waits for any child): a later event
        return True
    _cannot_start.add(os.getpid())
    return False


# -- the host's entry point ------------------------------------------------------------


def hand_over(  # noqa: PLR0913 - what the pipeline keeps track of, by keyword
    config: Config,
    body: bytes,
    endpoint: str,
    *,
    appended: list[str] | None = None,
    sent: list[tuple[str, bytes]] | None = None,
    in_outbox: Callable[[], None] | None = None,
) -> str | None:
    """`hand_over_many` for one event."""
    (outcome,) = hand_over_many(
        config, [body], endpoint, appended=appended, sent=sent, in_outbox=in_outbox
    )
    return outcome


def hand_over_many(  # noqa: PLR0913 - what the pipeline keeps track of, by keyword
    config: Config,
    bodies: list[bytes],
    endpoint: str,
    *,
    appended: list[str] | None = None,
    sent: list[tuple[str, bytes]] | None = None,
    in_outbox: Callable[[], None] | None = None,
    written: Callable[[int], None] | None = None,
) -> list[str | None]:
    """Put events where they will be delivered from; what happened to each, for the log.

    Runs on the host's sender thread and never raises. An outcome of ``None`` means
    the caller must deliver that event in-process (with `deliver`): no home, no
    outbox, or no uploader can be started here (the event was taken back out of the
    outbox). The outbox is written, trimmed and its uploader looked for once for all.
    Outcomes that start with ``"dropped"`` are events lost.
    """
    names: list[str | None] = []
    listed: list[str] = [] if appended is None else appended
    try:
        outcomes = _hand_over(
            config, bodies, endpoint, names, in_outbox=in_outbox, listed=listed, on_written=written
        )
    except Exception:  # delivered in-process (or dropped): none may stay in the outbox too
        if written is not None:
            written(0)
        retract(config.home, [name for name in names if name is not None])
        outcomes = [DROPPED_OFFLINE if offline() else None] * len(bodies)
    kept = [
        (name, body, outcome)
        for name, body, outcome in zip(names, bodies, outcomes, strict=False)
        if name is not None and outcome is not None
    ]
    for name, outcome in zip(names, outcomes, strict=False):
        if name is not None and outcome is None:  # taken back: delivered in-process
            with contextlib.suppress(ValueError):
                listed.remove(name)
    if sent is not None:  # in the outbox: `flush` looks for them
        sent.extend((name, body) for name, body, outcome in kept if outcome.startswith(QUEUED))
    return outcomes


def _hand_over(  # noqa: PLR0913 - `hand_over_many`'s, plus where names go
    config: Config,
    bodies: list[bytes],
    endpoint: str,
    names: list[str | None],
    *,
    in_outbox: Callable[[], None] | None = None,
    listed: list[str] | None = None,
    on_written: Callable[[int], None] | None = None,
) -> list[str | None]:
    """The outcome of each event (the names of those written go to ``names``, in order,
    ``None`` for one not written, and to ``listed`` the moment they are written: an
    opt-out on another thread, once ``in_outbox`` has let exit go on, must find them).
    ``on_written`` is told how many are in the outbox, once they are and again if some
    are taken back: until their uploader is found, those wait there for a later one."""
    home = config.home
    if _turned_off():  # `disable()` on another thread, since the check before
        return [DROPPED_DISABLED] * len(bodies)  # building: write nothing
    if config.local_only:
        return _record_locally(home, bodies, endpoint)
    is_offline = offline()
    nowhere = [DROPPED_OFFLINE if is_offline else None] * len(bodies)
    if home is None or sys.platform == "win32":
        return nowhere
    try:
        names[:] = _outbox.append_many(home, endpoint, bodies)
    except OSError:
        return nowhere
    written = [name for name in names if name is not None]
    if listed is not None:
        listed.extend(written)
    told = on_written if on_written is not None else _ignore
    told(len(written))
    done = in_outbox if in_outbox is not None else _nothing
    taken_back: set[str] = set()
    if is_offline or not written or _turned_off():  # (the caller takes
        done()  # back what `disable()` found written: start nothing for them)
        outcome = QUEUED_OFFLINE if is_offline else QUEUED
    else:
        try:
            outcome, taken_back = _start_delivery(home, endpoint, written, done, told)
        except OSError:  # the events are in the outbox: a later host starts the uploader
            outcome = QUEUED
        if taken_back:
            told(len(written) - len(taken_back))  # claimed meanwhile: an uploader has them
    return [
        OVERSIZED if name is None else None if name in taken_back else outcome for name in names
    ]


def _record_locally(home: str | None, bodies: list[bytes], endpoint: str) -> list[str | None]:
    """Local-only mode: each event goes to the record, never the outbox. A `disable()`
    that came during the writes takes them back out (nothing stays after it)."""
    if home is None:
        return [NOT_RECORDED] * len(bodies)
    now = time.time()
    names = [
        _outbox.record(home, _outbox.Entry("", now, endpoint, body), RECORDED_LOCALLY)
        for body in bodies
    ]
    if _turned_off():
        _outbox.unrecord(home, [name for name in names if name is not None])
        return [DROPPED_DISABLED] * len(bodies)
    return [NOT_RECORDED if name is None else RECORDED_LOCALLY for name in names]


def _nothing() -> None:
    pass


def _turned_off() -> bool:
    """Whether `disable()` ran, maybe on another thread since the last look."""
    return _runtime.STATE.disabled_by is not None


def _ignore(_: int) -> None:
    pass


def _start_delivery(
    home: str,
    endpoint: str,
    names: list[str],
    done: Callable[[], None],
    written: Callable[[int], None] = _ignore,
) -> tuple[str, set[str]]:
    """Find or start the uploader for the events ``names``: the outcome, and the names
    taken back out of the outbox (no uploader can start here: the caller delivers those
    in-process). ``done`` is called as soon as the events are in an uploader's reach
    (one runs, or its start has forked): exit waits for that, not for its start-up."""
    with _outbox.opened(home) as (telemetry, outbox):
        until = backing_off(telemetry, endpoint)
        if until is not None:  # the uploader that met the failure waits it out, if any
            done()
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(until))
            return QUEUED_BACKOFF.format(when), set()
        forked: list[bool] = []

        def started() -> None:
            forked.append(True)
            done()

        if ensure_uploader(telemetry, home, started=started):
            done()
            return QUEUED, set()
        if forked or _runtime.STATE.exiting:  # exit may have gone on: leave them there
            return QUEUED, set()
        # No uploader here: take them back; one an uploader took already stays its own.
        written(0)  # before any is gone: exit must not count them as waiting there
        return QUEUED, {name for name in names if _outbox.unlink(outbox, name)}


def retract(
    home: str | None,
    names: list[str],
    record_as: str | None = None,
    in_flight: list[str] | None = None,
) -> list[str]:
    """Take this process's own events back out of the outbox (an opt-out, or local-only
    mode, chosen after they were handed over); the names taken back. Never raises.

    An event an uploader has claimed is taken back too (its name goes to
    ``in_flight``): a send already under way cannot be stopped, but the uploader then
    finds its claim gone, so it neither records nor retries it (one that failed would
    be sent again after a back-off otherwise). An uploader may release or claim an
    event between two looks: each is looked for up to `_RETRACT_LOOKS` times. With
    ``record_as``, each event taken back is kept in the record with that outcome
    (local-only mode still records); one taken from an uploader is recorded as
    `MAYBE_SENT`, for it may have reached the endpoint."""
    taken: list[str] = []
    if home is None or not names:
        return taken
    batch = list(names)  # the sender may append meanwhile: only these are dealt with
    try:
        with _outbox.opened(home) as (_, outbox):

            def take_back(name: str, source: str, outcome: str | None) -> bool:
                """Take ``source`` (``name`` itself, or its claim) and record it with
                ``outcome`` (none: an opt-out keeps nothing); whether it was there."""
                was_there, data = _outbox.take(outbox, source, _outbox.MAX_ENTRY)
                if not was_there:
                    return False
                taken.append(name)
                if outcome is not None and (entry := _outbox.decode(name, data)) is not None:
                    _outbox.record(home, entry, outcome)
                return True

            maybe_sent = None if record_as is None else MAYBE_SENT
            pending = batch
            for _ in range(_RETRACT_LOOKS):
                missed = [name for name in pending if not take_back(name, name, record_as)]
                if not missed:
                    break
                claims = _outbox.claims(_outbox.names(outbox))  # one listing per look
                pending = []
                for name in missed:
                    claimed = claims.get(name)
                    if claimed is None:
                        # Released meanwhile (a listing of a changing folder may show
                        # neither name): one more try, else sent or trimmed: gone.
                        take_back(name, name, record_as)
                    elif take_back(name, claimed, maybe_sent):
                        if in_flight is not None:
                            in_flight.append(name)
                    else:  # released or finished meanwhile: look again
                        pending.append(name)
    except Exception:
        pass
    for name in batch:
        with contextlib.suppress(ValueError):
            names.remove(name)
    return taken


def await_delivery(
    home: str | None, pending: list[tuple[str, bytes]], timeout: float, endpoint: str
) -> bool:
    """Wait (polling, at most ``timeout``) until the uploader is done with ``pending``
    (outbox names and bodies this process handed over to ``endpoint``); True if each
    was delivered.

    For `flush` only: exit never waits for the network. Events that wait for a later
    attempt (offline, the endpoint backed off, or each was tried and failed) end the
    wait: they are not delivered.
    """
    if not pending:
        return True
    if home is None:
        return False
    deadline = time.monotonic() + max(0.0, timeout)
    idle_since: float | None = None
    failed_looked = time.monotonic()
    pause = _POLL
    seen: set[str] | None = None
    try:
        while True:
            with _outbox.opened(home) as (telemetry, outbox):
                present = _outbox.names(outbox)
                running = uploader_running(telemetry)
                # Where locks cannot tell (some NFS mounts), a changing outbox can.
                working = (
                    running is True or _starting(telemetry) or (running is None and present != seen)
                )
                seen = present
                out_of_reach = backing_off(telemetry, endpoint) is not None
            left = [
                (name, body)
                for name, body in pending
                if name in present or any(n.startswith(f"{name}.claim-") for n in present)
            ]
            if not left:
                break
            now = time.monotonic()
            idle_since = None if working else (now if idle_since is None else idle_since)
            # None being sent now (a claim is), and each failed once: they wait.
            failed = False
            if now - failed_looked >= _FAILED_EVERY:
                failed_looked = now
                failed = all(name in present for name, _ in left) and _all_failed(home, left)
            # Nobody is working on them, or they wait for a later attempt: not now.
            if (
                (idle_since is not None and now - idle_since >= _IDLE_FOR)
                or out_of_reach
                or failed
                or offline()
                or now >= deadline
            ):
                return False
            if idle_since is not None:
                pause = _POLL  # nothing at work: look again soon, and stop soon
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, _MAX_POLL)
        outcomes = {entry.body: entry.outcome or "" for entry in _outbox.records(home)}
        done = all(outcomes.get(body, "").startswith("delivered") for _, body in pending)
    except Exception:
        return False
    for item in [item for item in pending if item[0] not in present]:
        with contextlib.suppress(ValueError):
            pending.remove(item)  # only those this call saw done; later ones stay
    return done


def _all_failed(home: str, left: list[tuple[str, bytes]]) -> bool:
    """Whether the record shows a failed attempt for each event in ``left`` (they now
    wait, in the outbox, for the uploader's next attempt)."""
    recent = _outbox.records(home, limit=len(left) + 64)
    failed = {entry.body for entry in recent if not (entry.outcome or "").startswith("delivered")}
    return all(body in failed for _, body in left)
