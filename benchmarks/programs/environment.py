"""Import and first (uncached) call of the environment collector. No arguments.

Prints seconds as JSON.
"""

from __future__ import annotations

import json
import time

# pluggy, which the package loads before any collector: not part of what is timed
import flwr_datasets_telemetry.hookspecs  # noqa: F401

start = time.perf_counter()
from flwr_datasets_telemetry.collectors import environment  # noqa: E402  (what is timed)

environment.telemetry_collect()
print(json.dumps(time.perf_counter() - start))
