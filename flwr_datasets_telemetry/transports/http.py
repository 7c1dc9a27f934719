"""Transport ``http``: POST the event with one `requests.Session` per process.

Retries (on 5xx and 429, POST included) and backoff are urllib3's `Retry`, with
``Retry-After`` honoured up to `MAX_RETRY_AFTER`. Connection-level failures are not
retried: a refused port, a failed DNS look-up, a connect or read timeout (a black
hole) mean the endpoint is out of reach, and the transport stops trying for the rest
of the process — an air-gapped cluster pays for the failure once. TLS verification,
proxies and CA bundles come from requests' defaults and the environment.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .._version import __version__
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Mapping

#: (connect, read) seconds.
TIMEOUT: Final = (3.05, 5.0)
MAX_RETRY_AFTER: Final = 5.0


class DeliveryError(Exception):
    """The endpoint could not take the event; the message says why."""


class CappedRetry(Retry):
    """urllib3's Retry, with a server's ``Retry-After`` capped (its own cap is hours)."""

    def get_retry_after(self, response: Any) -> float | None:
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(retry_after, MAX_RETRY_AFTER)


def _no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def make_session() -> requests.Session:
    retry = CappedRetry(
        total=3,
        connect=0,
        read=0,
        status=2,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    # An explicit (empty) authentication: requests would otherwise read ~/.netrc and
    # send any credentials the user keeps there for the endpoint's host.
    session.auth = _no_credentials
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=1)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Transport:
    """Session and reachability of one process (a forked child makes its own)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.session = make_session()
        self.unreachable: str | None = None

    def post(self, body: bytes, payload: Mapping[str, Any], endpoint: str) -> bool:
        if self.unreachable is not None:
            raise DeliveryError(f"not tried: {self.unreachable} earlier in this process")
        package = payload.get("context", {}).get("package", {})
        agent = f"flwr-datasets-telemetry/{__version__}"
        if package.get("package_name"):
            agent += f" {package['package_name']}/{package.get('package_version')}"
        try:
            response = self.session.post(
                endpoint,
                data=body,
                headers={"Content-Type": "application/json", "User-Agent": agent},
                timeout=TIMEOUT,
            )
        except requests.RequestException as error:
            self.unreachable = type(error).__name__
            raise
        with response:
            if not response.ok:
                raise DeliveryError(f"HTTP {response.status_code} from the endpoint")
        return True


_transport: list[Transport] = []


def transport() -> Transport:
    if not _transport or _transport[0].pid != os.getpid():
        _transport[:] = [Transport()]
    return _transport[0]


@hookimpl(trylast=True)
def telemetry_send(body: bytes, payload: Mapping[str, Any], endpoint: str) -> bool:
    return transport().post(body, payload, endpoint)
