"""SSRF: the worker's HTTP client resolves at send time, checks every address, and
connects to the address it checked. Real sockets and real resolution through the
worker's own Sender; a resolver seam only for the rebinding case."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadenya_server.config import WebhookSettings
from cadenya_server.webhooks.network import AddressGuard, refusal
from cadenya_server.webhooks.worker import Job, Outcome, Sender
from webhook_receiver import Receiver

SECRET = "whsec_" + "A" * 43 + "="


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    started = {"v4": Receiver().start("127.0.0.1"), "v6": Receiver().start("::")}
    yield started
    for receiver in started.values():
        receiver.stop()


def send(url: str, *, allowed: tuple[str, ...] = (), guard: AddressGuard | None = None) -> Outcome:
    settings = WebhookSettings(timeout_seconds=1.5, allowed_networks=allowed)

    async def attempt() -> Outcome:
        sender = Sender(settings, guard)
        try:
            return await sender.send(
                Job(
                    delivery_id="whdel_x",
                    token="t",
                    message_id="msg_x",
                    endpoint_id="whep_x",
                    url=url,
                    body=b'{"type":"a.b","timestamp":"2026-01-01T00:00:00.000Z","data":{}}',
                    secrets=[SECRET],
                    attempt_count=0,
                )
            )
        finally:
            await sender.close()

    return asyncio.run(attempt())


LOOPBACK_FORMS = [
    ("127.0.0.1", "v4", "a loopback address"),
    ("localhost", "v4", "a loopback address"),
    ("[::1]", "v6", "a loopback address"),
    ("[::ffff:127.0.0.1]", "v6", "a loopback address (an IPv6 form of 127.0.0.1)"),
]


@pytest.mark.parametrize(("host", "family", "why"), LOOPBACK_FORMS)
def test_loopback_is_refused_without_the_allow_list_and_reached_with_it(
    receivers: dict[str, Receiver], host: str, family: str, why: str
) -> None:
    url = f"http://{host}:{receivers[family].port}/hooks"
    refused = send(url)
    assert refused.status_code == 0
    assert refused.error.startswith(f"refused to connect to {host.strip('[]')!r}"), refused.error
    assert why in refused.error
    assert receivers[family].deliveries == []
    reached = send(url, allowed=("127.0.0.0/8", "::1/128"))
    assert reached.status_code == 200, reached.error
    assert len(receivers[family].deliveries) == 1


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("10.0.0.1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("0.0.0.0", "the unspecified address"),
        ("[fe80::1]", "a link-local address"),
        ("[::ffff:10.0.0.1]", "a private address (an IPv6 form of 10.0.0.1)"),
        ("[64:ff9b::a9fe:a9fe]", "a cloud metadata address (an IPv6 form of 169.254.169.254)"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
    ],
)
def test_private_ranges_are_refused_and_opened_by_the_allow_list(host: str, why: str) -> None:
    refused = send(f"http://{host}:9/hooks")
    assert why in refused.error, refused.error
    # Opened, the attempt is made (whatever answers, or fails to, on this network).
    network = "::/0" if host.startswith("[") else "0.0.0.0/0"
    tried = send(f"http://{host}:9/hooks", allowed=(network,))
    assert "refused to connect" not in tried.error


def test_a_rebinding_name_is_checked_and_the_checked_address_is_used(
    receivers: dict[str, Receiver],
) -> None:
    """A name that answers a public address to a validator and loopback to the sender
    cannot slip through: the one answer the sender gets is the one it checks and uses."""
    answers = iter([["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    url = f"http://rebind.example:{receivers['v4'].port}/hooks"
    refused = send(url, guard=AddressGuard(resolver=rebinding))
    assert "127.0.0.1 is a loopback address" in refused.error
    assert receivers["v4"].deliveries == []

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    # Allowed: the connection goes to the checked address, with the URL's Host.
    reached = send(url, guard=AddressGuard(["127.0.0.0/8"], resolver=loopback))
    assert reached.status_code == 200, reached.error
    (delivery,) = receivers["v4"].deliveries
    assert delivery.headers["host"] == f"rebind.example:{receivers['v4'].port}"


def test_mixed_answers_connect_only_to_the_permitted_address(
    receivers: dict[str, Receiver],
) -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["10.0.0.1", "127.0.0.1"]

    url = f"http://mixed.example:{receivers['v4'].port}/hooks"
    reached = send(url, guard=AddressGuard(["127.0.0.0/8"], resolver=mixed))
    assert reached.status_code == 200, reached.error


@given(st.ip_addresses())
def test_every_refused_address_is_not_global(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """Whatever the address, a public one passes and everything else is refused with a reason."""
    why = refusal(ip)
    inner = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if why is None:
        assert ip.is_global and not ip.is_multicast
        if inner is not None:
            assert inner.is_global
    else:
        assert isinstance(why, str) and why
