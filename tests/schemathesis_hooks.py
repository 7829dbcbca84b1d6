"""Hooks for the schemathesis run of test_openapi_contract.

- A cursor is an HMAC-signed position that only the server can make, so no schema can
  say which ones are valid: the run asks for first pages (`cursor=""`); the cursor's
  refusals are tested in test_bad_input and test_profile_search.
- "Valid requests are accepted" judges the request's shape: a 400 FAILED_PRECONDITION
  is the account's state refusing a well-formed request (archiving the last workspace,
  removing one's own profile), which no schema can describe. Any other refusal of a
  request the document allows still fails the run.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

FAILED_PRECONDITION = 9


@schemathesis.hook
def before_call(_context: Any, case: Any, _kwargs: dict[str, Any]) -> None:
    if case.query and "cursor" in case.query:
        case.query["cursor"] = ""


@schemathesis.check
def accepts_well_formed_requests(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code == 400:
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
        if code == FAILED_PRECONDITION:
            return None
    return positive_data_acceptance(ctx, response, case)
