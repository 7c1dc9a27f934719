"""The hardware collector: py-cpuinfo in a bounded child, once per machine, cached."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path
from typing import Any

from flwr_datasets_telemetry.collectors import hardware

from .helpers import REPO, run_python

FAKE = str(REPO / "tests" / "fake_modules")

COLLECT = """
import json, time
from pathlib import Path
from flwr_datasets_telemetry.collectors import hardware
home = {home!r}
start = time.monotonic()
facts = hardware.telemetry_collect(home=None if home is None else Path(home))
print(json.dumps({{"facts": facts, "seconds": time.monotonic() - start}}))
"""


def collect(home: Path | None, mode: str = "") -> dict[str, Any]:
    run = run_python(
        COLLECT.format(home=None if home is None else str(home)),
        {"PYTHONPATH": FAKE, "FAKE_CPUINFO": mode},
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_basic_facts_need_nothing_but_the_standard_library() -> None:
    facts = hardware.basic_facts()
    assert isinstance(facts["cpu_count"], int)
    assert facts["memory_gib"] >= 1


def test_the_real_py_cpuinfo_answers_through_the_probe(home: Path) -> None:
    run = run_python(COLLECT.format(home=str(home)))
    facts = json.loads(run.stdout)["facts"]
    assert set(facts) == {
        "cpu_count",
        "memory_gib",
        "cpu_brand",
        "cpu_arch",
        "cpu_bits",
        "cpu_hz_advertised",
    }
    assert isinstance(facts["cpu_brand"], str)
    assert facts["cpu_bits"] in (32, 64)


def test_the_second_process_reads_the_machine_cache(home: Path, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    first = collect(home, f"count:{counter}")
    assert first["facts"]["cpu_brand"] == "Fake CPU"
    second = collect(home, f"count:{counter}")
    assert second["facts"] == first["facts"]
    assert counter.read_text() == "run\n"
    cached = json.loads((home / "telemetry" / "hardware.json").read_text())
    assert cached["machine"] == hardware.machine_key()


def test_processes_starting_together_run_cpuinfo_once(home: Path, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: collect(home, f"count:{counter}"), range(8)))
    assert {r["facts"]["cpu_brand"] for r in results} == {"Fake CPU"}
    assert counter.read_text() == "run\n"


def test_a_cache_from_another_machine_or_boot_is_not_trusted(home: Path) -> None:
    (home / "telemetry").mkdir(parents=True)
    (home / "telemetry" / "hardware.json").write_text(
        json.dumps({"machine": "elsewhere", "facts": {"cpu_brand": "Other CPU"}})
    )
    assert collect(home)["facts"]["cpu_brand"] != "Other CPU"


def test_a_failing_cpuinfo_leaves_the_standard_library_facts(home: Path) -> None:
    facts = collect(home, "fail")["facts"]
    assert set(facts) == {"cpu_count", "memory_gib"}


def test_disabled_telemetry_caches_nothing(home: Path) -> None:
    facts = collect(None)["facts"]
    assert "cpu_brand" in facts
    assert not home.exists()
