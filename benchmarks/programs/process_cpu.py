"""The CPU time of a whole process that sends one event: all threads, start to end.

Optional argument PRELOAD: comma-separated modules imported first, as a host that
already imports them would (`benchmarks.run.HOST_STDLIB`). Prints
``time.process_time()``. Run with telemetry on and off.
"""

from __future__ import annotations

import sys
import time

for module in sys.argv[1].split(",") if len(sys.argv) > 1 else ():
    __import__(module)  # the host's own imports, before ours

import flwr_datasets_telemetry as t  # noqa: E402  (after the host's imports)

t.event("once")
t.flush(10)
print(time.process_time())
