"""Trusted endpoints through the official client and raw HTTP: the methods, their
refusals, strict host validation, normalisation, and exact URL matching."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from cadenya import types
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from cadenya_server.models import AuditEvent, TrustedEndpoint
from cadenya_server.trusted_endpoints import hosts
from conftest import Server, Tenant, jwt_for, make_account, make_profile
from helpers import refused

ZERO_TIME = "1970-01-01T00:00:00.000Z"


def trust(server: Server, tenant: Tenant, host: str, **metadata: Any) -> types.TrustedEndpoint:
    return server.client(tenant.api_key).trusted_endpoints.create(
        metadata={"name": metadata.pop("name", host), **metadata}, spec={"host": host}
    )


def stored_hosts(server: Server, tenant: Tenant) -> list[str]:
    with server.runtime.db.transaction(write=False) as session:
        return sorted(
            session.scalars(
                select(TrustedEndpoint.host).where(TrustedEndpoint.account_id == tenant.id)
            )
        )


def audit_count(server: Server, tenant: Tenant) -> int:
    with server.runtime.db.transaction(write=False) as session:
        return session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.account_id == tenant.id)
        )


def test_create_get_list_and_delete(server: Server, account: Tenant) -> None:
    endpoints = server.client(account.api_key).trusted_endpoints
    created = trust(
        server,
        account,
        "API.Example.COM.",
        name="Example API",
        external_id="ext-9",
        labels={"env": "prod"},
    )
    assert created.spec.host == "api.example.com"
    assert created.metadata.id.startswith("endpoint_")
    assert created.metadata.name == "Example API"
    assert created.metadata.external_id == "ext-9"
    assert created.metadata.labels == {"env": "prod"}
    assert created.info is not None and created.info.created_by is not None
    assert created.info.created_by.spec.type == "PROFILE_TYPE_API_KEY"
    assert created.metadata.profile_id == created.info.created_by.metadata.id
    assert endpoints.retrieve(created.metadata.id) == created
    other = trust(server, account, "hooks.example.com:8443")

    page = endpoints.list(limit=1)
    assert [e.metadata.id for e in page.items] == [created.metadata.id]
    assert [e.metadata.id for e in page] == [created.metadata.id, other.metadata.id]
    assert [e.metadata.id for e in endpoints.list(labels="env=prod")] == [created.metadata.id]

    endpoints.delete(created.metadata.id)
    refused(lambda: endpoints.retrieve(created.metadata.id), 404, 5)
    refused(lambda: endpoints.delete(created.metadata.id), 404, 5)
    assert [e.metadata.id for e in endpoints.list()] == [other.metadata.id]
    with server.runtime.db.transaction(write=False) as session:
        actions = sorted(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.resource_id == created.metadata.id)
            )
        )
    assert actions == ["trusted_endpoint.create", "trusted_endpoint.delete"]


def test_every_field_of_the_raw_json(server: Server, account: Tenant) -> None:
    created = trust(server, account, "api.example.com")
    with server.http(account.api_key) as http:
        body = http.get(f"/v1/account/trusted_endpoints/{created.metadata.id}").json()
        listed = http.get("/v1/account/trusted_endpoints").json()
        untrusted = http.post(
            "/v1/account/trusted_endpoints:verify", json={"url": "https://elsewhere.io/"}
        ).json()
    assert set(body) == {"metadata", "spec", "info"}
    assert body["spec"] == {"host": "api.example.com"}
    assert set(body["info"]) == {"createdBy"}
    assert set(listed) == {"items", "pagination"}
    assert listed["pagination"] == {"nextCursor": "", "total": 1}
    assert set(untrusted) == {"result", "host", "trustedEndpoint"}
    assert untrusted["result"] == "RESULT_UNTRUSTED"
    empty = untrusted["trustedEndpoint"]
    assert empty["metadata"]["id"] == "" and empty["metadata"]["createdAt"] == ZERO_TIME
    assert empty["spec"] == {"host": ""}
    assert empty["info"]["createdBy"]["spec"]["type"] == "PROFILE_TYPE_UNSPECIFIED"


@pytest.mark.parametrize(
    ("given_host", "stored"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("ｅｘａｍｐｌｅ。com", "example.com"),
        ("faß.de", "xn--fa-hia.de"),
        ("example.com:443", "example.com:443"),
        ("10.0.0.1:8080", "10.0.0.1:8080"),
        ("[2001:DB8:0:0:0:0:0:1]:8443", "[2001:db8::1]:8443"),
        ("localhost", "localhost"),
        ("r3---sn-abc.example.net", "r3---sn-abc.example.net"),
    ],
)
def test_hosts_are_stored_normalised(server: Server, given_host: str, stored: str) -> None:
    tenant = make_account(server)
    assert trust(server, tenant, given_host).spec.host == stored
    assert stored_hosts(server, tenant) == [stored]


@pytest.mark.parametrize(
    "bad_host",
    [
        "",
        " example.com",
        "example.com ",
        "exa mple.com",
        "https://example.com",
        "example.com/path",
        "example.com?x=1",
        "example.com#top",
        "user@example.com",
        "user:pw@example.com",
        "*.example.com",
        "exa_mple.com",
        "%65xample.com",
        "-bad.example.com",
        "a" * 64 + ".com",
        "example.com..",
        "a..b",
        ".example.com",
        "1.2.3",
        "256.0.0.1",
        "01.2.3.4",
        "0x7f.1",
        "com.123",
        "::1",
        "[::1",
        "[::1]x",
        "[fe80::1%25eth0]",
        "example.com:",
        "example.com:0",
        "example.com:080",
        "example.com:65536",
        "xn--.example",
    ],
)
def test_bad_hosts_are_400_and_store_nothing(
    server: Server, account: Tenant, bad_host: str
) -> None:
    with server.http(account.api_key) as http:
        response = http.post(
            "/v1/account/trusted_endpoints",
            json={"metadata": {"name": "bad"}, "spec": {"host": bad_host}},
        )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3
    assert body["details"][0]["fieldViolations"][0]["field"] == "spec.host"
    assert stored_hosts(server, account) == []


def test_one_host_in_another_spelling_is_a_duplicate(server: Server, account: Tenant) -> None:
    trust(server, account, "bücher.example")
    refused(lambda: trust(server, account, "XN--BCHER-KVA.EXAMPLE."), 409, 6)
    # A port makes it another endpoint.
    trust(server, account, "bücher.example:443")
    assert stored_hosts(server, account) == ["xn--bcher-kva.example", "xn--bcher-kva.example:443"]


# Matching


@pytest.fixture(scope="module")
def trusting(server: Server) -> Tenant:
    tenant = make_account(server)
    for host in (
        "api.example.com",
        "secure.example.com:8443",
        "bücher.example",
        "192.0.2.10",
        "[2001:db8::1]",
        "trusted.com",
    ):
        trust(server, tenant, host)
    return tenant


@pytest.mark.parametrize(
    ("url", "result", "host", "endpoint"),
    [
        ("https://api.example.com/v1", "TRUSTED", "api.example.com", "api.example.com"),
        ("HTTPS://API.Example.COM./v1", "TRUSTED", "api.example.com", "api.example.com"),
        ("http://api.example.com/", "TRUSTED", "api.example.com", "api.example.com"),
        ("https://api.example.com:443/", "TRUSTED", "api.example.com", "api.example.com"),
        ("https://api.example.com:8443/", "UNTRUSTED", "api.example.com:8443", ""),
        ("http://api.example.com:443/", "UNTRUSTED", "api.example.com:443", ""),
        (
            "https://secure.example.com:8443/x",
            "TRUSTED",
            "secure.example.com:8443",
            "secure.example.com:8443",
        ),
        ("https://secure.example.com/x", "UNTRUSTED", "secure.example.com", ""),
        ("https://bücher.example/", "TRUSTED", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("https://BÜCHER.example/", "TRUSTED", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        (
            "https://xn--bcher-kva.example/",
            "TRUSTED",
            "xn--bcher-kva.example",
            "xn--bcher-kva.example",
        ),
        ("https://192.0.2.10/", "TRUSTED", "192.0.2.10", "192.0.2.10"),
        ("https://192.0.2.10:8080/", "UNTRUSTED", "192.0.2.10:8080", ""),
        ("https://[2001:db8:0:0:0:0:0:1]/", "TRUSTED", "[2001:db8::1]", "[2001:db8::1]"),
        ("https://[2001:DB8::1]:443/", "TRUSTED", "[2001:db8::1]", "[2001:db8::1]"),
        ("https://[::ffff:192.0.2.10]/", "UNTRUSTED", "[::ffff:c000:20a]", ""),
        ("https://user:pw@api.example.com/", "TRUSTED", "api.example.com", "api.example.com"),
        ("https://api.example.com@evil.com/", "UNTRUSTED", "evil.com", ""),
        ("https://api.example.com:443@evil.com/", "UNTRUSTED", "evil.com", ""),
        ("https://evil.com\\@api.example.com/", "UNTRUSTED", "evil.com", ""),
        ("https://evil.com#@api.example.com/", "UNTRUSTED", "evil.com", ""),
        ("https://api.example.com?next=@evil.com", "TRUSTED", "api.example.com", "api.example.com"),
        ("https://trusted.com.evil.com/", "UNTRUSTED", "trusted.com.evil.com", ""),
        ("https://eviltrusted.com/", "UNTRUSTED", "eviltrusted.com", ""),
        ("https://sub.api.example.com/", "UNTRUSTED", "sub.api.example.com", ""),
        ("https://example.com/", "UNTRUSTED", "example.com", ""),
        ("https://192.0.2.10.nip.io/", "UNTRUSTED", "192.0.2.10.nip.io", ""),
        ("https://api.example.com/{{path}}", "TRUSTED", "api.example.com", "api.example.com"),
        ("https://{{tenant}}.example.com/x", "TEMPLATED", "{{tenant}}.example.com", ""),
        ("{{base_url}}/v1/things", "TEMPLATED", "{{base_url}}", ""),
        ("https://{{secret}}@api.example.com/", "TEMPLATED", "api.example.com", ""),
        ("https://api.example.com:{{port}}/", "TEMPLATED", "api.example.com:{{port}}", ""),
    ],
)
def test_verify_matches_exactly(
    server: Server, trusting: Tenant, url: str, result: str, host: str, endpoint: str
) -> None:
    verdict = server.client(trusting.api_key).trusted_endpoints.verify(url=url)
    assert verdict.result == f"RESULT_{result}"
    assert verdict.host == host
    assert verdict.trusted_endpoint is not None
    assert verdict.trusted_endpoint.spec.host == endpoint
    assert bool(verdict.trusted_endpoint.metadata.id) == (result == "TRUSTED")


@pytest.mark.parametrize(
    "bad_url",
    [
        "",
        "api.example.com",
        "ftp://api.example.com/",
        "https://",
        "https:///path",
        " https://api.example.com/",
        "https://api.example.com/\n",
        "https://api .example.com/",
        "https://api.example.com:0/",
        "https://api.example.com:/",
        "https://%61pi.example.com/",
        "https://127.1/",
        "https://0x7f.0.0.1/",
        "https://2130706433/",
        "https://[::1/",
    ],
)
def test_verify_refuses_what_is_not_an_http_url(
    server: Server, trusting: Tenant, bad_url: str
) -> None:
    error = refused(
        lambda: server.client(trusting.api_key).trusted_endpoints.verify(url=bad_url), 400, 3
    )
    assert error.details and error.details[0]["fieldViolations"][0]["field"] == "url"


# Who may do what


def test_only_administrators_reach_trusted_endpoints(server: Server, account: Tenant) -> None:
    created = trust(server, account, "api.example.com")
    member = jwt_for(server, make_profile(server, account.id, name="Mo"), account.id)
    key_manager = server.client(account.api_key).api_keys.create(
        metadata={"name": "keys only"},
        spec={
            "permissions": ["api_keys:manage"],
            "all_workspaces": True,
            "workspace_assignments": [],
        },
    )
    administrator = server.client(account.api_key).api_keys.create(
        metadata={"name": "admin"},
        spec={
            "permissions": ["account:manage"],
            "all_workspaces": True,
            "workspace_assignments": [],
        },
    )
    events = audit_count(server, account)
    for token in (member, key_manager.spec.token):
        endpoints = server.client(token).trusted_endpoints
        refused(lambda e=endpoints: e.list(), 403, 7)
        refused(lambda e=endpoints: e.retrieve(created.metadata.id), 403, 7)
        refused(lambda e=endpoints: e.delete(created.metadata.id), 403, 7)
        refused(lambda e=endpoints: e.verify(url="https://api.example.com/"), 403, 7)
        refused(
            lambda e=endpoints: e.create(metadata={"name": "x"}, spec={"host": "x.example"}),
            403,
            7,
        )
    assert stored_hosts(server, account) == ["api.example.com"]
    assert audit_count(server, account) == events
    endpoints = server.client(administrator.spec.token).trusted_endpoints
    assert [e.metadata.id for e in endpoints.list()] == [created.metadata.id]
    assert endpoints.verify(url="https://api.example.com/").result == "RESULT_TRUSTED"


def test_another_account_sees_none_of_them(server: Server, account: Tenant) -> None:
    created = trust(server, account, "api.example.com")
    endpoints = server.client(make_account(server).api_key).trusted_endpoints
    refused(lambda: endpoints.retrieve(created.metadata.id), 404, 5)
    refused(lambda: endpoints.delete(created.metadata.id), 404, 5)
    assert list(endpoints.list()) == []
    assert endpoints.verify(url="https://api.example.com/").result == "RESULT_UNTRUSTED"
    assert server.client(account.api_key).trusted_endpoints.retrieve(created.metadata.id)
    assert stored_hosts(server, account) == ["api.example.com"]


# Normalisation properties

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)
_NAMES = (
    st.lists(_LABEL, min_size=1, max_size=4)
    .map(".".join)
    # A last label that URL parsers read as a number (decimal, or hex like "0x") is refused.
    .filter(lambda name: not re.fullmatch(r"[0-9]+|0x[0-9a-f]*", name.rsplit(".", 1)[-1]))
)
_PORTS = st.integers(min_value=1, max_value=65535)


@given(name=_NAMES, port=st.none() | _PORTS, upper=st.booleans(), dot=st.booleans())
def test_spellings_of_a_name_normalise_alike(
    name: str, port: int | None, upper: bool, dot: bool
) -> None:
    written = (name.upper() if upper else name) + ("." if dot else "")
    suffix = "" if port is None else f":{port}"
    assert hosts.normalize(written + suffix) == name + suffix
    target = hosts.parse_url(f"https://{written}{suffix}/path")
    assert isinstance(target, hosts.UrlHost)
    assert name + suffix in target.endpoints()
    assert target.canonical() == name + ("" if port in (None, 443) else suffix)


_HOSTISH = st.text(alphabet=st.sampled_from(list("abcXYZ0129.-:[]äÜßé。ｅ_*@/% \t")), max_size=30)


@given(_HOSTISH | st.text(max_size=30))
def test_normalising_is_idempotent_and_yields_plain_ascii(text: str) -> None:
    try:
        normal = hosts.normalize(text)
    except hosts.HostError:
        return
    assert hosts.normalize(normal) == normal
    assert normal.isascii() and normal == normal.lower()
    assert not any(c in normal for c in "/@?#*%_ ")


@given(st.text(alphabet="abcxyzäöüéñßøåçł", min_size=1, max_size=12))
def test_unicode_and_punycode_are_one_host(label: str) -> None:
    # The standard library's punycode codec is the oracle for the A-label.
    a_label = label if label.isascii() else "xn--" + label.encode("punycode").decode()
    assert hosts.normalize(f"{label}.example") == f"{a_label}.example"
    assert hosts.normalize(f"{a_label.upper()}.example") == f"{a_label}.example"
    target = hosts.parse_url(f"https://{label}.example/")
    assert isinstance(target, hosts.UrlHost) and target.canonical() == f"{a_label}.example"


@given(st.ip_addresses(v=6))
def test_ipv6_spellings_normalise_alike(address: ipaddress.IPv6Address) -> None:
    compressed = f"[{address.compressed}]"
    assert hosts.normalize(f"[{address.exploded}]") == compressed
    assert hosts.normalize(f"[{address.exploded.upper()}]:8443") == f"{compressed}:8443"


@given(st.ip_addresses(v=4))
def test_ipv4_addresses_stay_as_they_are(address: ipaddress.IPv4Address) -> None:
    assert hosts.normalize(str(address)) == str(address)
    target = hosts.parse_url(f"http://{address}/")
    assert isinstance(target, hosts.UrlHost) and target.endpoints() == [
        f"{address}:80",
        str(address),
    ]
