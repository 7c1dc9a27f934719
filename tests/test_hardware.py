"""The hardware collector: py-cpuinfo in a detached idle probe, once per machine, cached."""

from __future__ import annotations

import concurrent.futures
import json
import re
from pathlib import Path
from typing import Any

from flwr_datasets_telemetry.collectors import hardware

from .helpers import REPO, run_python

FAKE = str(REPO / "tests" / "fake_modules")
CPU_KEYS = {"cpu_brand", "cpu_arch", "cpu_bits", "cpu_hz_advertised"}

COLLECT = """
import json, time
from pathlib import Path
from flwr_datasets_telemetry import _runtime
from flwr_datasets_telemetry.collectors import hardware
home = {home!r}
_runtime.STATE.exiting = {exiting!r}
start = time.monotonic()
facts = hardware.telemetry_collect(home=None if home is None else Path(home), dry_run={dry_run!r})
print(json.dumps({{"facts": facts, "seconds": time.monotonic() - start}}))
"""

#: A short program, as users write them: one tracked call, then the interpreter exits.
SHORT_PROGRAM = """
from flwr_datasets_telemetry import track
track("short")(lambda: None)()
"""


def collect(
    home: Path | None, mode: str = "", *, dry_run: bool = False, exiting: bool = False
) -> dict[str, Any]:
    code = COLLECT.format(
        home=None if home is None else str(home), dry_run=dry_run, exiting=exiting
    )
    run = run_python(code, {"PYTHONPATH": FAKE, "FAKE_CPUINFO": mode})
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def warm_cache(home: Path, brand: str = "Cached CPU") -> None:
    (home / "telemetry").mkdir(parents=True)
    facts = {"cpu_brand": brand, "cpu_arch": "X86_64", "cpu_bits": 64, "cpu_hz_advertised": 1}
    (home / "telemetry" / "hardware.json").write_text(
        json.dumps({"machine": hardware.machine_key(), "facts": facts})
    )


def logged_hw(stderr: str) -> list[dict[str, Any]]:
    found = re.findall(r"^flwr_datasets_telemetry: event \S+: (\{.*\})$", stderr, re.MULTILINE)
    return [json.loads(body)["context"]["hw"] for body in found]


def test_basic_facts_need_nothing_but_the_standard_library() -> None:
    facts = hardware.basic_facts()
    assert isinstance(facts["cpu_count"], int)
    assert facts["memory_gib"] >= 1


def test_the_real_py_cpuinfo_answers_through_the_probe(home: Path) -> None:
    code = COLLECT.format(home=str(home), dry_run=False, exiting=False)
    run = run_python(code)
    facts = json.loads(run.stdout)["facts"]
    assert set(facts) == {"cpu_count", "memory_gib", *CPU_KEYS}
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
    assert sorted(p.name for p in (home / "telemetry").iterdir()) == [
        "hardware.json",
        "hardware.lock",
    ]  # no temporary file left behind


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


def test_a_failing_cpuinfo_leaves_the_standard_library_facts_without_waiting(
    home: Path,
) -> None:
    result = collect(home, "fail")
    assert set(result["facts"]) == {"cpu_count", "memory_gib"}
    # The probe's end frees the machine lock: nobody waits the full WAIT for nothing.
    assert result["seconds"] < hardware.WAIT / 2


def test_without_a_home_nothing_is_started_or_cached(home: Path, tmp_path: Path) -> None:
    # Disabled with logging on (or no home folder): no file, no subprocess, no cpuinfo.
    counter = tmp_path / "runs"
    facts = collect(None, f"count:{counter}")["facts"]
    assert set(facts) == {"cpu_count", "memory_gib"}
    assert not counter.exists()
    assert not home.exists()


def test_a_preview_reads_the_warm_cache(home: Path, tmp_path: Path) -> None:
    warm_cache(home)
    before = sorted(p.name for p in (home / "telemetry").iterdir())
    result = collect(home, f"count:{tmp_path / 'runs'}", dry_run=True)
    assert result["facts"]["cpu_brand"] == "Cached CPU"
    assert result["seconds"] < 0.3
    assert sorted(p.name for p in (home / "telemetry").iterdir()) == before  # no lock made


def test_a_preview_with_a_cold_cache_starts_and_creates_nothing(home: Path, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    result = collect(home, f"count:{counter}", dry_run=True)
    assert set(result["facts"]) == {"cpu_count", "memory_gib"}
    assert result["seconds"] < 0.3
    assert not home.exists()
    assert not counter.exists()


def test_a_warm_cache_is_read_even_once_exit_has_begun(home: Path) -> None:
    warm_cache(home)
    assert collect(home, "fail", exiting=True)["facts"]["cpu_brand"] == "Cached CPU"


def test_a_short_program_sends_the_cached_cpu_facts(home: Path) -> None:
    warm_cache(home)
    run = run_python(SHORT_PROGRAM, {"FLWR_TELEMETRY_LOGGING": "1", "PYTHONPATH": FAKE})
    assert run.returncode == 0, run.stderr
    assert [hw["cpu_brand"] for hw in logged_hw(run.stderr)] == ["Cached CPU"], run.stderr


def test_a_short_program_still_warms_the_cache_for_the_next(home: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "go").touch()
    env = {"FLWR_TELEMETRY_LOGGING": "1", "PYTHONPATH": FAKE, "FAKE_CPUINFO": f"gate:{gate}"}
    first = run_python(SHORT_PROGRAM, env)
    assert first.returncode == 0, first.stderr
    # The detached probe outlives the short program; the cache appears a moment later.
    cache = home / "telemetry" / "hardware.json"
    assert _eventually(lambda: hardware.read_cache(cache, hardware.machine_key()) is not None)
    second = run_python(SHORT_PROGRAM, env)
    assert [hw.get("cpu_brand") for hw in logged_hw(second.stderr)] == ["Fake CPU"]


def _eventually(condition: Any, timeout: float = 20.0) -> bool:
    """Poll ``condition`` (a detached process's result has no other signal)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_a_cache_too_deeply_nested_to_parse_is_not_trusted(home: Path) -> None:
    cache = home / "telemetry" / "hardware.json"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"[" * 3000)  # json's parser raises RecursionError
    assert hardware.read_cache(cache, hardware.machine_key()) is None
