"""What `flush` costs the host that calls it: one event, then ``flush(10)``.

Prints JSON: the wall time and the CPU time of the whole process (all threads) spent
in the call, and whether it returned True. The flush builds the event, hands it to
the outbox, starts an uploader (the home holds none) and waits until that uploader
has delivered it: the waiting is the part to keep cheap, as the uploader's start-up
is about a second of an idle-priority child's time, not the host's.
"""

from __future__ import annotations

import json
import time

import flwr_datasets_telemetry as t

t.event("flush")
wall, cpu = time.perf_counter(), time.process_time()
delivered = t.flush(10)
print(
    json.dumps(
        {
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "delivered": delivered,
        }
    )
)
