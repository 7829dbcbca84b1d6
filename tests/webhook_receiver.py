"""A real webhook receiver for the tests: an HTTP server on loopback that records every
delivery and answers as the test plans, and the checks every delivery must pass."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import cadenya
import httpx
import standardwebhooks
from cadenya import Cadenya

from conftest import Server, Tenant

# (status, headers, seconds to wait before answering)
Answer = tuple[int, dict[str, str], float]
OK: Answer = (200, {}, 0.0)


class ReceivingServer(ThreadingHTTPServer):
    # A worker opens up to its concurrency of connections at once; with the default
    # backlog of 5 the rest wait for SYN retries, seconds each.
    request_queue_size = 128


class DualStackServer(ReceivingServer):
    """Listens on IPv6 and, through IPv4-mapped addresses, on IPv4 too."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Records each request; `plan(n, delivery)` answers the n-th (from 0)."""

    plan: Callable[[int, Delivery], Answer] = lambda n, d: OK
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, host: str = "127.0.0.1") -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                delivery = Delivery(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with receiver._lock:
                    n = len(receiver.deliveries)
                    receiver.deliveries.append(delivery)
                status, headers, delay = receiver.plan(n, delivery)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = (DualStackServer if ":" in host else ReceivingServer)((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = host
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        host = "[::1]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/hooks"

    def wait_for(self, predicate: Callable[[list[Delivery]], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(list(self.deliveries)):
                    return
            time.sleep(0.05)
        raise AssertionError(f"the receiver did not see it within {timeout} s: {self.deliveries}")

    def wait_count(self, count: int, timeout: float = 20) -> list[Delivery]:
        self.wait_for(lambda ds: len(ds) >= count, timeout)
        return list(self.deliveries)

    def of_type(self, type: str) -> list[Delivery]:
        return [d for d in list(self.deliveries) if json.loads(d.body)["type"] == type]


def verify(delivery: Delivery, secret: str) -> None:
    """Both verifiers accept the delivery with `secret` alone."""
    cadenya.verify_webhook(secret, delivery.body, delivery.headers)
    standardwebhooks.Webhook(secret).verify(delivery.body, delivery.headers)


def signatures(delivery: Delivery) -> list[str]:
    return delivery.headers["webhook-signature"].split(" ")


def expected_signature(secret: str, delivery: Delivery) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{delivery.id}.{delivery.headers['webhook-timestamp']}.".encode() + delivery.body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_endpoint(server: Server, tenant: Tenant, url: str, **spec: Any) -> dict[str, Any]:
    """Trust the URL's host and add an endpoint for it, over HTTP as an administrator."""
    with server.http(tenant.api_key) as http:
        return add_endpoint(http, url, **spec)


def add_endpoint(http: httpx.Client, url: str, **spec: Any) -> dict[str, Any]:
    host = urlsplit(url).netloc
    trusted = http.post(
        "/v1/account/trusted_endpoints", json={"metadata": {"name": host}, "spec": {"host": host}}
    )
    assert trusted.status_code in (200, 409), trusted.text
    response = http.post(
        "/v1/account/webhook_endpoints",
        json={"metadata": {"name": "receiver"}, "spec": {"url": url, **spec}},
    )
    assert response.status_code == 200, response.text
    return response.json()


def secret_of(client: Cadenya) -> str:
    return client.accounts.retrieve().info.webhook_events_hmac_secret
