"""Hand-over and the uploader process, against real loopback servers and real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flwr_datasets_telemetry import _delivery, _files, _outbox, _uploader
from flwr_datasets_telemetry._config import Config
from flwr_datasets_telemetry._plugins import load_plugins
from flwr_datasets_telemetry.hookspecs import hookimpl

from .helpers import REPO
from .servers import Endpoint, refused_url

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no uploader on Windows")


def event(n: int) -> bytes:
    payload = {"event_type": f"e{n}", "event_details": {}, "context": {"package": {}}}
    return json.dumps(payload, separators=(",", ":")).encode()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}


def uploader_command(home: Path) -> list[str]:
    return [sys.executable, "-m", "flwr_datasets_telemetry._uploader", str(home)]


def run_uploader(home: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        uploader_command(home),
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=home.parent,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll a condition another process makes true (no event to wait on across processes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def fill(home: Path, url: str, numbers: range) -> list[bytes]:
    bodies = [event(n) for n in numbers]
    for data in bodies:
        _outbox.append(str(home), url, data)
    return bodies


def uploader_gone(home: Path) -> bool:
    with _outbox.opened(str(home)) as (telemetry, _):
        return _delivery.uploader_running(telemetry) is False


# -- the uploader process --------------------------------------------------------------


def test_delivers_each_event_once_records_it_and_exits(endpoint: Endpoint, home: Path) -> None:
    bodies = fill(home, endpoint.url, range(20))
    run_uploader(home)  # returns: the process exits once the outbox is empty
    assert sorted(endpoint.bodies) == sorted(bodies)
    assert _outbox.waiting(str(home)) == []
    record = _outbox.records(str(home))
    assert sorted(r.body for r in record) == sorted(bodies)
    assert {r.outcome for r in record} == {"delivered by 'http'"}
    assert {r.endpoint for r in record} == {endpoint.url}


def test_each_event_goes_only_to_its_own_endpoint(home: Path) -> None:
    first, second = Endpoint(), Endpoint()
    try:
        to_first = fill(home, first.url, range(0, 10, 2))
        to_second = fill(home, second.url, range(1, 10, 2))
        run_uploader(home)
        assert sorted(first.bodies) == sorted(to_first)
        assert sorted(second.bodies) == sorted(to_second)
    finally:
        first.close()
        second.close()


def test_a_refused_endpoint_backs_off_for_the_whole_machine(home: Path) -> None:
    refused = refused_url()
    waiting = fill(home, refused, range(3))
    run_uploader(home)
    assert [e.body for e in _outbox.waiting(str(home))] == waiting
    (failure,) = _outbox.records(str(home))  # tried once, then the endpoint is left alone
    assert failure.outcome is not None
    assert "ConnectionError" in failure.outcome
    with _outbox.opened(str(home)) as (telemetry, _):
        until = _delivery.backing_off(telemetry, refused)
        assert until is not None
        assert until - time.time() == pytest.approx(_delivery.FIRST_BACKOFF, abs=30)

    # A host appends and starts no uploader (the one that met the failure waits it out,
    # if it may); an uploader started anyway tries nothing.
    impatient = Config(home=str(home), endpoint=refused, retry_wait=30)
    outcome = _delivery.hand_over(impatient, event(9), refused)
    assert outcome is not None
    assert outcome.startswith("queued: the endpoint failed or was out of reach")
    assert not (home / "telemetry" / _delivery.STARTING).exists()
    run_uploader(home)
    assert len(_outbox.records(str(home))) == 1
    assert len(_outbox.waiting(str(home))) == 4

    # Once the back-off is over, one more failure doubles it.
    with _outbox.opened(str(home)) as (telemetry, _):
        backoff = _delivery._backoff_name(refused)
        stale = {"endpoint": refused, "until": time.time() - 1, "delay": 60.0}
        _outbox.publish(telemetry, backoff, json.dumps(stale).encode(), replace=True)
    run_uploader(home)
    with _outbox.opened(str(home)) as (telemetry, _):
        stored = _delivery._read_backoff(telemetry, refused)
    assert stored is not None
    assert stored[1] == 2 * _delivery.FIRST_BACKOFF

    assert _outbox.forget(str(home))  # events, record and back-off: all gone
    assert sorted(os.listdir(home / "telemetry")) == [_delivery.LOCK]


def test_an_endpoint_out_of_reach_holds_up_no_other(endpoint: Endpoint, home: Path) -> None:
    """The next uploader delivers the other endpoint's events and leaves the first alone.

    (The run that met the refusal leaves that endpoint alone; the other one's event
    goes in the same run or the next.)
    """
    refused = refused_url()
    fill(home, refused, range(3))
    reachable = fill(home, endpoint.url, range(3, 4))
    run_uploader(home)
    run_uploader(home)
    assert endpoint.bodies == reachable
    assert len(_outbox.waiting(str(home))) == 3
    assert len([r for r in _outbox.records(str(home)) if r.endpoint == refused]) == 1


def test_a_back_off_from_a_clock_set_back_is_not_waited_out(home: Path) -> None:
    with _outbox.opened(str(home), create=True) as (telemetry, _):
        far = {"endpoint": "http://x/", "until": time.time() + 30 * 24 * 3600, "delay": 86400}
        name = _delivery._backoff_name("http://x/")
        _outbox.publish(telemetry, name, json.dumps(far).encode(), replace=True)
        assert _delivery.backing_off(telemetry, "http://x/") is None


def test_server_errors_keep_the_event_client_errors_drop_it(home: Path) -> None:
    failing, rejecting = Endpoint([503] * 10), Endpoint([400])
    try:
        kept = fill(home, failing.url, range(1))
        fill(home, rejecting.url, range(1, 2))
        run_uploader(home)
        assert [e.body for e in _outbox.waiting(str(home))] == kept
        outcomes = {r.endpoint: r.outcome for r in _outbox.records(str(home))}
        assert "HTTP 503" in str(outcomes[failing.url])
        assert "HTTP 400" in str(outcomes[rejecting.url])
        with _outbox.opened(str(home)) as (telemetry, _):  # a 503 backs off too; a 400 not
            assert _delivery.backing_off(telemetry, failing.url) is not None
            assert _delivery.backing_off(telemetry, rejecting.url) is None
    finally:
        failing.close()
        rejecting.close()


def test_corrupt_entries_are_dropped_and_counted(endpoint: Endpoint, home: Path) -> None:
    good = fill(home, endpoint.url, range(2))
    bad = home / "telemetry" / "outbox" / f"{time.time_ns():020d}-0000010-{1:012x}.ev"
    bad.write_bytes(b"FLWRT1 {}\nhalf an ev")
    run_uploader(home)
    assert sorted(endpoint.bodies) == sorted(good)
    assert not bad.exists()
    assert _outbox.dropped(str(home))["corrupt"] == 1


def test_an_entry_too_deeply_nested_to_parse_is_dropped_and_the_rest_delivered(
    endpoint: Endpoint, home: Path
) -> None:
    """A whole entry (right size and CRC) whose body makes json's parser raise
    RecursionError: dropped as corrupt, not the end of the uploader."""
    _outbox.append(str(home), endpoint.url, b"[" * 3000)
    good = fill(home, endpoint.url, range(2))
    run_uploader(home)
    assert sorted(endpoint.bodies) == sorted(good)
    assert _outbox.waiting(str(home)) == []
    assert _outbox.dropped(str(home))["corrupt"] == 1


@pytest.mark.parametrize(
    "opt_out",
    [
        {"FLWR_TELEMETRY_ENABLED": "0"},
        {"DO_NOT_TRACK": "1"},
        {"FLWR_TELEMETRY_ENABLED": "local"},
        {"HF_DATASETS_OFFLINE": "1"},
    ],
    ids=["disabled", "do-not-track", "local-only", "offline"],
)
def test_an_opt_out_stops_the_uploader(
    endpoint: Endpoint, home: Path, opt_out: dict[str, str]
) -> None:
    bodies = fill(home, endpoint.url, range(2))
    run_uploader(home, opt_out)
    assert endpoint.bodies == []
    assert [e.body for e in _outbox.waiting(str(home))] == bodies
    assert _outbox.records(str(home)) == []


PATIENT_UPLOADER = """
import sys
from flwr_datasets_telemetry import _delivery, _uploader
from flwr_datasets_telemetry.transports import http
_delivery.FIRST_BACKOFF = 0.3  # a minute in a real uploader, doubling
http.FIRST_BACK_OFF = 0.1  # the transport's own, always shorter than the machine's
_uploader.LOOK_EVERY = 0.1
sys.exit(_uploader.main(sys.argv[1:]))
"""


@contextlib.contextmanager
def patient(home: Path, code: str = PATIENT_UPLOADER, wait: str = "60") -> Iterator[Any]:
    """An uploader process with short back-offs (``code``), killed if the test leaves it."""
    uploader = subprocess.Popen(
        [sys.executable, "-c", code, str(home)],
        env=child_env({"FLWR_TELEMETRY_RETRY_WAIT": wait}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield uploader
    finally:
        if uploader.poll() is None:
            uploader.kill()
            uploader.communicate()


def ends_by_itself(uploader: Any, timeout: float = 60) -> bool:
    """Whether it exits (within ``timeout``: else the test fails) with status 0, silent."""
    out, err = uploader.communicate(timeout=timeout)
    return bool((uploader.returncode, out, err) == (0, b"", b""))


def test_an_uploader_waits_out_an_outage_then_delivers_everything(home: Path) -> None:
    """No host runs after the outage: the waiting uploader alone delivers the events."""
    url = refused_url()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    before = fill(home, url, range(3))
    with patient(home) as uploader:
        # Two attempts failed (one event each: the endpoint is then left alone), and
        # the uploader is still there, waiting, holding the lock: hosts start nobody.
        assert wait_until(lambda: len(_outbox.records(str(home))) >= 2)
        assert uploader.poll() is None
        assert not uploader_gone(home)
        during = fill(home, url, range(3, 5))  # hosts keep appending meanwhile
        server = Endpoint(port=port)  # the endpoint comes back
        try:
            assert ends_by_itself(uploader)
            assert sorted(server.bodies) == sorted(before + during)
        finally:
            server.close()
    assert _outbox.waiting(str(home)) == []
    failures = [r for r in _outbox.records(str(home)) if r.outcome != "delivered by 'http'"]
    assert all("ConnectionError" in str(r.outcome) for r in failures)
    with _outbox.opened(str(home)) as (telemetry, _):
        assert _delivery.backing_off(telemetry, url) is None  # it answered: back-off over


def test_an_uploader_leaves_at_once_when_the_next_attempt_is_beyond_its_patience(
    home: Path,
) -> None:
    """A back-off (a minute, doubling to a day) ending after all the sleep it may take:
    nothing to wait for. It used to sleep its whole patience (an hour) in 1 s looks."""
    url = refused_url()
    before = fill(home, url, range(1))
    code = PATIENT_UPLOADER.replace("_delivery.FIRST_BACKOFF = 0.3", "")  # a minute
    with patient(home, code, wait="40") as uploader:  # a back-off of 60 s: beyond it
        assert ends_by_itself(uploader, timeout=20)
    assert [e.body for e in _outbox.waiting(str(home))] == before
    assert "ConnectionError" in str(_outbox.records(str(home))[0].outcome)


def test_an_uploader_lingers_for_the_rest_of_a_burst(endpoint: Endpoint, home: Path) -> None:
    """Events written just after the outbox emptied go with the same uploader."""
    first = fill(home, endpoint.url, range(1))
    code = PATIENT_UPLOADER.replace("_uploader.LOOK_EVERY = 0.1", "_uploader.LINGER = 5.0")
    with patient(home, code) as uploader:
        assert endpoint.wait_for(1, timeout=60)
        assert not uploader_gone(home)  # the outbox is empty, and it is still there
        late = fill(home, endpoint.url, range(1, 3))  # no host starts anyone: it has the lock
        assert endpoint.wait_for(3, timeout=60)
        assert ends_by_itself(uploader)  # then it leaves
    assert sorted(endpoint.bodies) == sorted(first + late)


def test_a_server_error_is_tried_again_after_a_growing_wait(home: Path) -> None:
    """A 503 (after the transport's own retries) backs off like an outage, then ends."""
    failing = Endpoint([503] * 6)  # the transport tries 3 times per attempt
    try:
        bodies = fill(home, failing.url, range(2))
        with patient(home) as uploader:
            assert ends_by_itself(uploader, timeout=120)
        assert sorted(failing.bodies) == sorted(bodies)
        outcomes = [r.outcome for r in _outbox.records(str(home))]
        assert outcomes.count("delivered by 'http'") == 2
        assert sum("HTTP 503" in str(o) for o in outcomes) == 2
        with _outbox.opened(str(home)) as (telemetry, _):
            assert _delivery.backing_off(telemetry, failing.url) is None  # over: it took them
    finally:
        failing.close()


UNCLAIMABLE = PATIENT_UPLOADER.replace(
    "_uploader.LOOK_EVERY = 0.1",
    "_uploader.LOOK_EVERY = 0.1\nfrom flwr_datasets_telemetry import _outbox\n"
    "_outbox.claim = lambda *args, **kwargs: None  # as a rename fails on a read-only disk",
)


def test_an_event_that_cannot_be_claimed_ends_the_run_instead_of_spinning(
    endpoint: Endpoint, home: Path
) -> None:
    waiting = fill(home, endpoint.url, range(1))
    with patient(home, UNCLAIMABLE) as uploader:
        assert ends_by_itself(uploader, timeout=30)  # else it spins or waits on
    assert [e.body for e in _outbox.waiting(str(home))] == waiting
    assert endpoint.bodies == []


def test_an_unwritable_back_off_file_still_spaces_the_attempts(home: Path) -> None:
    """A folder where the back-off file goes: this run's own back-off holds."""
    url = refused_url()
    fill(home, url, range(1))
    (home / "telemetry" / _delivery._backoff_name(url)).mkdir()
    with patient(home):
        assert wait_until(lambda: len(_outbox.records(str(home))) >= 2)
        time.sleep(1.0)  # what it does meanwhile is the test: a few attempts, not thousands
    attempts = len(_outbox.records(str(home)))
    assert attempts <= 5
    assert _outbox.waiting(str(home)) != []


NO_LOCKS = PATIENT_UPLOADER.replace(
    "_uploader.LOOK_EVERY = 0.1",
    "_uploader.LOOK_EVERY = 0.1\nimport errno, fcntl\n"
    "def no_locks(*args):\n    raise OSError(errno.ENOLCK, 'no locks available')\n"
    "fcntl.lockf = no_locks",
)


def test_without_real_locks_an_uploader_never_waits(home: Path) -> None:
    """Where locks are not supported more uploaders may run: none of them may linger."""
    fill(home, refused_url(), range(1))
    with patient(home, NO_LOCKS) as uploader:
        assert ends_by_itself(uploader, timeout=30)  # else it spins or waits on
    assert len(_outbox.records(str(home))) == 1


SHORT_BACK_OFF = PATIENT_UPLOADER.replace(
    "_uploader.LOOK_EVERY = 0.1", "_uploader.LOOK_EVERY = 0.1\n_delivery.MAX_BACKOFF = 0.2"
)


def test_the_retry_wait_bounds_the_whole_run_not_each_wait(home: Path) -> None:
    """Back-offs of 0.2 s each, a second in all: it leaves after about a second."""
    fill(home, refused_url(), range(1))
    with patient(home, SHORT_BACK_OFF, wait="1") as uploader:
        assert ends_by_itself(uploader, timeout=30)  # else it spins or waits on
    assert 2 <= len(_outbox.records(str(home))) <= 10


def test_flush_stops_waiting_when_the_endpoint_is_out_of_reach(home: Path) -> None:
    """An uploader that waits out a back-off holds its lock; `flush` must not wait too."""
    url = refused_url()
    body = event(1)
    name = _outbox.append(str(home), url, body)
    with _outbox.opened(str(home)) as (telemetry, _):
        _delivery.note_failure(telemetry, url)
        taken = _delivery.take_lock(telemetry)  # as a waiting uploader holds it
        assert taken is not None
        lock = taken[0]
        try:
            start = time.monotonic()
            assert not _delivery.await_delivery(str(home), [(name, body)], 30.0, url)
            assert time.monotonic() - start < 10
        finally:
            os.close(lock)


def test_an_uploader_does_not_wait_beyond_its_patience(home: Path) -> None:
    """``FLWR_TELEMETRY_RETRY_WAIT=0`` (the suite's default): one try, then exit."""
    waiting = fill(home, refused_url(), range(2))
    start = time.monotonic()
    run_uploader(home, {"FLWR_TELEMETRY_RETRY_WAIT": "0"})
    assert time.monotonic() - start < _delivery.FIRST_BACKOFF  # it did not wait it out
    assert [e.body for e in _outbox.waiting(str(home))] == waiting
    assert len(_outbox.records(str(home))) == 1


STATIC_UPLOADER = """
import sys
from flwr_datasets_telemetry._uploader import Uploader
Uploader(sys.argv[1]).run_once()
"""


@pytest.mark.slow
def test_uploaders_racing_without_a_shared_lock_send_each_event_once(
    endpoint: Endpoint, home: Path
) -> None:
    """As on NFS with node-local locks: the claims alone keep each event to one send."""
    bodies = fill(home, endpoint.url, range(150))
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", STATIC_UPLOADER, str(home)],
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for racer in racers:
        _, stderr = racer.communicate(timeout=120)
        assert racer.returncode == 0, stderr
    assert sorted(endpoint.bodies) == sorted(bodies)
    assert _outbox.waiting(str(home)) == []


def test_a_second_uploader_leaves_the_work_to_the_first(endpoint: Endpoint, home: Path) -> None:
    bodies = fill(home, endpoint.url, range(60))
    racers = [
        subprocess.Popen(uploader_command(home), env=child_env(), stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for racer in racers:
        racer.communicate(timeout=120)
        assert racer.returncode == 0
    assert sorted(endpoint.bodies) == sorted(bodies)


def test_an_uploader_killed_mid_send_sends_again_never_half(home: Path) -> None:
    slow = Endpoint(["slow"])  # reads the whole request, then answers after 30 s
    try:
        (body,) = fill(home, slow.url, range(1))
        uploader = subprocess.Popen(uploader_command(home), env=child_env())
        assert wait_until(lambda: len(slow.request_times) == 1)
        uploader.send_signal(signal.SIGKILL)
        uploader.wait(30)
        with _outbox.opened(str(home)) as (_, outbox):
            assert _outbox.waiting_names(outbox) == []  # claimed by the dead uploader
            assert _outbox.recover(outbox, time.time() + _outbox.STALE_CLAIM + 1) == 1
        run_uploader(home)
        assert slow.bodies == [body]  # the whole event, once more
        assert _outbox.waiting(str(home)) == []
    finally:
        slow.close()


# -- the host's side -------------------------------------------------------------------


HOST = """
import sys
from flwr_datasets_telemetry import _delivery
from flwr_datasets_telemetry._config import Config
home, url, n = sys.argv[1:]
body = b'{"event_type":"host%s","event_details":{},"context":{"package":{}}}' % n.encode()
print(_delivery.hand_over(Config(home=home, endpoint=url), body, url))
"""


@pytest.mark.slow
def test_twenty_hosts_at_once_are_all_delivered_by_few_uploaders(
    endpoint: Endpoint, home: Path
) -> None:
    hosts = [
        subprocess.Popen(
            [sys.executable, "-c", HOST, str(home), endpoint.url, str(n)],
            env=child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(20)
    ]
    outputs = [host.communicate(timeout=120)[0] for host in hosts]
    assert outputs == ["queued\n"] * 20
    assert endpoint.wait_for(20, timeout=60)
    assert wait_until(lambda: uploader_gone(home))  # the uploader exits when done
    expected = [
        b'{"event_type":"host%d","event_details":{},"context":{"package":{}}}' % n
        for n in range(20)
    ]
    assert sorted(endpoint.bodies) == sorted(expected)
    assert _outbox.waiting(str(home)) == []


def test_hand_over_starts_a_detached_uploader(endpoint: Endpoint, home: Path) -> None:
    config = Config(home=str(home), endpoint=endpoint.url)
    assert _delivery.hand_over(config, event(1), endpoint.url) == _delivery.QUEUED
    assert endpoint.wait_for(1, timeout=60)
    assert endpoint.bodies == [event(1)]
    assert wait_until(lambda: uploader_gone(home) and _outbox.waiting(str(home)) == [])
    assert not (home / "telemetry" / _delivery.STARTING).exists()


def test_offline_hosts_start_nothing_and_their_events_wait(
    endpoint: Endpoint, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(home=str(home), endpoint=endpoint.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _delivery.hand_over(config, event(1), endpoint.url) == _delivery.QUEUED_OFFLINE
    telemetry = home / "telemetry"
    assert not (telemetry / _delivery.STARTING).exists()
    assert not (telemetry / _delivery.LOCK).exists()
    assert [e.body for e in _outbox.waiting(str(home))] == [event(1)]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert _delivery.hand_over(config, event(2), endpoint.url) == _delivery.QUEUED
    assert endpoint.wait_for(2, timeout=60)
    assert sorted(endpoint.bodies) == [event(1), event(2)]


def test_written_events_are_listed_for_retraction_before_exit_may_go_on(
    endpoint: Endpoint, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``in_outbox`` lets exit go on, and exit may then meet an opt-out (or local-only
    mode) and take this process's events back: by then they must be listed."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # in the outbox, no uploader to start
    config = Config(home=str(home), endpoint=endpoint.url)
    listed: list[str] = []
    seen_when_in_outbox: list[list[str]] = []
    outcomes = _delivery.hand_over_many(
        config,
        [event(1), event(2)],
        endpoint.url,
        appended=listed,
        in_outbox=lambda: seen_when_in_outbox.append(list(listed)),
    )
    assert outcomes == [_delivery.QUEUED_OFFLINE] * 2
    names = sorted(os.listdir(home / "telemetry" / "outbox"))
    assert seen_when_in_outbox == [names]
    assert sorted(listed) == names


def test_events_taken_back_for_local_only_mode_are_recorded(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(home=str(home), endpoint=refused_url())
    listed: list[str] = []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _delivery.hand_over_many(config, [event(1), event(2)], config.endpoint, appended=listed)
    taken = _delivery.retract(str(home), listed, _delivery.RECORDED_LOCALLY)
    assert len(taken) == 2
    assert listed == []
    assert _outbox.waiting(str(home)) == []
    recorded = sorted((e.body, e.outcome) for e in _outbox.records(str(home)))
    assert recorded == [(event(n), _delivery.RECORDED_LOCALLY) for n in (1, 2)]


def test_taking_an_event_back_is_one_step_no_claim_can_come_between(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An uploader's claim (a rename) and a release around a read-then-unlink once let
    an event be unlinked unread: neither recorded nor sent. `take` renames first."""
    config = Config(home=str(home), endpoint=refused_url())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _delivery.hand_over_many(config, [event(1), event(2)], config.endpoint)
    names = sorted(os.listdir(home / "telemetry" / "outbox"))
    with _outbox.opened(str(home)) as (_, outbox):
        claimed = _outbox.claim(outbox, names[0], "0123456789ab")
        assert claimed is not None
        assert _outbox.take(outbox, names[0], _outbox.MAX_ENTRY) == (False, None)  # beyond reach
        assert _outbox.release(outbox, claimed)
        was_there, data = _outbox.take(outbox, names[0], _outbox.MAX_ENTRY)
        entry = _outbox.decode(names[0], data)
        assert was_there
        assert entry is not None
        assert entry.body in (event(1), event(2))
        assert sorted(os.listdir(home / "telemetry" / "outbox")) == names[1:]  # no temp left


@pytest.mark.parametrize("record_as", [None, _delivery.RECORDED_LOCALLY])
def test_an_opt_out_takes_back_an_event_an_uploader_is_sending(
    home: Path, monkeypatch: pytest.MonkeyPatch, record_as: str | None
) -> None:
    """An uploader retrying an event (5xx, Retry-After: up to about 10 s) holds it
    claimed; an opt-out meanwhile must still stop it: the claim is taken away, so the
    uploader can neither put it back for another try nor record it as sent."""
    config = Config(home=str(home), endpoint=refused_url())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names: list[str] = []
    _delivery.hand_over_many(config, [event(1), event(2)], config.endpoint, appended=names)
    with _outbox.opened(str(home)) as (_, outbox):
        claimed = _outbox.claim(outbox, names[0], "0123456789ab")  # the uploader's send
        assert claimed is not None
        taken = _delivery.retract(str(home), list(names), record_as)
        assert sorted(taken) == sorted(names)
        assert not _outbox.release(outbox, claimed)  # its failed try cannot come back
        assert not _outbox.exists(outbox, claimed)  # `Uploader.one` then records nothing
        assert os.listdir(home / "telemetry" / "outbox") == []
    recorded = sorted((entry.body, entry.outcome) for entry in _outbox.records(str(home)))
    claimed_body = event(1)  # names[0]: the names come in the order of the bodies
    assert recorded == (
        []
        if record_as is None
        else sorted(  # the one taken from the uploader may have reached the endpoint
            (body, _delivery.MAYBE_SENT if body == claimed_body else record_as)
            for body in (event(1), event(2))
        )
    )


@pytest.mark.parametrize("listing_sees_it", [True, False])
def test_an_event_released_between_two_looks_is_still_taken_back(
    home: Path, monkeypatch: pytest.MonkeyPatch, listing_sees_it: bool
) -> None:
    """The uploader puts a failed event back (a 5xx) just between the opt-out's failed
    take and its look for the claim: the event is looked for again, not left behind —
    even when that listing of a changing folder shows neither name."""
    config = Config(home=str(home), endpoint=refused_url())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names: list[str] = []
    _delivery.hand_over_many(config, [event(1)], config.endpoint, appended=names)
    with _outbox.opened(str(home)) as (_, outbox):
        claimed = _outbox.claim(outbox, names[0], "0123456789ab")
        assert claimed is not None
        real = _outbox._names  # the listing that looks for the claim

        def releasing_first(folder: int) -> list[str]:
            _outbox.release(outbox, claimed)  # the uploader, at the worst moment
            return real(folder) if listing_sees_it else []

        monkeypatch.setattr(_outbox, "_names", releasing_first)
        assert _delivery.retract(str(home), list(names)) == names
    monkeypatch.undo()
    assert os.listdir(home / "telemetry" / "outbox") == []


def test_the_uploader_forgets_back_offs_that_ended_long_ago(endpoint: Endpoint, home: Path) -> None:
    """One back-off file per endpoint that ever failed: an uploader deletes those that
    ended more than a day ago (they double nothing any more), the corrupt ones, and
    keeps those that still count."""
    day = _delivery.MAX_BACKOFF
    good = fill(home, endpoint.url, range(1))
    with _outbox.opened(str(home)) as (telemetry, _):
        _delivery.note_failure(telemetry, "https://old.example/", now=time.time() - 2 * day)
        _delivery.note_failure(telemetry, "https://recent.example/", now=time.time() - day / 2)
        _delivery.note_failure(telemetry, "https://ahead.example/", now=time.time() + 2 * day)
    (home / "telemetry" / "backoff-0000000a.json").write_bytes(b"[" * 3000)
    run_uploader(home)
    assert endpoint.bodies == good
    with _outbox.opened(str(home)) as (telemetry, _):
        left = _outbox.backoff_names(telemetry)
        assert left == [_delivery._backoff_name("https://recent.example/")]


def test_an_uploader_sends_nothing_its_host_took_back_after_the_claim(
    endpoint: Endpoint, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host takes an event back (an opt-out) just after the uploader claimed it,
    before the send: the uploader looks once more and sends nothing."""
    fill(home, endpoint.url, range(1))
    real = _files.parse_json

    def host_takes_it_back(raw: bytes) -> Any:
        if b"event_type" in raw:  # the body, parsed after the claim (not a file header)
            with _outbox.opened(str(home)) as (_, outbox):
                (claim,) = os.listdir(home / "telemetry" / "outbox")
                assert ".claim-" in claim
                assert _outbox.take(outbox, claim, _outbox.MAX_ENTRY)[0]
        return real(raw)

    monkeypatch.setattr(_files, "parse_json", host_takes_it_back)
    _uploader.Uploader(str(home)).run_once()  # in this process: the real transports
    assert endpoint.bodies == []
    assert _outbox.records(str(home)) == []


def test_local_only_records_and_never_queues(home: Path) -> None:
    config = Config(home=str(home), endpoint=refused_url(), local_only=True)
    assert _delivery.hand_over(config, event(1), config.endpoint) == _delivery.RECORDED_LOCALLY
    (entry,) = _outbox.records(str(home))
    assert (entry.body, entry.outcome) == (event(1), _delivery.RECORDED_LOCALLY)
    assert not (home / "telemetry" / "outbox").exists()


def test_where_no_uploader_can_start_the_event_stays_in_process(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", "/opt/app/embedded-host")  # not a Python
    monkeypatch.setattr(_delivery, "_cannot_start", set())
    config = Config(home=str(home), endpoint=refused_url())
    assert _delivery.hand_over(config, event(1), config.endpoint) is None
    assert _outbox.waiting(str(home)) == []  # taken back: not sent twice
    assert not (home / "telemetry" / _delivery.STARTING).exists()
    assert os.getpid() in _delivery._cannot_start  # later events do not try again
    assert _delivery.hand_over(Config(home=None), event(2), config.endpoint) is None


def test_hand_over_never_raises(home: Path) -> None:
    home.parent.joinpath("flwr-home").write_text("a file, not a folder")
    config = Config(home=str(home), endpoint=refused_url())
    assert _delivery.hand_over(config, event(1), config.endpoint) is None
    assert _delivery.hand_over(config, b"x" * (_outbox.MAX_ENTRY + 1), "") is None


# -- deliver(): the transports, shared with in-process delivery --------------------------


class Answer:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.seen: list[str] = []

    @hookimpl
    def telemetry_send(self, body: bytes, endpoint: str) -> Any:
        self.seen.append(endpoint)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_deliver_first_answer_wins_and_exceptions_are_outcomes() -> None:
    config = Config(autoload=False)
    passing, taking = Answer(None), Answer(True)
    plugins = load_plugins(config, {"taking": taking, "passing": passing})  # last first
    outcome = _delivery.deliver(plugins, event(1), {}, "http://e/")
    assert outcome == _delivery.Outcome(delivered=True, text="delivered by 'taking'")
    assert passing.seen == taking.seen == ["http://e/"]
    assert _delivery.in_process_only(plugins)

    failing = load_plugins(config, {"failing": Answer(RuntimeError("HTTP 503 upstream"))})
    outcome = _delivery.deliver(failing, event(1), {}, "http://e/")
    assert (outcome.delivered, outcome.retry, outcome.unreachable) == (False, True, False)
    assert outcome.text == "not delivered by 'failing': RuntimeError: HTTP 503 upstream"

    nobody = load_plugins(config)
    assert _delivery.deliver(nobody, event(1), {}, "http://e/").text == (
        "not delivered: no transport answered"
    )
    assert not _delivery.in_process_only(nobody)


def test_deliver_through_http_tells_out_of_reach_apart() -> None:
    plugins = load_plugins(Config(autoload=False))
    plugins.add_builtins()
    outcome = _delivery.deliver(plugins, event(1), {}, refused_url())
    assert (outcome.delivered, outcome.retry, outcome.unreachable) == (False, True, True)


def test_an_uploader_waiting_for_one_endpoint_soon_sends_to_another(
    endpoint: Endpoint, home: Path
) -> None:
    """Hosts with different endpoints may share a home: an event for a live endpoint
    waits at most `LOOK_EVERY` (the real one here) behind one that backs off."""
    code = PATIENT_UPLOADER.replace("_uploader.LOOK_EVERY = 0.1\n", "").replace(
        "_delivery.FIRST_BACKOFF = 0.3", "_delivery.FIRST_BACKOFF = 120.0"
    )
    fill(home, refused_url(), range(1))
    with patient(home, code, wait="600") as uploader:  # patience beyond the back-off
        assert wait_until(lambda: len(_outbox.records(str(home))) >= 1)  # tried, failed
        assert uploader.poll() is None  # waiting out the back-off, lock held
        (body,) = fill(home, endpoint.url, range(1, 2))
        assert endpoint.wait_for(1, timeout=5)  # 10 s before: it looked that seldom
        assert endpoint.bodies == [body]
    from flwr_datasets_telemetry import _uploader

    assert _uploader.LOOK_EVERY <= 1.0
