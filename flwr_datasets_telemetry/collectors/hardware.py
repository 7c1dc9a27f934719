"""Collector ``hardware``: CPU count and memory, plus CPU facts from py-cpuinfo.

Lands in ``context.hw``. py-cpuinfo is slow (about a second), runs subprocesses even
on import and has hung on some systems, so it never runs in this process: a child
``python -m cpuinfo --json`` is run at most once per process, killed after
`CPUINFO_TIMEOUT`. Its few facts are cached per machine (and boot) in
``<home>/telemetry/hardware.json``; an exclusive ``flock`` on a lock file beside it
makes the first process on a machine run the child while the others wait, briefly,
for its answer — a hundred workers start one cpuinfo, not a hundred. When no folder
may be written (telemetry disabled) nothing is cached; when anything fails the
standard-library facts still go out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Iterator

CPUINFO_TIMEOUT: Final = 5.0
#: How long a process waits for another one's cpuinfo answer.
LOCK_WAIT: Final = CPUINFO_TIMEOUT + 1.0
_CPU_KEYS: Final = ("cpu_brand", "cpu_arch", "cpu_bits", "cpu_hz_advertised")

#: In-process memory: survives ``os.fork``, so children never ask again.
_memory: dict[str, dict[str, Any]] = {}


def basic_facts() -> dict[str, Any]:
    """What the standard library knows at no cost."""
    facts: dict[str, Any] = {"cpu_count": os.cpu_count()}
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        facts["memory_gib"] = round(total / 2**30)
    except (AttributeError, ValueError, OSError):
        pass
    return facts


def machine_key() -> str:
    """Identifies this machine and boot in the cache, hashed: never sent."""
    boot = ""
    with contextlib.suppress(OSError):
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    raw = "|".join((platform.node(), platform.machine(), str(os.cpu_count()), boot))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _from_cpuinfo(info: dict[str, Any]) -> dict[str, Any]:
    hz = info.get("hz_advertised")
    return {
        "cpu_brand": info.get("brand_raw"),
        "cpu_arch": info.get("arch"),
        "cpu_bits": info.get("bits"),
        "cpu_hz_advertised": hz[0] if isinstance(hz, list) and hz else None,
    }


def run_cpuinfo(timeout: float = CPUINFO_TIMEOUT) -> dict[str, Any] | None:
    """CPU facts from a py-cpuinfo child process, or ``None`` (never raises)."""
    executable = os.path.basename(sys.executable or "").lower()
    if not executable.startswith(("python", "pypy")):
        return None  # an embedded interpreter: sys.executable is not a Python to run
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "cpuinfo", "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=os.name == "posix",
        )
    except OSError:
        return None
    try:
        output, _ = child.communicate(timeout=timeout)
        info = json.loads(output)
        return _from_cpuinfo(info) if isinstance(info, dict) else None
    except (subprocess.TimeoutExpired, ValueError):
        return None
    finally:
        if child.poll() is None:
            with contextlib.suppress(OSError):
                if os.name == "posix":
                    os.killpg(child.pid, signal.SIGKILL)
                else:
                    child.kill()
            child.wait()


def _read_cache(path: Path, key: str) -> dict[str, Any] | None:
    try:
        with path.open("rb") as file:
            cached = json.loads(file.read(4096))
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("machine") != key:
        return None
    facts = cached.get("facts")
    return {k: facts.get(k) for k in _CPU_KEYS} if isinstance(facts, dict) else None


def _write_cache(path: Path, key: str, facts: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        fd, temp = tempfile.mkstemp(prefix=".hardware-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as file:
                json.dump({"machine": key, "facts": facts}, file)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)


@contextlib.contextmanager
def _machine_lock(path: Path, deadline: float) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (polling until ``deadline``); yields success."""
    try:
        import fcntl
    except ImportError:  # Windows: every process runs its own child
        yield True
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield True
        return
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
                continue
            yield True
            return
    finally:
        os.close(fd)


def cpu_facts(home: Path | None) -> dict[str, Any] | None:
    """CPU facts, from memory, the machine cache, or one cpuinfo child."""
    if "cpu" in _memory:
        return _memory["cpu"]
    facts: dict[str, Any] | None = None
    if home is None:
        facts = run_cpuinfo()
    else:
        folder = home / "telemetry"
        cache, key = folder / "hardware.json", machine_key()
        facts = _read_cache(cache, key)
        if facts is None:
            with contextlib.suppress(OSError):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _machine_lock(folder / "hardware.lock", time.monotonic() + LOCK_WAIT) as owned:
                facts = _read_cache(cache, key)
                if facts is None and owned:
                    facts = run_cpuinfo()
                    if facts is not None:
                        _write_cache(cache, key, facts)
    _memory["cpu"] = facts or {}  # asked at most once per process, answer or not
    return facts


@hookimpl
def telemetry_collect(home: Path | None) -> dict[str, Any]:
    facts = basic_facts()
    facts.update(cpu_facts(home) or {})
    return facts
