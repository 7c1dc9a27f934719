"""The CPU time of a whole process that sends one event: all threads, start to exit.

Optional argument PRELOAD: comma-separated modules imported first, as a host that
already imports them would (`benchmarks.run.HOST_STDLIB`). Prints
``time.process_time()`` from the last exit handler, after telemetry's own (exit
handlers run last registered first): what a program that calls a tracked function
and ends pays, without a `flush` (which waits for the uploader, polling). Run with
telemetry on and off.
"""

from __future__ import annotations

import atexit
import sys
import time

atexit.register(lambda: print(time.process_time()))  # runs after telemetry's exit

for module in sys.argv[1].split(",") if len(sys.argv) > 1 else ():
    __import__(module)  # the host's own imports, before ours

import flwr_datasets_telemetry as t  # noqa: E402  (after the host's imports)

t.event("once")
