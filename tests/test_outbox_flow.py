"""Delivery out of the host, end to end: real hosts, the real uploader, loopback servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flwr_datasets_telemetry import _delivery

from .helpers import recorded_outcomes, run_python
from .servers import BlackHole, Endpoint
from .test_cli import cli

FAST = {"FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware"}
ONE = "import flwr_datasets_telemetry as t\nt.event('one')\n"


def test_the_host_never_imports_requests_and_exits_at_once(black_hole: BlackHole) -> None:
    code = ONE + "import sys, time\nt.flush(0)\nprint('requests' in sys.modules)\n"
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": black_hole.url, **FAST})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_log_shows_what_waits_and_what_was_delivered_byte_for_byte(
    endpoint: Endpoint, home: Path
) -> None:
    offline = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "HF_HUB_OFFLINE": "1", **FAST}
    run = run_python(ONE + "print(t.flush(5))\n", {**offline, "FLWR_TELEMETRY_LOGGING": "1"})
    assert "event one: queued: offline" in run.stderr
    assert run.stdout == "False\n"  # waiting in the outbox is not delivered
    assert endpoint.connections == 0  # offline: no network attempt from that process
    waiting = json.loads(cli("log", "--json").stdout)["waiting"]
    assert len(waiting) == 1
    body = waiting[0]["body"]
    assert json.loads(body)["event_type"] == "one"
    assert json.loads(cli("status", "--json").stdout)["waiting"] == 1
    online = run_python(
        ONE.replace("'one'", "'two'") + "assert t.flush(10)\n",
        {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST},
    )
    assert online.returncode == 0, online.stderr
    assert endpoint.wait_for(2)
    log = json.loads(cli("log", "--json").stdout)
    assert log["waiting"] == []
    assert {r["outcome"] for r in log["recorded"]} == {"delivered by 'http'"}
    assert body.encode() in endpoint.bodies  # exactly the bytes that `log` showed
    assert "delivered by 'http'" in cli("log").stdout


def test_local_only_records_and_never_uploads(endpoint: Endpoint, home: Path) -> None:
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_ENABLED": "local", **FAST}
    run = run_python(ONE + "print(t.flush(5))\n", env)
    assert run.returncode == 0, run.stderr
    assert endpoint.connections == 0
    assert "recorded locally" in recorded_outcomes(home)
    assert not list((home / "telemetry" / "outbox").glob("*.ev"))


def test_forget_deletes_the_id_the_outbox_and_the_record(endpoint: Endpoint, home: Path) -> None:
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "HF_DATASETS_OFFLINE": "1", **FAST}
    run_python(ONE, env)
    assert (home / "source").exists()
    done = cli("forget", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["deleted"] is True
    assert data["events_deleted"]["waiting"] == 1
    assert not (home / "source").exists()
    assert json.loads(cli("log", "--json").stdout)["waiting"] == []


def test_an_opt_out_after_hand_over_takes_the_events_back(endpoint: Endpoint, home: Path) -> None:
    code = (
        ONE
        + "t.flush(5)\nimport os\nt.disable()\nprint(len(os.listdir(os.path.join(os.environ['FLWR_HOME'], 'telemetry', 'outbox'))))\n"
    )
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "HF_HUB_OFFLINE": "1", **FAST})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0"
    assert endpoint.connections == 0


def test_a_pool_worker_s_built_event_survives_its_sigterm(endpoint: Endpoint) -> None:
    code = """
import multiprocessing as mp
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _runtime

@t.track("work")
def load(split):
    return split

def work(split):
    load(split)
    _runtime.STATE.current.flush(10, delivered=False)  # built and in the outbox...
    return split

if __name__ == "__main__":
    pool = mp.get_context("fork").Pool(2)
    assert sorted(pool.map(work, ["train", "test"])) == ["test", "train"]
    pool.terminate()     # ...then the workers are killed with SIGTERM
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST}, as_file=True)
    assert run.returncode == 0, run.stderr
    assert endpoint.wait_for(2)
    assert sorted(p["event_details"]["split"] for p in endpoint.payloads()) == ["test", "train"]


def test_disable_by_command_discards_what_waits(endpoint: Endpoint, home: Path) -> None:
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "HF_HUB_OFFLINE": "1", **FAST}
    run_python(ONE, env)
    assert len(json.loads(cli("log", "--json").stdout)["waiting"]) == 1
    done = cli("disable", "--json")
    assert json.loads(done.stdout)["discarded"] == 1
    assert json.loads(cli("log", "--json").stdout)["waiting"] == []


