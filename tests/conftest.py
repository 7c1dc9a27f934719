"""Fixtures: a clean environment, loopback endpoints, and real interpreters to run.

No test may reach the network: every child interpreter gets a loopback endpoint (a
refused port unless the test gives a server), and this process's own telemetry is
replaced by capture runtimes built per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .schema import validated
from .servers import BlackHole, Endpoint, refused_url

# Before the package reads its configuration: this process never sends anywhere.
os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ["FLWR_TELEMETRY_ENDPOINT"] = refused_url()

from flwr_datasets_telemetry import _runtime
from flwr_datasets_telemetry.testing import CapturedEvents, capture_events

# Ours, and the proxy settings requests reads: loopback tests must reach loopback.
_STRIPPED = ("FLWR_", "DO_NOT_TRACK", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FLWR_*/DO_NOT_TRACK from the developer's shell; a private FLWR_HOME.

    In this process telemetry is inert unless a test captures it.
    """
    monkeypatch.setattr(_runtime.STATE, "current", None)
    for name in list(os.environ):
        if name.upper().startswith(_STRIPPED):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr-home"))
    # A CI, as far as the one-time notice knows: children print nothing unasked.
    # (tests/test_notice.py clears it.)
    monkeypatch.setenv("CI", "true")
    # The machine's own setting (if any) must not decide the tests.
    monkeypatch.setenv("FLWR_TELEMETRY_MACHINE_CONFIG", str(tmp_path / "machine.conf"))
    monkeypatch.setenv("FLWR_TELEMETRY_ENDPOINT", refused_url())
    # Uploaders started by tests give up at the first failure instead of waiting out
    # the back-off (a minute, doubling) in the background after the test is over.
    monkeypatch.setenv("FLWR_TELEMETRY_RETRY_WAIT", "0")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "flwr-home"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture
def captured() -> Iterator[CapturedEvents]:
    """This process's events, built by the real collectors, kept in memory."""
    with capture_events() as events:
        yield events
    for payload in events.payloads():
        validated(payload)
