"""Requests per second of API calls authenticated with an identity provider's access token,
against the same calls with an API key, on the same server in the same run (issue 18).

    python -m bench.idp_tokens [--database sqlite|postgresql|both] [--seconds 5]
        [--rounds 5] [--connections 32]

Sets up one account with an SSO connection that accepts bearer tokens from an OpenID
Provider this process serves on loopback (its discovery document and key set, RS256), and
a person who signed in through it (linked by `sso.service.complete_sign_in`, the rules the
browser's callback applies, with the groups that make them an administrator). Then starts
the real server and loads, in rounds, `GET /v1/account` and `GET /v1/whoami` with the
account's admin API key and with the person's IdP access token, for `--seconds` each,
alternating which credential goes first. Each ratio (IdP token ÷ API key) is taken within
one round; the report gives the median of the rounds and their spread. The load comes from
wrk as in bench.throughput. Writes bench/results/idp-tokens-<database>.json and prints a
Markdown table.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from bench.dataset import BenchError, Target, progress
from bench.measure import serving
from bench.throughput import (
    SETTINGS,
    _cli,
    footer,
    heading,
    load,
    main_of,
    report,
    target_result,
)
from cadenya_server.kit.crypto import Keyring
from cadenya_server.kit.db import Database
from cadenya_server.sso import service as sso

HERE = Path(__file__).resolve().parent
SECRET_KEY = "bench-idp-tokens-secret-key-" + "x" * 32
AUDIENCE = "api://cadenya-bench"
CALLS = {"account": "/v1/account", "whoami": "/v1/whoami"}
RATIO_TARGET = 0.8


@contextmanager
def provider(key: RSAKey) -> Iterator[str]:
    """An OpenID Provider's discovery document and key set on loopback; its issuer."""
    documents: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps(documents.get(self.path, {})).encode()
            self.send_response(200 if self.path in documents else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer = f"http://127.0.0.1:{server.server_port}"
    documents["/.well-known/openid-configuration"] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
    }
    documents["/jwks"] = {"keys": [key.as_dict(private=False)]}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()


def _setup(target: Target, base_url: str, api_key: str, issuer: str, key: RSAKey) -> str:
    """The connection (through the API) and the signed-in person; their access token."""
    response = httpx.post(
        f"{base_url}/v1/account/sso_connections",
        headers={"Authorization": f"Bearer {api_key}"},
        json={
            "metadata": {"name": "Bench IdP"},
            "spec": {
                "issuer": issuer,
                "clientId": "bench",
                "clientSecret": "bench-client-secret",
                "allowedEmailDomains": ["bench.io"],
                "roleMapping": {"claim": "groups", "adminValues": ["admins"]},
                "createProfiles": True,
                "acceptBearerTokens": True,
                "audience": AUDIENCE,
            },
        },
        timeout=30,
    )
    if response.status_code != 200:
        raise BenchError(f"creating the SSO connection: {response.status_code} {response.text}")
    connection_id = response.json()["metadata"]["id"]
    issued = int(time.time())
    claims = {"iss": issuer, "sub": "bench-person", "iat": issued, "exp": issued + 3600}
    database = Database(target.url)
    try:
        with database.transaction() as session:
            sso.complete_sign_in(
                session=session,
                keyring=Keyring(SECRET_KEY),
                connection_id=connection_id,
                claims={
                    **claims,
                    "aud": "bench",
                    "email": "grace@bench.io",
                    "email_verified": True,
                    "groups": ["admins"],
                },
                max_profiles=1_000_000,
                session_ttl_seconds=3600,
                request_id="bench",
            )
    finally:
        database.dispose()
    return jwt.encode({"alg": "RS256", "kid": key.kid}, {**claims, "aud": AUDIENCE}, key)


def run(
    target: Target, *, seconds: float, rounds: int, connections: int, results_dir: Path
) -> dict[str, Any]:
    target.reset()
    env = {**os.environ, "CADENYA_SERVER_DATABASE_URL": target.url}
    env["CADENYA_SERVER_SECRET_KEY"] = SECRET_KEY
    _cli(env, "migrate")
    account = ["--name", "Bench", "--domain", "bench.io", "--admin-email", "ada@bench.io"]
    created = _cli(env, "accounts", "create", *account, "--admin-name", "Ada", "--json")
    api_key = json.loads(created)["apiKey"]
    key = RSAKey.generate_key(2048, parameters={"kid": "bench-1"})
    load_before = os.getloadavg()
    measured: list[dict[str, Any]] = []
    with provider(key) as issuer, serving(target.url, SECRET_KEY, settings=SETTINGS) as base:
        tokens = {"api_key": api_key, "idp_token": _setup(target, base, api_key, issuer, key)}
        for path in CALLS.values():
            for token in tokens.values():
                # Warm: the key's last use is noted, the IdP's key set fetched and cached.
                load(f"{base}{path}", token, seconds=1, connections=connections)
        for number in range(rounds):
            figures: dict[str, Any] = {}
            order = list(tokens) if number % 2 == 0 else list(reversed(tokens))
            for call, path in CALLS.items():
                for credential in order:
                    got = load(
                        f"{base}{path}",
                        tokens[credential],
                        seconds=seconds,
                        connections=connections,
                    )
                    if got.failures:
                        raise BenchError(f"{got.failures} failed requests to {path}")
                    figures[f"{call}_{credential}"] = round(got.requests_per_second, 1)
                figures[f"{call}_ratio"] = round(
                    figures[f"{call}_idp_token"] / figures[f"{call}_api_key"], 3
                )
            progress(f"{target.kind} round {number + 1}: {figures}")
            measured.append(figures)
    return report(
        name="idp-tokens",
        kind=target.kind,
        rounds=measured,
        seconds=seconds,
        connections=connections,
        load_before=load_before,
        results_dir=results_dir,
        targets=lambda summary: [
            target_result(
                f"GET {path} with an IdP access token ≥ {RATIO_TARGET}× with an API key",
                summary[f"{call}_ratio"]["median"],
                RATIO_TARGET,
            )
            for call, path in CALLS.items()
        ],
    )


def markdown(result: dict[str, Any]) -> str:
    summary = result["summary"]
    lines = heading(result)
    for call, path in CALLS.items():
        for key, title in (
            (f"{call}_api_key", f"GET {path}, API key (req/s)"),
            (f"{call}_idp_token", f"GET {path}, IdP access token (req/s)"),
            (f"{call}_ratio", f"GET {path}, IdP token ÷ API key"),
        ):
            figures = summary[key]
            lines.append(f"| {title} | {figures['median']} | {figures['min']} | {figures['max']} |")
    return "\n".join(lines + footer(result))


def main(argv: list[str] | None = None) -> int:
    return main_of(
        argv, module="bench.idp_tokens", doc=__doc__, name="idp-tokens", run=run, markdown=markdown
    )


if __name__ == "__main__":
    sys.exit(main())
