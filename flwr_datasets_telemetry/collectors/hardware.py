"""Collector ``hardware``: CPU count and memory, plus CPU facts from py-cpuinfo.

Lands in ``context.hw``. py-cpuinfo is slow (about a second), runs subprocesses even
on import and has hung on some systems, so it never runs in this process: the
`_cpuinfo_probe` child runs it, bounded, at most once per process. Its facts are
cached per machine and boot in ``<home>/telemetry/hardware.json``, written by the
probe itself. An exclusive ``flock`` on ``hardware.lock``, handed to the probe, makes
the first process on a machine the only one to start a probe; the others wait for its
answer — a hundred workers start one cpuinfo, not a hundred. Waiting stops as soon as
the interpreter starts to exit, and the event goes out with the standard-library
facts only; so it does whenever anything fails. Nothing is cached (and no lock file
created) while telemetry is disabled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from .. import _runtime
from ..hookspecs import hookimpl
from ._cpuinfo_probe import CPUINFO_TIMEOUT

if sys.platform != "win32":
    import fcntl  # imported here, not in the sender's first event: see `_runtime`

#: How long the sender waits for CPU facts (its own probe's or another process's).
WAIT: Final = CPUINFO_TIMEOUT + 1.0
POLL: Final = 0.05
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
    with contextlib.suppress(OSError):
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    raw = "|".join((platform.node(), platform.machine(), str(os.cpu_count()), boot))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def read_cache(path: Path, key: str) -> dict[str, Any] | None:
    try:
        with path.open("rb") as file:
            cached = json.loads(file.read(4096))
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("machine") != key:
        return None
    facts = cached.get("facts")
    return {k: facts.get(k) for k in _CPU_KEYS} if isinstance(facts, dict) else None


def _start_probe(arguments: list[str], lock_fd: int | None) -> subprocess.Popen[bytes] | None:
    executable = os.path.basename(sys.executable or "").lower()
    if not executable.startswith(("python", "pypy")):
        return None  # an embedded interpreter: sys.executable is not a Python to run
    module = "flwr_datasets_telemetry.collectors._cpuinfo_probe"
    try:
        return subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", module, *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=() if lock_fd is None else (lock_fd,),
        )
    except OSError:
        return None


def _try_lock(path: Path) -> tuple[bool, int | None]:
    """``(owned, fd)``: whether this process may start the probe, and the lock's fd."""
    if sys.platform == "win32":  # no flock: every process starts its own probe
        return True, None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return True, None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False, None
    return True, fd


def _probe_answer(probe: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    if probe.stdout is None:
        return None
    try:
        facts = json.loads(probe.stdout.read())
    except (OSError, ValueError):
        return None
    return {k: facts.get(k) for k in _CPU_KEYS} if isinstance(facts, dict) else None


def cpu_facts(home: Path | None) -> dict[str, Any] | None:
    """CPU facts, from memory, the machine cache, or one probe; waits at most `WAIT`."""
    if "cpu" in _memory:
        return _memory["cpu"] or None
    cache = lock = None
    key = machine_key()
    if home is not None:
        folder = home / "telemetry"
        cache, lock = folder / "hardware.json", folder / "hardware.lock"
        with contextlib.suppress(OSError):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    probe: subprocess.Popen[bytes] | None = None
    facts: dict[str, Any] | None = None
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not _runtime.exiting:
        if probe is not None:
            if probe.poll() is not None:  # our own probe: wait for it, and reap it
                facts = _probe_answer(probe)
                break
        else:
            facts = read_cache(cache, key) if cache is not None else None
            if facts is not None:
                break
            owned, fd = _try_lock(lock) if lock is not None else (True, None)
            if owned:
                arguments = [str(cache), key] if cache is not None else []
                probe = _start_probe(arguments, fd)
                if fd is not None:
                    os.close(fd)  # the probe holds the lock until it ends
                if probe is None:
                    break
        time.sleep(POLL)
    _memory["cpu"] = facts or {}  # asked at most once per process, answer or not
    return facts


@hookimpl
def telemetry_collect(home: Path | None) -> dict[str, Any]:
    facts = basic_facts()
    facts.update(cpu_facts(home) or {})
    return facts
