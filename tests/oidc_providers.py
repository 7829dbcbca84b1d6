"""OpenID Providers on loopback for the sign-in tests.

- `real_provider()`: oidc-provider-mock (PyPI), a real OpenID Provider built on authlib,
  with its login form, discovery, JWKS and token endpoints; people's claims are set with
  its `PUT /users/{sub}`.
- `ForgingProvider`: a provider this test controls completely, whose token endpoint hands
  back whatever ID token the test forged (wrong audience, `alg: none`, …), and whose key
  signs access tokens for the bearer-token tests. It serves the same discovery and JWKS
  documents as a real one, over real HTTP.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey
from oidc_provider_mock import run_server_in_thread


@contextmanager
def real_provider() -> Iterator[str]:
    """oidc-provider-mock on a free loopback port; its issuer URL."""
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def set_person(issuer: str, sub: str, **claims: Any) -> None:
    """What the real provider says about `sub` at their next sign-in."""
    httpx.put(f"{issuer}/users/{sub}", json=claims, timeout=10).raise_for_status()


def sign_in_at_real_provider(
    client: httpx.Client, start_url: str, sub: str, *, follow: bool = True
) -> httpx.Response:
    """The whole browser flow, as a browser does it: start, the provider's login form
    (submitted for `sub`), and back to the server's callback."""
    to_provider = client.get(start_url)
    assert to_provider.status_code == 302, to_provider.text
    form = client.get(to_provider.headers["location"])
    assert form.status_code == 200 and 'name="sub"' in form.text
    # The form posts to its own URL, query string included.
    back = client.post(str(form.url), data={"sub": sub})
    assert back.status_code == 302, back.text
    callback = back.headers["location"]
    return client.get(callback, follow_redirects=follow)


class ForgingProvider:
    """A provider whose ID tokens the test writes; its issuer is `self.issuer`."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "forge-1"})
        self.next_id_token = ""
        self.codes_seen: list[str] = []
        self.key_set_reads = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/.well-known/openid-configuration":
                    self._json(
                        {
                            "issuer": provider.issuer,
                            "authorization_endpoint": f"{provider.issuer}/authorize",
                            "token_endpoint": f"{provider.issuer}/token",
                            "jwks_uri": f"{provider.issuer}/jwks",
                        }
                    )
                elif path == "/jwks":
                    provider.key_set_reads += 1
                    self._json({"keys": [provider.key.as_dict(private=False)]})
                else:
                    self.send_response(404)
                    self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                provider.codes_seen.append(form.get("code", [""])[0])
                self._json(
                    {
                        "access_token": "opaque",
                        "token_type": "Bearer",
                        "expires_in": 60,
                        "id_token": provider.next_id_token,
                    }
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ForgingProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def claims(self, *, audience: str, sub: str, **extra: Any) -> dict[str, Any]:
        issued = int(time.time())
        return {
            "iss": self.issuer,
            "aud": audience,
            "sub": sub,
            "iat": issued,
            "exp": issued + 300,
            **extra,
        }

    def sign(self, claims: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
        return jwt.encode(header or {"alg": "RS256", "kid": "forge-1"}, claims, self.key)

    def start(self, client: httpx.Client, base_url: str, connection_id: str) -> dict[str, str]:
        """Start a sign-in at the server; the authorization request's parameters."""
        started = client.get(f"{base_url}/auth/sso/start", params={"connection": connection_id})
        assert started.status_code == 302, started.text
        query = parse_qs(urlsplit(started.headers["location"]).query)
        return {name: values[0] for name, values in query.items()}

    def callback(
        self, client: httpx.Client, base_url: str, *, state: str, code: str = "code"
    ) -> httpx.Response:
        return client.get(
            f"{base_url}/auth/sso/callback?" + urlencode({"code": code, "state": state})
        )


def random_sub() -> str:
    return "person-" + secrets.token_hex(4)
