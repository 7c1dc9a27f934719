"""The CPU time of a whole process that sends one event: all threads, start to end.

No arguments; prints ``time.process_time()``. Run with telemetry on and off.
"""

from __future__ import annotations

import time

import flwr_datasets_telemetry as t

t.event("once")
t.flush(10)
print(time.process_time())
