"""Delivery against real loopback servers, from real user programs in subprocesses."""

from __future__ import annotations

import re
from pathlib import Path

from .helpers import recorded_outcomes, run_python
from .servers import Endpoint, refused_url, self_signed_certificate

PROGRAM = """
from tests.fake_flwr_datasets import FederatedDataset
fds = FederatedDataset(dataset="mnist", partitioners={{"train": 10}})
for i in range({calls}):
    fds.load_partition(i % 7, "train")
"""

FAST = {"FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware"}


def program(calls: int = 1) -> str:
    return PROGRAM.format(calls=calls)


def test_one_post_carrying_exactly_the_logged_payload(endpoint: Endpoint, home: Path) -> None:
    run = run_python(
        program(1) + "import flwr_datasets_telemetry as t; assert t.flush(10)",
        {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_LOGGING": "1"},
    )
    assert run.returncode == 0, run.stderr
    assert len(endpoint.bodies) == 1
    logged = re.search(r"event load_partition: (\{.*\})$", run.stderr, re.MULTILINE)
    assert logged is not None
    assert endpoint.bodies[0] == logged.group(1).encode()
    assert "event load_partition: queued" in run.stderr
    assert recorded_outcomes(home) == "delivered by 'http'"
    (payload,) = endpoint.payloads()
    source = (home / "source").read_text().strip()
    assert payload["context"]["source"] == source
    assert "cpu_brand" in payload["context"]["hw"]
    headers = endpoint.headers_seen[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("flwr-datasets-telemetry/")


def test_thousands_of_identical_calls_make_one_post(endpoint: Endpoint) -> None:
    run = run_python(
        program(2000) + "import flwr_datasets_telemetry as t; assert t.flush(10)",
        {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST},
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert len(endpoint.bodies) == 1


def test_events_pending_at_exit_are_delivered_without_flush(endpoint: Endpoint) -> None:
    env = {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "FLWR_TELEMETRY_EXIT_TIMEOUT": "20", **FAST}
    run = run_python(program(3), env)
    assert run.returncode == 0
    assert endpoint.wait_for(1)  # by the uploader, after the host has gone
    assert len(endpoint.bodies) == 1


def test_sixteen_threads_calling_at_once(endpoint: Endpoint) -> None:
    code = """
import threading
import flwr_datasets_telemetry as t
from tests.fake_flwr_datasets import FederatedDataset
barrier = threading.Barrier(16)
def work(n):
    fds = FederatedDataset(dataset=f"set{n % 4}", partitioners={"train": 10})
    barrier.wait()
    for i in range(200):
        fds.load_partition(i, "train")
threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
for th in threads: th.start()
for th in threads: th.join()
assert t.flush(10)
"""
    run = run_python(code, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, **FAST})
    assert run.returncode == 0, run.stderr
    names = sorted(p["event_details"]["dataset_name"] for p in endpoint.payloads())
    assert names == ["set0", "set1", "set2", "set3"]


def test_server_errors_are_retried_until_delivered() -> None:
    server = Endpoint([500, 503])
    try:
        run = run_python(
            program() + "import flwr_datasets_telemetry as t; assert t.flush(20)",
            {"FLWR_TELEMETRY_ENDPOINT": server.url, **FAST},
        )
        assert run.returncode == 0, run.stderr
        assert len(server.request_times) == 3
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_retry_after_on_429_is_honoured() -> None:
    server = Endpoint([(429, {"Retry-After": "1"})])
    try:
        run = run_python(
            program() + "import flwr_datasets_telemetry as t; assert t.flush(20)",
            {"FLWR_TELEMETRY_ENDPOINT": server.url, **FAST},
        )
        assert run.returncode == 0, run.stderr
        first, second = server.request_times
        assert second - first >= 1.0
        assert len(server.bodies) == 1
    finally:
        server.close()


def test_a_client_error_is_not_retried() -> None:
    server = Endpoint([400])
    try:
        run = run_python(
            program() + "import flwr_datasets_telemetry as t; print(t.flush(20))",
            {"FLWR_TELEMETRY_ENDPOINT": server.url, "FLWR_TELEMETRY_LOGGING": "1", **FAST},
        )
        assert run.stdout.strip() == "False"
        assert "not delivered by 'http': DeliveryError: HTTP 400" in recorded_outcomes()
        assert len(server.request_times) == 1
    finally:
        server.close()


def test_after_a_refused_connection_the_machine_backs_off(home: Path) -> None:
    code = """
import flwr_datasets_telemetry as t
for n in range(5):
    t.event(f"kind{n}")
print(t.flush(2))
"""
    env = {"FLWR_TELEMETRY_ENDPOINT": refused_url(), "FLWR_TELEMETRY_LOGGING": "1", **FAST}
    run = run_python(code, env)
    assert run.returncode == 0
    assert run.stdout.strip() == "False"
    outcomes = recorded_outcomes(home)
    assert outcomes.count("not delivered by 'http': DeliveryError: ConnectionError") == 1
    assert outcomes.count("\n") == 0  # the other four were not even tried
    assert list((home / "telemetry").glob("backoff-*.json"))
    again = run_python(code, env)  # the next process on this machine: no uploader now
    assert "queued: the endpoint failed or was out of reach, next attempt after" in again.stderr
    assert recorded_outcomes(home) == outcomes


SEND_ONE = "import flwr_datasets_telemetry as t\nt.event('one')\nprint(t.flush(20))\n"


def test_tls_certificates_are_verified(tmp_path: Path) -> None:
    server = Endpoint(tls=self_signed_certificate(tmp_path))
    try:
        env = {"FLWR_TELEMETRY_ENDPOINT": server.url, "FLWR_TELEMETRY_LOGGING": "1", **FAST}
        rejected = run_python(SEND_ONE, env)
        assert rejected.stdout.strip() == "False"
        assert "not delivered by 'http': DeliveryError: SSLError" in recorded_outcomes()
        assert server.bodies == []
        # A failed TLS handshake backs the whole machine off: a fresh home starts anew.
        trusted = run_python(
            SEND_ONE,
            {
                **env,
                "REQUESTS_CA_BUNDLE": str(tmp_path / "cert.pem"),
                "FLWR_HOME": str(tmp_path / "another-home"),
            },
        )
        assert trusted.stdout.strip() == "True", trusted.stderr
        assert len(server.payloads()) == 1
    finally:
        server.close()


def test_proxies_come_from_the_environment(endpoint: Endpoint) -> None:
    proxy = endpoint.url.rsplit("/api", 1)[0]
    env = {
        "FLWR_TELEMETRY_ENDPOINT": "http://telemetry.invalid/api/v1/event",
        "HTTP_PROXY": proxy,
        **FAST,
    }
    run = run_python(SEND_ONE, env)
    assert run.stdout.strip() == "True", run.stderr
    assert len(endpoint.payloads()) == 1
    assert endpoint.paths == ["http://telemetry.invalid/api/v1/event"]


def test_netrc_credentials_are_never_sent(endpoint: Endpoint, tmp_path: Path) -> None:
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login alice password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    run = run_python(
        SEND_ONE, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "HOME": str(tmp_path), **FAST}
    )
    assert run.stdout.strip() == "True", run.stderr
    assert "Authorization" not in endpoint.headers_seen[0]


def test_a_broken_requests_costs_delivery_only(endpoint: Endpoint) -> None:
    broken = str(Path(__file__).parent / "broken_requests")
    program = SEND_ONE.replace("print(t.flush(20))", "print(t.flush(20)); print('still running')")
    quiet = run_python(
        program, {"FLWR_TELEMETRY_ENDPOINT": endpoint.url, "PYTHONPATH": broken, **FAST}
    )
    assert (quiet.returncode, quiet.stdout.split(), quiet.stderr) == (
        0,
        ["False", "still", "running"],
        "",
    )
    logged = run_python(
        program,
        {
            "FLWR_TELEMETRY_ENDPOINT": endpoint.url,
            "PYTHONPATH": broken,
            "FLWR_TELEMETRY_LOGGING": "1",
            **FAST,
        },
    )
    assert "event one: {" in logged.stderr
    assert "event one: queued" in logged.stderr
    assert "not delivered: no transport answered" in recorded_outcomes()
    assert endpoint.connections == 0
