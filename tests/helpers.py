"""Helpers shared by the test files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from cadenya import APIError

from conftest import Server, free_port, start_server, stop_server

# The fields of every account-scoped resource's metadata on the wire.
METADATA_FIELDS = {"id", "accountId", "name", "profileId", "externalId", "labels", "createdAt"}


def refused(
    call: Callable[[], object], status: int | None = None, code: int | None = None
) -> APIError:
    """The error `call` is refused with; its HTTP status and google.rpc code, when given."""
    with pytest.raises(APIError) as caught:
        call()
    if status is not None:
        assert caught.value.status_code == status, caught.value.message
    if code is not None:
        assert caught.value.code == code
    return caught.value


@contextmanager
def server_with(server: Server, **settings: str) -> Iterator[str]:
    """A server process of its own on the suite's database, with these CADENYA_SERVER_*
    settings (`max_page_bytes="100"`); its base URL."""
    env = {**server.env, **{f"CADENYA_SERVER_{k.upper()}": v for k, v in settings.items()}}
    port = free_port()
    process = start_server(env, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)
