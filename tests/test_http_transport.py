"""The ``http`` transport against hostile loopback endpoints: where events go, what is read.

Most tests drive `Transport` in this process with short timeouts; the last ones run
the whole pipeline in a real interpreter.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from urllib3 import HTTPResponse

from flwr_datasets_telemetry.transports.http import (
    FIRST_BACK_OFF,
    MAX_BACK_OFF,
    MAX_RETRY_AFTER,
    STATUS_RETRY,
    DeliveryError,
    Transport,
    make_session,
)

from .helpers import recorded_outcomes, run_python
from .servers import Endpoint, refused_url, self_signed_certificate

BODY = b'{"event_type": "test"}'
PAYLOAD: dict[str, Any] = {"context": {"package": {"package_name": "flwr-datasets"}}}
#: Short enough to keep the suite fast, long enough for a loaded 2-core machine.
QUICK = (2.0, 1.0)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def netrc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose ~/.netrc offers a password for every host, as ``default`` does."""
    home = tmp_path / "user-home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("default login x password SECRET\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(netrc))
    return home


@pytest.fixture
def servers() -> Iterator[Callable[..., Endpoint]]:
    made: list[Endpoint] = []

    def make(*args: Any, **kwargs: Any) -> Endpoint:
        made.append(Endpoint(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def post_within(seconds: float, transport: Transport, url: str) -> tuple[bool | Exception, float]:
    """Post on a thread; fail the test if it has not returned after ``seconds``."""
    outcome: list[bool | Exception] = []

    def run() -> None:
        try:
            outcome.append(transport.post(BODY, PAYLOAD, url))
        except Exception as error:
            outcome.append(error)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"post still running after {seconds} s"
    return outcome[0], time.monotonic() - start


# --- Events go to the configured endpoint and nowhere else -------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.usefixtures("netrc_home")
def test_a_redirect_is_a_failed_delivery_never_followed(
    status: int,
    scheme: str,
    servers: Callable[..., Endpoint],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = servers()  # plain http: an https endpoint must not be sent there either
    tls = None
    if scheme == "https":
        tls = self_signed_certificate(tmp_path)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls[0])
    origin = servers([(status, {"Location": target.url})], tls=tls)

    with pytest.raises(DeliveryError, match=f"HTTP {status}: a redirect, not followed") as caught:
        Transport(timeout=QUICK).post(BODY, PAYLOAD, origin.url)

    assert caught.value.status == status
    assert len(origin.request_times) == 1  # answered, not retried
    assert (target.connections, target.all_headers) == (0, [])
    assert "Authorization" not in origin.all_headers[0]


def test_a_session_from_make_session_cannot_follow_a_redirect_either(
    servers: Callable[..., Endpoint], netrc_home: Path
) -> None:
    target = servers()
    origin = servers([(307, {"Location": target.url})])
    with make_session() as session:
        response = session.post(origin.url, data=BODY, allow_redirects=True, timeout=QUICK)
    assert response.status_code == 307
    assert response.history == []
    assert target.connections == 0
    assert "Authorization" not in origin.all_headers[0]


def test_netrc_credentials_are_never_sent(
    servers: Callable[..., Endpoint], netrc_home: Path
) -> None:
    server = servers([503])
    assert Transport(timeout=QUICK).post(BODY, PAYLOAD, server.url) is True
    assert len(server.all_headers) == 2
    assert all("Authorization" not in headers for headers in server.all_headers)


def test_cookies_from_the_endpoint_are_never_kept_or_sent(
    servers: Callable[..., Endpoint],
) -> None:
    server = servers([(200, {"Set-Cookie": "tracker=abc; Path=/"})])
    transport = Transport(timeout=QUICK)
    assert transport.post(BODY, PAYLOAD, server.url) is True
    assert transport.post(BODY, PAYLOAD, server.url) is True
    assert "Cookie" not in server.all_headers[1]
    assert len(transport.session.cookies) == 0


# --- A bounded response -------------------------------------------------------------


def test_an_endless_body_is_not_read(servers: Callable[..., Endpoint]) -> None:
    """200 then a body that never ends: delivered (the status says so), memory flat."""
    server = servers(["endless"])
    transport = Transport(timeout=QUICK)
    tracemalloc.start()
    try:
        outcome, seconds = post_within(10, transport, server.url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome is True
    assert seconds < QUICK[1]
    assert peak < 2 * 2**20, peak
    # What the server could push before the client hung up fits in socket buffers.
    assert server.streamed < 32 * 2**20, server.streamed
    # The half-read connection was closed, not reused: the next event gets a new one.
    assert transport.post(BODY, PAYLOAD, server.url) is True
    assert (server.connections, server.bodies) == (2, [BODY])


def test_an_endless_body_on_a_retried_status_does_not_hold_the_sender(
    servers: Callable[..., Endpoint],
) -> None:
    """urllib3 would read all of it before retrying, forever."""
    server = servers(["endless-503"] * 3)
    outcome, seconds = post_within(10, Transport(timeout=QUICK), server.url)
    assert isinstance(outcome, DeliveryError)
    assert str(outcome) == "HTTP 503 from the endpoint (after 3 attempts)"
    assert len(server.request_times) == 3
    assert seconds < 5  # the backoff between attempts (0 s, then 1 s), nothing more


def test_a_trickling_body_does_not_hold_the_sender(servers: Callable[..., Endpoint]) -> None:
    """One byte every 0.5 s defeats a per-read timeout; the body is not waited for."""
    server = servers(["trickle"])
    outcome, seconds = post_within(10, Transport(timeout=QUICK), server.url)
    assert outcome is True
    assert seconds < QUICK[1]


@pytest.mark.parametrize("step", ["trickle-headers", "continue-flood"])
def test_the_whole_answer_head_is_bounded_by_the_read_timeout(
    step: str, servers: Callable[..., Endpoint]
) -> None:
    """Each read would be quick: a byte every 0.5 s, or ``100 Continue`` without end."""
    server = servers([step])
    transport = Transport(timeout=QUICK)
    outcome, seconds = post_within(10, transport, server.url)
    assert isinstance(outcome, DeliveryError)
    # The deadline passed between two reads, or during one (the socket's own message).
    assert str(outcome).startswith("ReadTimeout: TimeoutError: ")
    assert QUICK[1] <= seconds < QUICK[1] + 2
    assert transport.retry_at == 0.0  # one slow answer fails that event only
    assert transport.post(BODY, PAYLOAD, server.url) is True


def test_endless_headers_fail_that_event_only(servers: Callable[..., Endpoint]) -> None:
    server = servers(["endless-headers"])
    transport = Transport(timeout=QUICK)
    outcome, seconds = post_within(10, transport, server.url)
    assert isinstance(outcome, DeliveryError)
    assert "got more than 100 headers" in str(outcome)
    assert seconds < QUICK[1]
    assert transport.retry_at == 0.0
    assert transport.post(BODY, PAYLOAD, server.url) is True


# --- Reachability: back off after a connection-level failure, never give up -----------


def test_one_slow_answer_fails_that_event_only(servers: Callable[..., Endpoint]) -> None:
    server = servers(["slow"])
    transport = Transport(timeout=(2.0, 0.5))
    with pytest.raises(DeliveryError, match=r"^ReadTimeout: .*timed out") as slow:
        transport.post(BODY, PAYLOAD, server.url)
    assert slow.value.unreachable is False
    assert transport.retry_at == 0.0
    assert transport.post(BODY, PAYLOAD, server.url) is True
    assert server.bodies == [BODY]


def test_two_slow_answers_in_a_row_back_off(servers: Callable[..., Endpoint]) -> None:
    server = servers(["slow", "slow"])
    clock = Clock()
    transport = Transport(timeout=(2.0, 0.5), clock=clock)
    with pytest.raises(DeliveryError, match=r"^ReadTimeout: .*timed out$"):
        transport.post(BODY, PAYLOAD, server.url)
    with pytest.raises(DeliveryError, match=f"not trying again for {FIRST_BACK_OFF:.0f} s$"):
        transport.post(BODY, PAYLOAD, server.url)
    with pytest.raises(DeliveryError, match=r"^not tried: backing off"):
        transport.post(BODY, PAYLOAD, server.url)
    assert len(server.request_times) == 2
    clock.now += FIRST_BACK_OFF
    assert transport.post(BODY, PAYLOAD, server.url) is True


def test_a_refused_connection_backs_off_then_delivery_resumes() -> None:
    clock = Clock()
    transport = Transport(timeout=QUICK, clock=clock)
    url = refused_url()
    with pytest.raises(DeliveryError) as refused:
        transport.post(BODY, PAYLOAD, url)
    assert str(refused.value) == (
        "ConnectionError: ConnectionRefusedError: Connection refused; "
        f"not trying again for {FIRST_BACK_OFF:.0f} s"
    )
    assert transport.retry_at == clock.now + FIRST_BACK_OFF
    assert (refused.value.unreachable, refused.value.status) == (True, None)

    # The endpoint comes back on the same port: nothing is tried until the back-off ends.
    server = Endpoint(port=int(url.split(":")[2].split("/")[0]))
    try:
        start = time.monotonic()
        with pytest.raises(DeliveryError, match=r"^not tried: backing off for 30 s after "):
            transport.post(BODY, PAYLOAD, server.url)
        assert time.monotonic() - start < 0.5
        assert server.connections == 0
        clock.now += FIRST_BACK_OFF - 1
        with pytest.raises(DeliveryError, match=r"next attempt in 1 s$"):
            transport.post(BODY, PAYLOAD, server.url)
        clock.now += 1
        assert transport.post(BODY, PAYLOAD, server.url) is True
        assert server.connections == 1
        assert (transport.retry_at, transport.back_off, transport.failure) == (0.0, 0.0, None)
    finally:
        server.close()


def test_the_back_off_doubles_up_to_its_cap() -> None:
    clock = Clock()
    transport = Transport(timeout=QUICK, clock=clock)
    url = refused_url()
    waits = []
    for _ in range(8):
        with pytest.raises(DeliveryError, match="not trying again"):
            transport.post(BODY, PAYLOAD, url)
        waits.append(transport.retry_at - clock.now)
        clock.now = transport.retry_at
    assert waits == [30, 60, 120, 240, 480, 900, 900, 900]
    assert MAX_BACK_OFF == 900


def test_a_connect_timeout_backs_off() -> None:
    """A connect timeout cannot be made on loopback; the one requests raises can."""
    import requests

    transport = Transport(clock=Clock())
    with pytest.raises(DeliveryError, match=r"^ConnectTimeout: "):
        raise transport._failed(requests.ConnectTimeout("connect timed out"))
    assert transport.back_off == FIRST_BACK_OFF


# --- Retries, and nothing but DeliveryError -------------------------------------------


def test_retry_after_is_capped_and_garbage_ignored(servers: Callable[..., Endpoint]) -> None:
    for value, expected in [("100000", MAX_RETRY_AFTER), ("soon", None), ("9" * 5000, None)]:
        response = HTTPResponse(headers={"Retry-After": value}, status=503)
        assert STATUS_RETRY.get_retry_after(response) == expected
    server = servers([(503, {"Retry-After": "9" * 5000})])
    assert Transport(timeout=QUICK).post(BODY, PAYLOAD, server.url) is True
    assert len(server.request_times) == 2


@pytest.mark.parametrize(
    ("endpoint", "payload", "kind"),
    [
        ("127.0.0.1/api/v1/event", PAYLOAD, "MissingSchema"),
        ("ftp://127.0.0.1/event", PAYLOAD, "InvalidSchema"),
        ("http://[::1/event", PAYLOAD, "InvalidURL"),
        (None, {"context": {"package": {"package_name": "x\r\nEvil: 1"}}}, "InvalidHeader"),
    ],
)
def test_any_failure_is_a_delivery_error(
    endpoint: str | None,
    payload: dict[str, Any],
    kind: str,
    servers: Callable[..., Endpoint],
) -> None:
    server = servers()
    with pytest.raises(DeliveryError, match=f"^{kind}: "):
        Transport(timeout=QUICK).post(BODY, payload, endpoint or server.url)
    assert server.connections == 0


# --- Through the whole pipeline, in a real interpreter --------------------------------

SEND = """
import flwr_datasets_telemetry as t
t.event("first")
t.event("second")
print(t.flush(5))
"""


def test_a_redirecting_endpoint_gets_nothing_elsewhere(tmp_path: Path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("default login x password SECRET\n")
    netrc.chmod(0o600)
    target = Endpoint()
    origin = Endpoint([(308, {"Location": target.url}), (307, {"Location": target.url})])
    try:
        run = run_python(
            SEND,
            {
                "FLWR_TELEMETRY_ENDPOINT": origin.url,
                "FLWR_TELEMETRY_LOGGING": "1",
                "FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware",
                "HOME": str(tmp_path),
                "NETRC": str(netrc),
            },
        )
        assert run.stdout.strip() == "False", run.stderr
        outcomes = recorded_outcomes(tmp_path / "flwr-home")  # the uploader's
        for status in (308, 307):
            assert (
                f"not delivered by 'http': DeliveryError: HTTP {status}: a redirect, not followed"
            ) in outcomes
        assert len(origin.all_headers) == 2
        assert all("Authorization" not in headers for headers in origin.all_headers)
        assert (target.connections, target.all_headers) == (0, [])
    finally:
        origin.close()
        target.close()


def test_a_refused_endpoint_is_not_tried_again_at_once() -> None:
    with socket.socket() as probe:  # nothing listens on the port while the test runs
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/api/v1/event"
        run = run_python(
            SEND,
            {
                "FLWR_TELEMETRY_ENDPOINT": url,
                "FLWR_TELEMETRY_LOGGING": "1",
                "FLWR_TELEMETRY_DISABLE_COLLECTORS": "hardware",
            },
        )
    assert run.stdout.strip() == "False", run.stderr
    assert recorded_outcomes() == (  # one try; the second event waits for the back-off
        "not delivered by 'http': DeliveryError: ConnectionError: "
        "ConnectionRefusedError: Connection refused; not trying again for 30 s"
    )
