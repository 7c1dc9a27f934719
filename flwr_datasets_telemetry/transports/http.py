"""Transport ``http``: POST each event to the configured endpoint, and nowhere else.

One `requests.Session` per process (`make_session`), one `Transport` around it::

    post(body) ─► session.post(stream=True, allow_redirects=False)
                    │   the status line and headers are read, all within the read
                    │   timeout; the body never is: the connection is closed unread
                    ├─ 2xx ───────────────► delivered
                    ├─ 429, 500/502/503/504 ► retried twice (backoff, Retry-After ≤ 5 s)
                    ├─ 3xx and the rest ───► DeliveryError: a redirect is never followed
                    ├─ refused, DNS, connect
                    │  timeout, TLS, proxy ─► DeliveryError; back off 30 s, doubling to 15 min
                    └─ read timeout, reset ─► DeliveryError for this event only (two slow
                                              answers in a row back off like a refusal)

So one event costs at most three requests, each at most the connect timeout (per
address tried; requests does not bound DNS look-ups or each read of a TLS handshake)
plus the read timeout, and two waits of at most `MAX_RETRY_AFTER`.

The session keeps requests' defaults where they protect: TLS verified, CA bundles and
proxies from the environment. It never sends ``~/.netrc`` credentials (an explicit,
empty authentication) or cookies (none are kept), and cannot follow a redirect even
for a caller that asks it to.

Why the retries are driven here and not by urllib3: before each status retry urllib3
drains the answer's body, so an endless 503 body would hold the sender forever.
`Retry` still decides what is retried, how often and after how long.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import io
import os
import time
from typing import TYPE_CHECKING, Any, Final

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from .._version import __version__
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

#: (connect, read) seconds. The read timeout bounds each wait for the answer's bytes.
TIMEOUT: Final = (3.05, 5.0)
MAX_RETRY_AFTER: Final = 5.0
#: After a connection-level failure nothing is tried for this long, doubling up to the cap.
FIRST_BACK_OFF: Final = 30.0
MAX_BACK_OFF: Final = 900.0
#: Read timeouts in a row after which the endpoint is treated as out of reach.
SLOW_ANSWERS_BEFORE_BACK_OFF: Final = 2
#: How deep an error's causes are followed to say what went wrong.
_MAX_CAUSES: Final = 8

#: Failures that mean the endpoint cannot be reached at all (no answer can come).
_UNREACHABLE: Final = (
    requests.ConnectTimeout,
    requests.exceptions.SSLError,
    requests.exceptions.ProxyError,
    NewConnectionError,  # refused, unreachable, DNS (NameResolutionError in urllib3 2)
    ConnectTimeoutError,
)


class DeliveryError(Exception):
    """The endpoint did not take the event; the message says why.

    ``status`` is the HTTP status of the last answer, if one came; ``unreachable`` is
    true when this failure started (or lengthened) a back-off: nothing could answer.
    """

    def __init__(
        self, message: str, status: int | None = None, *, unreachable: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


class CappedRetry(Retry):
    """urllib3's Retry, with a server's ``Retry-After`` capped (its own cap is hours).

    A ``Retry-After`` that cannot be parsed (urllib3 raises, and so does ``int`` on
    more than 4300 digits) counts as absent.
    """

    def get_retry_after(self, response: Any) -> float | None:
        try:
            retry_after = super().get_retry_after(response)
        except Exception:
            return None
        return None if retry_after is None else min(max(retry_after, 0.0), MAX_RETRY_AFTER)


#: What is retried, how often, and the wait: up to three requests per event.
STATUS_RETRY: Final = CappedRetry(
    total=2,
    connect=0,
    read=0,
    redirect=0,
    status=2,
    backoff_factor=0.5,
    status_forcelist=(429, 500, 502, 503, 504),
    allowed_methods=frozenset({"POST"}),
    respect_retry_after_header=True,
    raise_on_status=False,
    raise_on_redirect=False,
)


class _Session(requests.Session):
    """A Session that cannot follow a redirect, whatever ``allow_redirects`` says.

    requests re-POSTs a 307/308 to any host, https to plain http, and looks the new
    host up in ``~/.netrc``; refusing the redirect target here stops all of it.
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:  # noqa: ARG002
        return None


class _Deadline(io.RawIOBase):
    """A socket's bytes, each read waiting at most until one deadline for them all."""

    def __init__(self, sock: Any, seconds: float) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            # What the socket raises on a timeout: urllib3 makes it a read timeout.
            raise TimeoutError("the answer's status line and headers took too long")
        self.sock.settimeout(left)
        return int(self.sock.recv_into(buffer))


class _BoundedAnswer(http.client.HTTPResponse):
    """http.client's answer, all of which must arrive within the read timeout.

    The socket's timeout bounds each read only: a status line or headers sent a byte
    at a time, or ``100 Continue`` sent forever, would hold the sender for ever. (The
    transport reads no body; a caller of `make_session` reading one is bounded too.)
    """

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp.close()  # the plain reader made above; the socket stays open
        # urllib3 has just set the socket's timeout to the read timeout.
        self.fp = io.BufferedReader(_Deadline(sock, sock.gettimeout() or TIMEOUT[1]))


class _HTTPConnection(HTTPConnection):
    response_class = _BoundedAnswer


