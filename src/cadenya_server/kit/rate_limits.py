"""Rate limits: failed authentications per client address, requests per credential.

Both count with the `limits` library's sliding window counter: per key, the hits
of the current window and of the previous one, weighted by how much of it the
moving window still covers. A key costs two counters whatever its rate, which
matters for keys an attacker picks (an address, a token), where the moving window
stores one entry per hit; and unlike a fixed window it does not let a burst
through twice across a window's edge. The price is an approximation that assumes
the previous window's hits were spread evenly.

A failed authentication is a response of 401. An address over its budget is
refused with 429 before any database work, whatever it presents, until its
window moves on; a 429 is not a failure, so waiting always helps. Failures are
counted when their response starts: requests already in flight when an address
reaches its budget still get their 401.

The counters live in this process, or in Redis when `CADENYA_SERVER_REDIS_URL` is
set, so every process and server shares one budget. When Redis stops answering,
each process counts in its own memory for a few seconds at a time and logs a
warning: the limits go on holding, per process, and Redis, a helper here, never
makes the API unavailable.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadenya_server.config import Settings
from cadenya_server.kit.errors import ResourceExhausted
from cadenya_server.kit.http import SESSION_COOKIE, error_response

log = structlog.get_logger(__name__)
Limiter = SlidingWindowCounterRateLimiter
T = TypeVar("T")

# Probes of the operator's own machinery, never refused: a load balancer that
# shares an address with an attacker must still see the server up.
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})
# After Redis fails, how long each process counts in its own memory before trying again.
REDIS_RETRY_SECONDS = 5.0
# A rate-limit call waits at most this long for Redis before falling back.
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class _Rule:
    items: Sequence[RateLimitItem]
    setting: str
    what: str


class _Counters:
    """A sliding window counter over Redis (if configured) and one in memory to fall back on."""

    def __init__(self, *, redis_url: str, key_prefix: str) -> None:
        self._memory = Limiter(storage_from_string("async+memory://"))
        self._shared: Limiter | None = None
        self._shared_down_until = 0.0
        if redis_url:
            storage = storage_from_string(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix=key_prefix,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._shared = Limiter(storage)

    def _limiter(self) -> Limiter:
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            return self._shared
        return self._memory

    def _failed(self, exc: Exception) -> None:
        self._shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        log.warning(
            "rate limit storage unavailable; counting in this process's memory",
            error=str(exc) or type(exc).__name__,
            retry_in_seconds=REDIS_RETRY_SECONDS,
        )

    async def _use(self, operation: Callable[[Limiter], Awaitable[T]]) -> T:
        limiter = self._limiter()
        try:
            return await operation(limiter)
        except Exception as exc:
            if limiter is self._memory:
                raise
            self._failed(exc)
            return await operation(self._memory)

    async def hit(self, item: RateLimitItem, key: str) -> bool:
        return await self._use(lambda limiter: limiter.hit(item, key))

    async def test(self, item: RateLimitItem, key: str) -> bool:
        return await self._use(lambda limiter: limiter.test(item, key))

    async def seconds_to_wait(self, item: RateLimitItem, key: str) -> int:
        stats = await self._use(lambda limiter: limiter.get_window_stats(item, key))
        return max(1, math.ceil(stats.reset_time - time.time()))


class RateLimits:
    """The server's two rate limits, as its settings give them."""

    def __init__(self, settings: Settings) -> None:
        self._failed_auth = _Rule(
            parse_many(settings.rate_limit_failed_auth) if settings.rate_limit_failed_auth else [],
            "CADENYA_SERVER_RATE_LIMIT_FAILED_AUTH",
            "failed authentications from this client address",
        )
        self._per_credential = _Rule(
            parse_many(settings.rate_limit_per_credential)
            if settings.rate_limit_per_credential
            else [],
            "CADENYA_SERVER_RATE_LIMIT_PER_CREDENTIAL",
            "requests with this credential",
        )
        self._counters = _Counters(
            redis_url=settings.redis_url, key_prefix=f"{settings.redis_key_prefix}:rate"
        )

    async def _refusal(self, rule: _Rule, item: RateLimitItem, key: str) -> ResourceExhausted:
        wait = await self._counters.seconds_to_wait(item, key)
        return ResourceExhausted(
            f"too many {rule.what}: the limit is {item} ({rule.setting}); retry after {wait} s",
            retry_after=wait,
        )

    async def refuse_client(self, address: str) -> ResourceExhausted | None:
        """429 if this address has failed to authenticate too often lately."""
        key = f"auth-failures/{address}"
        for item in self._failed_auth.items:
            if not await self._counters.test(item, key):
                return await self._refusal(self._failed_auth, item, key)
        return None

    async def note_failed_auth(self, address: str) -> None:
        for item in self._failed_auth.items:
            await self._counters.hit(item, f"auth-failures/{address}")

    async def refuse_credential(self, token: str) -> ResourceExhausted | None:
        """Counts a request with this token; 429 once it is over its budget."""
        # A digest: Redis never holds a usable credential.
        key = "credential/" + hashlib.sha256(token.encode()).hexdigest()[:32]
        for item in self._per_credential.items:
            if not await self._counters.hit(item, key):
                return await self._refusal(self._per_credential, item, key)
        return None


def client_of(scope: Scope) -> str:
    """Who failures are counted against: the client's address, or its /64 for IPv6, where
    one subscriber usually holds a whole /64 and could otherwise pick a fresh address per
    guess."""
    client = scope.get("client")
    if not client:
        return "unknown"
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return client[0]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _credential(scope: Scope) -> str:
    """The token of the request's `Authorization: Bearer` header, else its session
    cookie's (a browser's requests have a budget too), or ""."""
    cookies = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
        if name == b"cookie":
            cookies = value.decode("latin-1")
    for cookie in cookies.split(";"):
        name, _, token = cookie.strip().partition("=")
        if name == SESSION_COOKIE:
            return token
    return ""


class RateLimit:
    """Applies RateLimits to every request but the operator's probes.

    The client address is the socket peer, or what a trusted proxy says it is:
    uvicorn rewrites the peer from X-Forwarded-For only for the proxies in
    CADENYA_SERVER_FORWARDED_ALLOW_IPS (see `cadenya-server serve`).
    """

    def __init__(self, app: ASGIApp, *, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        address = client_of(scope)
        refusal = await self.limits.refuse_client(address)
        token = _credential(scope)
        if refusal is None and token:
            refusal = await self.limits.refuse_credential(token)
        if refusal is not None:
            await error_response(refusal, scope)(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                await self.limits.note_failed_auth(address)
            await send(message)

        await self.app(scope, receive, watch)
