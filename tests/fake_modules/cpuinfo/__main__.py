"""``python -m cpuinfo --json`` that hangs, fails, or counts its runs (FAKE_CPUINFO)."""

import json
import os
import sys
import time

mode = os.environ.get("FAKE_CPUINFO", "")
if mode == "hang":
    time.sleep(3600)
if mode == "fail":
    sys.exit("Exception: unknown architecture")
if mode.startswith("count:"):
    with open(mode[len("count:") :], "a") as counter:
        counter.write("run\n")
    time.sleep(0.5)  # long enough for every waiting process to find the lock taken
print(
    json.dumps(
        {"brand_raw": "Fake CPU", "arch": "X86_64", "bits": 64, "hz_advertised": [1000000000, 0]}
    )
)