SLOW_UPLOADER_START = """
import subprocess, time
from flwr_datasets_telemetry import _spawn
def slow_wait(self, timeout=None):
    time.sleep(5)  # as if the uploader's first process took that long to start
    return subprocess.Popen.wait(self, timeout)
_spawn._Child.wait = slow_wait
"""


def test_exit_waits_for_the_uploader_s_fork_not_its_start_up(endpoint: Endpoint) -> None:
    """Once the event is in the outbox and the uploader's start has forked, exit goes
    on; the uploader starts and delivers without the host."""
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_EXIT_TIMEOUT": "20", **FAST}
    run = run_python(SLOW_UPLOADER_START + ONE, env)
    assert run.returncode == 0, run.stderr
    assert run.seconds < 4  # the 5 s start-up was not waited for
    assert endpoint.wait_for(1, timeout=30)
    assert [p["event_type"] for p in endpoint.payloads()] == ["one"]


def test_a_burst_at_exit_is_handed_over_whole(endpoint: Endpoint, home: Path) -> None:
    """150 distinct events, then exit at once: the sender takes them in batches."""
    burst = "import flwr_datasets_telemetry as t\nfor n in range(150):\n    t.event(f'b{n}')\n"
    run = run_python(burst, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST})
    assert run.returncode == 0, run.stderr
    assert endpoint.wait_for(150, timeout=60)
    assert sorted(p["event_type"] for p in endpoint.payloads()) == sorted(
        f"b{n}" for n in range(150)
    )
    assert json.loads(cli("log", "--json").stdout)["waiting"] == []


def test_flush_says_false_when_an_event_is_dropped(tmp_path: Path) -> None:
    """Offline, with no outbox to wait in: dropped, and `flush` says so."""
    env = {"FLWR_HOME": str(tmp_path / "missing" / "home"), "HF_HUB_OFFLINE": "1", **FAST}
    run = run_python(ONE + "print(t.flush(5))\n", {**env, "FLWR_TELEMETRY_LOGGING": "1"})
    assert run.returncode == 0, run.stderr
    assert "event one: dropped: offline" in run.stderr
    assert run.stdout == "False\n"


_CHOOSE_LOCAL = {
    "variable": "os.environ['FLWR_TELEMETRY_ENABLED'] = 'local'\n",
    "setting": "from flwr_datasets_telemetry import _choice\n"
    "_choice.write_setting(os.environ['FLWR_HOME'], 'local')\n",
}


@pytest.mark.parametrize("how", sorted(_CHOOSE_LOCAL))
def test_local_only_chosen_after_start_uploads_nothing_more(
    endpoint: Endpoint, home: Path, how: str
) -> None:
    """``FLWR_TELEMETRY_ENABLED=local`` set in a running process, or the setting written
    meanwhile: later events are recorded and never reach the outbox (from which any
    uploader of the home would send them); the one before was sent as usual."""
    code = (
        ONE
        + "assert t.flush(10)\nimport os\n"
        + _CHOOSE_LOCAL[how]
        + "t.event('two')\nt.flush(5)\n"
    )
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_LOGGING": "1", **FAST}
    run = run_python(code, env)
    assert run.returncode == 0, run.stderr
    assert "telemetry set to local-only by " in run.stderr
    assert not list((home / "telemetry" / "outbox").glob("*.ev"))  # nothing left to send
    log = json.loads(cli("log", "--json").stdout)
    outcomes = {json.loads(r["body"])["event_type"]: r["outcome"] for r in log["recorded"]}
    assert outcomes == {
        "one": "delivered by 'http'",
        "two": "recorded locally (local-only mode), never uploaded",
    }
    assert [json.loads(body)["event_type"] for body in endpoint.bodies] == ["one"]


def test_a_late_local_only_choice_records_what_was_waiting_and_flush_stops_waiting_for_it(
    endpoint: Endpoint, home: Path
) -> None:
    """Offline, the first event waits in the outbox; local-only mode chosen then takes it
    back into the record (local-only mode records every event) instead of losing it."""
    code = (
        ONE
        + "print(t.flush(5))\nimport os\nos.environ['FLWR_TELEMETRY_ENABLED'] = 'local'\n"
        + "t.event('two')\nprint(t.flush(5))\nprint(t.flush(5))\n"
    )
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "HF_HUB_OFFLINE": "1", **FAST}
    run = run_python(code, env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "True", "True"]  # waiting, then nothing to wait for
    log = json.loads(cli("log", "--json").stdout)
    assert log["waiting"] == []
    outcomes = {json.loads(r["body"])["event_type"]: r["outcome"] for r in log["recorded"]}
    assert outcomes == dict.fromkeys(("one", "two"), _delivery.RECORDED_LOCALLY)
    assert endpoint.connections == 0


