"""Outbound HTTP that reaches only public addresses (SSRF safety).

The host is resolved when the attempt is sent, every address is checked, and the
connection is made to an address that passed: httpcore's network backend is
replaced by one that resolves and connects itself, so no second lookup happens
between the check and the connection (DNS rebinding cannot slip in). TLS still
verifies, and SNI and the Host header still name, the URL's host, because
httpcore takes those from the URL, not from the address connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Addresses of cloud instance metadata services (AWS, GCP, Azure, OpenStack, Oracle,
# Alibaba), named so the refusal says why.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedAddress(Exception):
    """Every address the host resolved to is one the worker must not reach."""


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why the worker must not connect to `ip`, or None for a public address."""
    inner = _embedded_v4(ip)
    if inner is not None:
        why = refusal(inner)
        return f"{why} (an IPv6 form of {inner})" if why else None
    if ip in METADATA:
        return "a cloud metadata address"
    checks = (
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT, "a carrier-grade NAT address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a public address"),
    )
    return next((why for refused, why in checks if refused), None)


class AddressGuard:
    """Which addresses may be reached: public ones, and the operator's allowed networks."""

    def __init__(
        self, allowed_networks: Iterable[str] = (), resolver: Resolver | None = None
    ) -> None:
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]
        self._resolver = resolver or _resolve

    def permits(self, ip: IPAddress) -> str | None:
        """None if `ip` may be reached, else why not."""
        inner = _embedded_v4(ip)
        for candidate in (ip, inner) if inner is not None else (ip,):
            if any(n.version == candidate.version and candidate in n for n in self.allowed):
                return None
        return refusal(ip)

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host` that may be reached; RefusedAddress if none."""
        try:
            resolved = await self._resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        permitted, refused = [], []
        for text in dict.fromkeys(resolved):
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            why = self.permits(ip)
            if why is None:
                permitted.append(str(ip))
            else:
                refused.append(f"{ip} is {why}")
        if not permitted:
            raise RefusedAddress(
                f"refused to connect to {host!r}: {'; '.join(refused) or 'no address'}"
                " (CADENYA_SERVER_WEBHOOK_ALLOWED_NETWORKS opens a range)"
            )
        return permitted


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, and connects to a checked address; nothing else."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await asyncio.wait_for(self._guard.addresses(host, port), timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("unix sockets are not webhook endpoints")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on the guarded backend."""

    def __init__(
        self, guard: AddressGuard, *, limits: httpx.Limits, ssl_context: ssl.SSLContext
    ) -> None:
        # Building an SSL context loads the CA bundle: the caller's one is shared.
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx does not take a network backend; its pool (httpx pinned) is rebuilt with
        # the same settings and ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )
