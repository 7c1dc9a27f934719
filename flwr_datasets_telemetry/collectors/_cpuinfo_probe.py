"""Detached worker: run py-cpuinfo with a time bound and cache its few facts.

Started by the ``hardware`` collector through `_spawn` (isolated from the working
folder, idle priority, out of the host's sight) with ``CACHE KEY`` as arguments. It
inherits the machine lock's descriptor and holds the lock until it ends, so waiting
processes know both that a probe runs and when it has finished. py-cpuinfo runs in a
child of its own, isolated the same way, killed after `CPUINFO_TIMEOUT`. The answer is
published atomically in the cache, where the host (or the next process on this
machine, if the host has exited) reads it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pathlib import Path

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
    from .._files import publish

    publish(path, json.dumps({"machine": key, "facts": facts}).encode(), replace=True)


def main(argv: list[str]) -> int:
    from .._files import parse_json
    from .._spawn import run_isolated

    output = run_isolated("cpuinfo", ["--json"], CPUINFO_TIMEOUT)
    try:
        info = parse_json(output) if output is not None else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return 1
    facts = pick(info)
    if len(argv) == 2:  # noqa: PLR2004 - CACHE KEY
        from pathlib import Path  # here: `hardware` imports this module in every host

        cache, key = argv
        with contextlib.suppress(OSError):
            write_cache(Path(cache), key, facts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
