"""``python -m cpuinfo --json`` that hangs, fails, counts its runs or waits (FAKE_CPUINFO).

``gate:FOLDER`` writes ``FOLDER/started`` (its pid, parent pid, scheduling policy and
niceness, as JSON), then answers only once ``FOLDER/go`` exists: tests use it to look
at the probe while it runs.
"""

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
if mode.startswith("gate:"):
    folder = mode[len("gate:") :]
    facts = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "policy": os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None,
        "nice": os.nice(0),
        "cwd": os.getcwd(),
        "isolated": sys.flags.isolated,
        "sid": os.getsid(0),
    }
    with open(os.path.join(folder, "started.tmp"), "w") as started:
        json.dump(facts, started)
    os.replace(os.path.join(folder, "started.tmp"), os.path.join(folder, "started"))
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < deadline:
        time.sleep(0.01)
print(
    json.dumps(
        {"brand_raw": "Fake CPU", "arch": "X86_64", "bits": 64, "hz_advertised": [1000000000, 0]}
    )
)
