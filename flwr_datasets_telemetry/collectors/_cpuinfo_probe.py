"""Child process: run py-cpuinfo with a time bound, cache and print its few facts.

Started by the ``hardware`` collector as ``python -m
flwr_datasets_telemetry.collectors._cpuinfo_probe [CACHE KEY]``. It writes the cache
itself, so a host that exits before the answer arrives still spares the next process
on this machine the second that py-cpuinfo costs. It inherits the machine lock's file
descriptor: the lock is held until this process ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

CPUINFO_TIMEOUT: Final = 5.0


def pick(info: dict[str, Any]) -> dict[str, Any]:
    """The facts we report, from py-cpuinfo's answer."""
    hz = info.get("hz_advertised")
    return {
        "cpu_brand": info.get("brand_raw"),
        "cpu_arch": info.get("arch"),
        "cpu_bits": info.get("bits"),
        "cpu_hz_advertised": hz[0] if isinstance(hz, list) and hz else None,
    }


def write_cache(path: Path, key: str, facts: dict[str, Any]) -> None:
    """Atomically replace ``path`` with ``facts`` for machine ``key``."""
    fd, temp = tempfile.mkstemp(prefix=".hardware-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump({"machine": key, "facts": facts}, file)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def main(argv: list[str]) -> int:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cpuinfo", "--json"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=CPUINFO_TIMEOUT,
            check=True,
        )
        info = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return 1
    if not isinstance(info, dict):
        return 1
    facts = pick(info)
    if argv:
        cache, key = argv
        with contextlib.suppress(OSError):
            write_cache(Path(cache), key, facts)
    with contextlib.suppress(OSError):
        sys.stdout.write(json.dumps(facts))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
