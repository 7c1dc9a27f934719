"""CPU spent collecting hardware facts, this process and its children (the probe).

Argument: HOME, the folder that holds the cache (the first process fills it).
Prints seconds as JSON.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from flwr_datasets_telemetry.collectors import hardware


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


start = cpu()
hardware.telemetry_collect(home=Path(sys.argv[1]), dry_run=False)
print(json.dumps(cpu() - start))
