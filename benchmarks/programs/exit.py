"""A process that emits EVENTS distinct events and ends: what exit costs it.

Arguments: EVENTS, and optionally PRELOAD: comma-separated modules imported first, as
a host that already imports them would (`benchmarks.run.HOST_STDLIB`). Timed from
outside against a bare interpreter start (that imports PRELOAD too, if given).
"""

from __future__ import annotations

import sys

for module in sys.argv[2].split(",") if len(sys.argv) > 2 else ():
    __import__(module)  # the host's own imports, before ours

import flwr_datasets_telemetry as t  # noqa: E402  (after the host's imports)

for n in range(int(sys.argv[1])):
    t.event(f"kind{n}")
