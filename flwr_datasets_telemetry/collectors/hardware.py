"""Collector ``hardware``: CPU count and memory, plus CPU facts from py-cpuinfo.

Lands in ``context.hw``. py-cpuinfo is slow (about a second), runs subprocesses even
on import and has hung on some systems, so it never runs in this process: a detached
`_cpuinfo_probe` worker runs it (see `_spawn`: isolated from the working folder, at
idle priority, never a child the host's ``os.wait()`` can see), at most once per
process. Its facts are cached per machine and boot in
``<home>/telemetry/hardware.json``, written by the probe itself. An exclusive
``flock`` on ``hardware.lock``, handed to the probe and held until it ends, makes the
first process on a machine the only one to start a probe; the others wait for the
cache, and everyone stops waiting once the lock is free again (the probe has ended,
answer or not) — a hundred workers start one cpuinfo, not a hundred.

A warm cache is always read, even during interpreter exit; only the *waiting* stops
when exit begins (a short program still starts the probe, for the next one). Without
a ``home`` (disabled with logging on, or no home folder) nothing is started and the
event carries the standard-library facts only; so it does whenever anything fails.
A preview (``dry_run``) reads the cache and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import zlib
from typing import TYPE_CHECKING, Any, Final

from .. import _files, _machine, _runtime
from ..hookspecs import hookimpl
from ._cpuinfo_probe import CPUINFO_TIMEOUT

if TYPE_CHECKING:
    from pathlib import Path

if sys.platform != "win32":
    import fcntl  # imported here, not in the sender's first event: see `_runtime`

#: How long the sender waits for CPU facts (its own probe's or another process's).
WAIT: Final = CPUINFO_TIMEOUT + 1.0
POLL: Final = 0.05
#: A cache file is a few hundred bytes; anything bigger is not ours to parse.
MAX_CACHE_BYTES: Final = 4096
PROBE: Final = "flwr_datasets_telemetry.collectors._cpuinfo_probe"
_SPAWN: Final = "flwr_datasets_telemetry._spawn"
_CPU_KEYS: Final = ("cpu_brand", "cpu_arch", "cpu_bits", "cpu_hz_advertised")

#: In-process memory: survives ``os.fork``, so children never ask again.
_memory: dict[str, dict[str, Any]] = {}


def basic_facts() -> dict[str, Any]:
    """What the standard library knows at no cost."""
    facts: dict[str, Any] = {"cpu_count": os.cpu_count()}
    with contextlib.suppress(AttributeError, ValueError, OSError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        facts["memory_gib"] = round(total / 2**30)
    return facts


def machine_key() -> str:
    """Identifies this machine and boot in the cache, hashed: never sent."""
    boot = ""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/sys/kernel/random/boot_id", "rb") as file,  # the kernel's, not ours
    ):
        boot = file.read(64).decode().strip()
    system = _machine.uname()
    raw = "|".join((system.node, system.machine, str(os.cpu_count()), boot)).encode()
    # Two checksums, not `hashlib` (4 ms to import in the host): a cache key, kept
    # locally; the random boot id in it is what no one can guess.
    return f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}"


def read_cache(path: Path, key: str) -> dict[str, Any] | None:
    """The cached CPU facts for machine ``key``; ``None`` if absent, foreign or corrupt."""
    raw = _files.read_or_none(path, MAX_CACHE_BYTES)
    try:
        cached = _files.parse_json(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(cached, dict) or cached.get("machine") != key:
        return None
    facts = cached.get("facts")
    return {k: facts.get(k) for k in _CPU_KEYS} if isinstance(facts, dict) else None


#: `_lock` answers: we hold it (with an fd), a probe holds it, no lock is possible here
#: (no ``flock``: every process may start its own probe), or something not ours is in
#: its place (then no probe at all).
MINE, BUSY, UNLOCKED, UNUSABLE = "mine", "busy", "unlocked", "unusable"


def _lock(path: Path) -> tuple[str, int | None]:
    """The machine lock's state, and our fd when it is `MINE`."""
    if sys.platform == "win32":
        return UNLOCKED, None
    try:
        fd = _files.open_lock(path)
    except OSError:  # a FIFO, a symlink, a folder in its place
        return UNUSABLE, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return BUSY, None
    except OSError:  # ENOLCK, EOPNOTSUPP: a file system without locks
        os.close(fd)
        return UNLOCKED, None
    return MINE, fd


def _wait_for_cache(cache: Path, lock: Path, key: str) -> dict[str, Any] | None:
    """Poll the cache until it answers, the probe ends, time runs out or exit begins."""
    from .. import _spawn  # imported by `_probe`

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not _runtime.STATE.exiting:
        time.sleep(POLL)
        _spawn.reap()
        facts = read_cache(cache, key)
        if facts is not None:
            return facts
        state, fd = _lock(lock)
        if fd is not None:
            os.close(fd)
        if state == MINE:  # the probe has ended: its answer, or none
            return read_cache(cache, key)
    return None


def cpu_facts(home: Path | None, *, dry_run: bool = False) -> dict[str, Any] | None:
    """CPU facts, from memory, the machine cache, or one probe; waits at most `WAIT`."""
    if "cpu" in _memory:
        return _memory["cpu"] or None
    if home is None:
        return None  # no cache allowed: a probe per process would cost a second each
    key = machine_key()
    facts = read_cache(home / "telemetry" / "hardware.json", key)  # even during exit
    if dry_run:
        return facts  # a preview reads; it starts, creates and remembers nothing
    if facts is None:
        facts = _probe(home, key)
    _memory["cpu"] = facts or {}  # asked at most once per process, answer or not
    return facts


def _probe(home: Path, key: str) -> dict[str, Any] | None:
    """Start the machine's probe unless one runs, then wait for the cache."""
    folder = _files.make_folder(home, "telemetry")
    if folder is None:
        return None
    cache, lock = folder / "hardware.json", folder / "hardware.lock"
    _runtime.import_guarded(_SPAWN)  # with `subprocess`: only on a cold cache
    from .. import _spawn

    deadline = time.monotonic() + WAIT
    while _spawn.host_is_waiting():  # its os.wait() would take our intermediate
        if _runtime.STATE.exiting or time.monotonic() >= deadline:
            return read_cache(cache, key)
        time.sleep(POLL)
    state, fd = _lock(lock)
    try:
        if state == UNUSABLE:
            return None
        if state != BUSY:
            facts = read_cache(cache, key)  # a probe may have finished since we looked
            if facts is not None:
                return facts
            arguments = [os.path.abspath(cache), key]
            if not _spawn.start_detached(PROBE, arguments, pass_fds=() if fd is None else (fd,)):
                return None
    finally:
        if fd is not None:
            os.close(fd)  # from now on the probe alone holds the lock
    return _wait_for_cache(cache, lock, key)


@hookimpl
def telemetry_collect(home: Path | None, dry_run: bool) -> dict[str, Any]:
    facts = basic_facts()
    facts.update(cpu_facts(home, dry_run=dry_run) or {})
    return facts