class _HTTPSConnection(HTTPSConnection):
    response_class = _BoundedAnswer


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """requests' adapter, its connections (direct or through an HTTP proxy) `_BoundedAnswer`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are their own classes
            manager.pool_classes_by_scheme = _POOLS
        return manager


_POOLS: Final = {"http": _HTTPPool, "https": _HTTPSPool}


def _no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def make_session() -> requests.Session:
    """A session for the endpoint: no redirects, no netrc, no cookies, no urllib3 retries."""
    session = _Session()
    session.max_redirects = 0
    # An explicit (empty) authentication: requests would otherwise read ~/.netrc and
    # send any credentials the user keeps there for the endpoint's host.
    session.auth = _no_credentials
    # No domain is allowed: nothing the endpoint sets is kept or sent back.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    # requests' own default (one try, read errors raised as such), with urllib3's
    # redirect handling off too; status retries happen in `Transport.post`.
    adapter = _Adapter(
        max_retries=Retry(0, read=False, redirect=False), pool_connections=1, pool_maxsize=1
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what caused it, outermost first (urllib3 nests them in ``reason``)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < _MAX_CAUSES:
        chain.append(current)
        reason = getattr(current, "reason", None)
        first = current.args[0] if current.args else None
        current = (
            reason
            if isinstance(reason, BaseException)
            else first
            if isinstance(first, BaseException)
            else current.__cause__
            or (None if current.__suppress_context__ else current.__context__)
        )
    return chain


def _describe(chain: list[BaseException]) -> str:
    outer, root = chain[0], chain[-1]
    text = f"{type(outer).__name__}"
    if root is not outer:
        text += f": {type(root).__name__}"
    detail = str(root.args[-1] if isinstance(root, OSError) and root.args else root)
    return f"{text}: {detail}"[:300] if detail else text


def _agent(payload: Mapping[str, Any]) -> str:
    agent = f"flwr-datasets-telemetry/{__version__}"
    package = payload.get("context", {}).get("package", {})
    if package.get("package_name"):
        agent += f" {package['package_name']}/{package.get('package_version')}"
    return agent


class Transport:
    """Session and reachability of one process (a forked child makes its own).

    Reachability is a back-off, not a verdict: after a connection-level failure no
    event is tried until ``retry_at`` (on ``clock``), and each further failure doubles
    the wait up to `MAX_BACK_OFF`; any answer from the endpoint ends the back-off.
    """

    def __init__(
        self,
        *,
        timeout: tuple[float, float] = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pid = os.getpid()
        self.session = make_session()
        self.timeout = timeout
        self.clock = clock
        #: ``clock()`` value before which nothing is tried, and why.
        self.retry_at = 0.0
        self.back_off = 0.0
        self.failure: str | None = None
        self.slow_answers = 0

    def post(self, body: bytes, payload: Mapping[str, Any], endpoint: str) -> bool:
        """Deliver one event: ``True``, or `DeliveryError` saying why not; nothing else."""
        wait = self.retry_at - self.clock()
        if wait > 0:
            raise DeliveryError(
                f"not tried: backing off for {self.back_off:.0f} s after {self.failure}; "
                f"next attempt in {wait:.0f} s",
                unreachable=True,
            )
        headers = {"Content-Type": "application/json", "User-Agent": _agent(payload)}
        retry: Retry = STATUS_RETRY
        attempts = 0
        while True:
            attempts += 1
            response = self._attempt(endpoint, body, headers)
            status = response.status_code
            if 200 <= status < 300:  # noqa: PLR2004
                return True
            if not retry.is_retry("POST", status, "Retry-After" in response.headers):
                break
            try:
                retry = retry.increment("POST", endpoint, response=response.raw)
            except MaxRetryError:
                break
            retry.sleep(response.raw)
        if 300 <= status < 400:  # noqa: PLR2004
            raise DeliveryError(f"HTTP {status}: a redirect, not followed", status)
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        raise DeliveryError(f"HTTP {status} from the endpoint{tries}", status)

    def _attempt(self, endpoint: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        """One request; the answer's status and headers, its connection already closed."""
        try:
            response = self.session.post(
                endpoint,
                data=body,
                headers=headers,
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,
            )
        except Exception as error:
            raise self._failed(error) from error
        # Closing a response whose body is unread closes its connection: an endless
        # or trickling body costs nothing, and no half-read connection is reused.
        response.close()
        self.retry_at, self.back_off, self.failure, self.slow_answers = 0.0, 0.0, None, 0
        return response

    def _failed(self, error: Exception) -> DeliveryError:
        """Turn any failure into a `DeliveryError`, backing off if nothing can answer."""
        chain = _chain(error)
        reason = _describe(chain)
        unreachable = any(isinstance(link, _UNREACHABLE) for link in chain)
        if isinstance(error, requests.ReadTimeout):
            self.slow_answers += 1
            unreachable = self.slow_answers >= SLOW_ANSWERS_BEFORE_BACK_OFF
        if not unreachable:
            return DeliveryError(reason)
        self.back_off = min(2 * self.back_off, MAX_BACK_OFF) if self.back_off else FIRST_BACK_OFF
        self.retry_at = self.clock() + self.back_off
        self.failure = reason
        return DeliveryError(
            f"{reason}; not trying again for {self.back_off:.0f} s", unreachable=True
        )


#: Endpoints one process keeps a session and a back-off for (an uploader may serve
#: hosts configured with different endpoints); beyond that, the oldest is forgotten.
MAX_ENDPOINTS: Final = 8
_transports: dict[str, Transport] = {}


def transport(endpoint: str) -> Transport:
    """The transport of ``endpoint`` in this process: its own session and back-off."""
    found = _transports.get(endpoint)
    if found is None or found.pid != os.getpid():  # a forked child makes its own
        if found is None and len(_transports) >= MAX_ENDPOINTS:
            del _transports[next(iter(_transports))]
        found = _transports[endpoint] = Transport()
    return found


@hookimpl(trylast=True)
def telemetry_send(body: bytes, payload: Mapping[str, Any], endpoint: str) -> bool:
    return transport(endpoint).post(body, payload, endpoint)