def test_local_only_mode_chosen_while_events_are_handed_over_takes_them_back(
    endpoint: Endpoint, home: Path
) -> None:
    """The switch lands between the sender's look at the mode and its write (here made
    certain by flipping it right after the write): the events still end in the record."""
    code = """
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _delivery
write = _delivery._hand_over
def racing(config, *args, **kwargs):
    outcomes = write(config, *args, **kwargs)
    config.local_only = True  # what `_go_local` does, from another thread, meanwhile
    return outcomes
_delivery._hand_over = racing
t.event('one')
t.flush(5)
"""
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "HF_HUB_OFFLINE": "1", **FAST}
    run = run_python(code, env)
    assert run.returncode == 0, run.stderr
    assert json.loads(cli("log", "--json").stdout)["waiting"] == []
    assert recorded_outcomes(home) == _delivery.RECORDED_LOCALLY  # one record, that one


DISABLE_DURING_HAND_OVER = """
import os, threading
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _delivery, _outbox
real = _outbox.{step}
def racing(*args, **kwargs):
    thread = threading.Thread(target=t.disable)  # as a host thread would, meanwhile
    thread.start()
    thread.join()
    return real(*args, **kwargs)
_outbox.{step} = racing
t.event('one')
t.flush(5)
folder = os.path.join(os.environ["FLWR_HOME"], "telemetry")
print(sorted(os.listdir(folder)) if os.path.isdir(folder) else [])
"""


@pytest.mark.parametrize(
    ("step", "mode"),
    [("append_many", "1"), ("opened", "1"), ("record", "local")],
)
def test_disable_during_a_hand_over_writes_and_starts_nothing_after_it(
    endpoint: Endpoint, home: Path, step: str, mode: str
) -> None:
    """`disable()` from another thread while the sender hands events over (before the
    outbox write, before the uploader's start, before a local-only record): no event
    stays written or recorded, no uploader starts after it returned."""
    code = DISABLE_DURING_HAND_OVER.format(step=step)
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_ENABLED": mode, **FAST}
    run = run_python(code, env)
    assert run.returncode == 0, run.stderr
    assert "uploader.lock" not in run.stdout
    assert "uploader.starting" not in run.stdout
    assert json.loads(cli("log", "--json").stdout)["waiting"] == []
    assert recorded_outcomes(home) == ""
    assert endpoint.connections == 0


@pytest.mark.parametrize(
    ("trap", "full"),
    [("uploader.lock", False), ("uploader.starting", False), ("uploader.lock", True)],
)
def test_a_folder_in_place_of_the_uploader_s_lock_or_start_file_still_delivers(
    endpoint: Endpoint, home: Path, trap: str, full: bool
) -> None:
    """Something not ours in the lock's or the start announcement's place: every host
    started an uploader that left at once, or none at all, and events waited for ever.
    An empty folder is removed and the real file made (one that cannot be removed is
    worked around, as where file systems have no locks)."""
    (home / "telemetry" / trap).mkdir(parents=True)
    if full:  # a folder that cannot simply be removed
        (home / "telemetry" / trap / "keep").write_text("")
    home.chmod(0o700)
    (home / "telemetry").chmod(0o700)
    code = "import flwr_datasets_telemetry as t\nt.event('one')\nprint(t.flush(30))\n"
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True"]
    assert len(endpoint.bodies) == 1
    assert (home / "telemetry" / trap).is_dir() == full  # else repaired: one uploader again


