"""A process that emits EVENTS distinct events and ends: what exit costs it.

Argument: EVENTS. Timed from outside against a bare interpreter start.
"""

from __future__ import annotations

import sys

import flwr_datasets_telemetry as t

for n in range(int(sys.argv[1])):
    t.event(f"kind{n}")
