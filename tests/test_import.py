"""`import flwr_datasets_telemetry` is free of side effects and heavy imports."""

from __future__ import annotations

import json

from .helpers import run_python
from .servers import Endpoint

PROBE = """
import json, os, sys
before = set(sys.modules)
import flwr_datasets_telemetry
print(json.dumps({
    "new": sorted(set(sys.modules) - before),
    "threads": len(os.listdir("/proc/self/task")),
}))
"""
#: Exactly what `import flwr_datasets_telemetry` may load (see its docstring).
ALLOWED = {
    "__future__",  # loaded at start-up from 3.11 on; by our first module on 3.10
    "atexit",
    "flwr_datasets_telemetry",
    "flwr_datasets_telemetry._call",
    "flwr_datasets_telemetry._choice",
    "flwr_datasets_telemetry._config",
    "flwr_datasets_telemetry._lifecycle",
    "flwr_datasets_telemetry._runtime",
    "flwr_datasets_telemetry._track",
    "flwr_datasets_telemetry._version",
}


def test_import_loads_no_heavy_module_and_starts_no_thread() -> None:
    for env in ({}, {"FLWR_TELEMETRY_LOGGING": "1"}, {"FLWR_TELEMETRY_ENABLED": "0"}):
        run = run_python(PROBE, env)
        assert run.returncode == 0, run.stderr
        facts = json.loads(run.stdout)
        assert set(facts["new"]) <= ALLOWED, set(facts["new"]) - ALLOWED
        assert facts["threads"] == 1
        assert run.stderr == ""


def test_public_names() -> None:
    run = run_python(
        "import flwr_datasets_telemetry as t; print(sorted(t.__all__));"
        "print(all(getattr(t, n) is not None for n in t.__all__))"
    )
    names, resolved = run.stdout.splitlines()
    assert json.loads(names.replace("'", '"')) == [
        "ObjectState",
        "Status",
        "TrackedCall",
        "__version__",
        "disable",
        "event",
        "flush",
        "hookimpl",
        "status",
        "track",
    ]
    assert resolved == "True"


EVENT_PATH = """
import json, sys
import flwr_datasets_telemetry as t
t.event("once")
delivered = t.flush(60)
kept_out = ("logging", "hashlib", "dataclasses", "requests", "cpuinfo", "importlib.metadata",
            "email", "zipfile", "csv", "socket", "tempfile", "datetime", "platform")
print(json.dumps({"delivered": delivered, "loaded": [m for m in kept_out if m in sys.modules]}))
"""


def test_the_event_path_leaves_out_what_a_host_without_logging_never_needs(
    endpoint: Endpoint,
) -> None:
    """The modules the package docstring says the first event does without, in every
    process after the home's first (which writes the source id: `tempfile`)."""
    for _ in range(2):
        run = run_python(EVENT_PATH, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url})
        assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"delivered": True, "loaded": []}
    assert len(endpoint.bodies) == 2