def test_local_only_mode_chosen_when_no_uploader_can_start_still_never_uploads(
    endpoint: Endpoint, home: Path
) -> None:
    """Where no uploader can start, events are delivered in-process; local-only mode
    chosen during that hand-over must record them instead of sending them."""
    code = """
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _delivery, _runtime
def no_uploader(*args, **kwargs):
    _runtime.STATE.current.config.local_only = True  # what `_go_local` does meanwhile
    return False
_delivery.ensure_uploader = no_uploader
t.event('one')
t.flush(5)
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST})
    assert run.returncode == 0, run.stderr
    assert endpoint.connections == 0
    assert json.loads(cli("log", "--json").stdout)["waiting"] == []
    assert recorded_outcomes(home) == _delivery.RECORDED_LOCALLY  # one record, that one


def test_an_event_left_in_the_outbox_at_exit_is_not_said_to_be_dropped(
    endpoint: Endpoint, home: Path
) -> None:
    """The exit budget ends after the event is in the outbox but before an uploader's
    start (here: held up 3 s); the event waits there for a later process's uploader,
    and logging says so rather than "dropped"."""
    code = """
import time
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _delivery
def slow_start(*args, **kwargs):
    time.sleep(3)
    return False
_delivery.ensure_uploader = slow_start
t.event('one')
"""
    env = {
        "FLWR_TELEMETRY_ENDPOINT": endpoint.url,
        "FLWR_TELEMETRY_EXIT_TIMEOUT": "0.5",
        "FLWR_TELEMETRY_LOGGING": "1",
        **FAST,
    }
    run = run_python(code, env)
    assert run.returncode == 0, run.stderr
    assert "dropped" not in run.stderr
    assert "1 event(s) left in the outbox at exit" in run.stderr
    waiting = json.loads(cli("log", "--json").stdout)["waiting"]
    assert [json.loads(w["body"])["event_type"] for w in waiting] == ["one"]
    later = run_python(ONE.replace("'one'", "'two'") + "assert t.flush(10)\n", env)
    assert later.returncode == 0, later.stderr
    assert sorted(p["event_type"] for p in endpoint.payloads()) == ["one", "two"]


_EXIT_SAYS = {
    "FLWR_TELEMETRY_EXIT_TIMEOUT": "0.5",
    "FLWR_TELEMETRY_LOGGING": "1",
    **FAST,
}


def test_events_taken_back_for_delivery_here_are_not_said_to_wait_in_the_outbox(
    endpoint: Endpoint, home: Path
) -> None:
    """No uploader can start, so the event is taken back and delivered in-process;
    exit cuts that delivery short: it is lost, and must be said to be."""
    code = """
import time
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _delivery
_delivery.ensure_uploader = lambda *args, **kwargs: False
def slow_delivery(*args, **kwargs):
    time.sleep(3)
_delivery.deliver = slow_delivery
t.event('one')
time.sleep(1)
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **_EXIT_SAYS})
    assert run.returncode == 0, run.stderr
    assert "1 event(s) dropped at exit" in run.stderr
    assert "left in the outbox" not in run.stderr
    assert json.loads(cli("log", "--json").stdout)["waiting"] == []


def test_only_the_events_written_are_said_to_wait_in_the_outbox(
    endpoint: Endpoint, home: Path
) -> None:
    """Of a batch of two, one is too large to be written: one waits, one is lost."""
    code = """
import time
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _delivery, _outbox
_outbox.MAX_ENTRY = 1500  # 'one' is about 600 bytes, 'big' over 2,000 (values are capped)
def slow_start(*args, **kwargs):
    time.sleep(3)
    return False
_delivery.ensure_uploader = slow_start
t.event('one')
t.event('big', {f'k{n}': 'x' * 3000 for n in range(8)})
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **_EXIT_SAYS})
    assert run.returncode == 0, run.stderr
    assert "1 event(s) left in the outbox at exit" in run.stderr
    assert "1 event(s) dropped at exit" in run.stderr
    waiting = json.loads(cli("log", "--json").stdout)["waiting"]
    assert [json.loads(w["body"])["event_type"] for w in waiting] == ["one"]


def test_a_hand_over_that_fails_after_the_write_leaves_nothing_to_send_twice(
    endpoint: Endpoint, home: Path
) -> None:
    """Any error once the events are written sends them in-process: they must not also
    stay in the outbox for an uploader to send again."""
    code = """
import flwr_datasets_telemetry as t
from flwr_datasets_telemetry import _delivery
def broken(*args, **kwargs):
    raise RuntimeError("a bug of ours")
_delivery._start_delivery = broken
t.event('one')
print(t.flush(10))
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST})
    assert run.returncode == 0, run.stderr
    assert run.stdout == "True\n"
    assert json.loads(cli("log", "--json").stdout)["waiting"] == []
    assert [p["event_type"] for p in endpoint.payloads()] == ["one"]
