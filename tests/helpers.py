"""Helpers shared by the test files."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cadenya import APIError

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
