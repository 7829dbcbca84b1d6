"""The OpenAPI document says what the server enforces: schemathesis over the whole
document, against a real server process, finds no 5xx, no response off the schema
and no request the document allows that the server refuses.

It runs as an administrator's JWT (minted as `cadenya-server token` mints it): no API
key of the account is at stake, and the server refuses a profile's removal or demotion
of itself, so the run cannot lock itself out. Rate limits are off for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import (
    NO_RATE_LIMITS,
    Server,
    free_port,
    jwt_for,
    make_account,
    start_server,
    stop_server,
)

# One pass of every phase over every operation (coverage, then MAX_EXAMPLES fuzzed cases
# each, then the stateful scenarios), with a fixed seed: the same cases on every run.
# No --max-time: with a budget, schemathesis repeats fuzzing until the budget is spent,
# and on a loaded machine cuts the coverage phase short to leave time for the others, so
# what a run covered depended on the machine's load.
MAX_EXAMPLES = 15
# Only a hung run is stopped: a pass on a loaded machine takes a few minutes.
TIMEOUT_SECONDS = 900
TESTS = Path(__file__).resolve().parent


def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    tenant = make_account(server, name="Contract", domain="contract.io")
    token = jwt_for(server, tenant.admin_profile_id, tenant.id, ttl=3600)
    env = {**server.env, **NO_RATE_LIMITS}
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = start_server(env, port, log=sink)
        try:
            run = subprocess.run(
                [
                    str(Path(sys.executable).with_name("st")),
                    "run",
                    f"http://127.0.0.1:{port}/openapi.json",
                    "--checks=all",
                    # Replaced by the hooks' accepts_well_formed_requests (see there).
                    "--exclude-checks=positive_data_acceptance",
                    "--mode=positive",
                    f"--max-examples={MAX_EXAMPLES}",
                    "--seed=1",
                    # The browser's sign-in and session routes take a cookie and a
                    # provider's redirect, not a bearer token (tests/test_sso.py).
                    "--exclude-path-regex=^/auth/",
                    "--no-color",
                    f"--header=Authorization: Bearer {token}",
                ],
                env={
                    **os.environ,
                    "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
                    "PYTHONPATH": str(TESTS),
                },
                # schemathesis keeps a cache in its working directory.
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
            )
        finally:
            stop_server(process)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", report)
    assert generated, report[-5000:]
    assert int(generated.group(1)) >= 300, report[-5000:]
    assert "Authentication failed" not in report, report[-5000:]
    assert "Traceback" not in log.read_text()
