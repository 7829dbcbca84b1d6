"""SCIM 2.0 at /scim/v2: scim2-tester against the live server, the request sequences Okta
and Entra ID send, deprovisioning, tenant isolation."""

from __future__ import annotations

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from conftest import Server, Tenant, make_api_key

SCIM = "application/scim+json"


def scim_key(server: Server, account: Tenant) -> str:
    return make_api_key(server, account, permissions=["scim:manage"])


def test_scim2_tester_passes_every_check_that_applies(server: Server, account: Tenant) -> None:
    token = scim_key(server, account)
    with httpx2.Client(
        base_url=f"{server.base_url}/scim/v2", headers={"Authorization": f"Bearer {token}"}
    ) as http:
        results = check_server(SyncSCIMClient(http))
    failed = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    for r in failed:
        print(r.title, r.resource_type, r.reason)
    assert not failed
