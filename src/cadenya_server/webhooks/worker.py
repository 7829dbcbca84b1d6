"""The delivery worker: claims due deliveries, sends them signed, records what happened.

The loop: claim as many due deliveries as there are free slots (at most
CADENYA_SERVER_WEBHOOK_CONCURRENCY in flight), send each in its own task, and
hand the outcomes to a recorder that writes them in batches. Then wait for a
wake-up (a commit that wrote deliveries: NOTIFY on PostgreSQL, an in-process
signal), a finished attempt, the next retry's time, or the poll interval.

Claims are leases committed with the claim (`repository.claim`): any number of
workers on one PostgreSQL take disjoint rows (FOR UPDATE SKIP LOCKED), and the
rows of a worker killed mid-attempt come back when its lease passes, so every
message is delivered at least once. An ordered endpoint's delivery is claimable
only when no earlier one of that endpoint is pending, so at most one is in flight
and they arrive in commit order. An endpoint's rate is booked on its row
(`repository.take_send_slot`), shared by every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import psycopg
import structlog
from sqlalchemy.engine import make_url
from standardwebhooks.webhooks import Webhook

from cadenya_server import __version__, outbox
from cadenya_server.accounts import service as accounts
from cadenya_server.config import WebhookSettings
from cadenya_server.kit.clock import as_utc, now, rfc3339
from cadenya_server.kit.crypto import Keyring
from cadenya_server.kit.db import Database
from cadenya_server.kit.ids import new_id
from cadenya_server.models import WebhookAttempt
from cadenya_server.webhooks import repository
from cadenya_server.webhooks.metrics import ATTEMPT_SECONDS, ATTEMPTS
from cadenya_server.webhooks.network import AddressGuard, GuardedTransport, RefusedAddress

log = structlog.get_logger(__name__)

USER_AGENT = f"cadenya-server/{__version__} (webhooks)"
# Read at most this much of a response body, and store none of it.
BODY_CAP = 4096
# Response headers kept in the log: how many, and how long each value.
MAX_HEADERS, MAX_HEADER_VALUE = 32, 512
# A Retry-After is honoured up to this long.
MAX_RETRY_AFTER_SECONDS = 86400
JITTER = 0.1


@dataclass
class Job:
    """A claimed delivery, everything needed to send it."""

    delivery_id: str
    token: str
    message_id: str
    endpoint_id: str
    url: str
    body: bytes
    secrets: list[str]
    attempt_count: int


@dataclass
class Outcome:
    job: Job
    attempted_at: datetime
    status_code: int = 0
    error: str = ""
    latency_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int = 0
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300


def body_of(message: Any) -> bytes:
    """The Standard Webhooks body: the same bytes for every attempt and endpoint."""
    return json.dumps(
        {"type": message.type, "timestamp": rfc3339(message.created_at), "data": message.data},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def signature_header(secrets: list[str], message_id: str, at: datetime, body: bytes) -> str:
    """`v1,<base64>` per secret, the newest first, space-separated."""
    text = body.decode()
    return " ".join(Webhook(s).sign(message_id, at, text) for s in secrets)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max((as_utc(when) - now()).total_seconds(), 0.0), MAX_RETRY_AFTER_SECONDS)


class Sender:
    """Posts signed bodies over one bounded, guarded connection pool."""

    def __init__(self, settings: WebhookSettings, guard: AddressGuard | None = None) -> None:
        self.timeout = settings.timeout_seconds
        limits = httpx.Limits(
            max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
        )
        self.client = httpx.AsyncClient(
            transport=GuardedTransport(
                guard or AddressGuard(settings.allowed_networks), limits=limits
            ),
            timeout=httpx.Timeout(settings.timeout_seconds),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )

    async def send(self, job: Job) -> Outcome:
        at = now()
        headers = {
            "content-type": "application/json",
            "webhook-id": job.message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature_header(job.secrets, job.message_id, at, job.body),
        }
        outcome = Outcome(job=job, attempted_at=at)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                async with self.client.stream(
                    "POST", job.url, content=job.body, headers=headers
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= BODY_CAP:
                            break
                    outcome.status_code = response.status_code
                    outcome.headers = {
                        k[:MAX_HEADER_VALUE]: v[:MAX_HEADER_VALUE]
                        for k, v in list(response.headers.items())[:MAX_HEADERS]
                    }
                    length = response.headers.get("content-length", "")
                    outcome.content_length = int(length) if length.isdigit() else read
                    if response.status_code in (429, 503):
                        outcome.retry_after = _retry_after(response.headers.get("retry-after"))
                    outcome.error = _error_of(response)
        except (TimeoutError, httpx.TimeoutException):
            outcome.error = f"timed out after {self.timeout:g} s"
        except RefusedAddress as exc:
            outcome.error = str(exc)
        except httpx.HTTPError as exc:
            outcome.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except OSError as exc:
            outcome.error = f"connection failed: {exc}"
        outcome.latency_ms = int((time.perf_counter() - started) * 1000)
        ATTEMPT_SECONDS.observe(outcome.latency_ms / 1000)
        return outcome

    async def close(self) -> None:
        await self.client.aclose()


def _error_of(response: httpx.Response) -> str:
    status = response.status_code
    if 200 <= status < 300:
        return ""
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        return f"redirect not followed: {status} to {location[:500]!r}"
    return f"the endpoint answered {status}"


class Worker:
    """One delivery worker; `run` until `stop()`."""

    def __init__(self, *, db: Database, keyring: Keyring, settings: WebhookSettings) -> None:
        self.db = db
        self.keyring = keyring
        self.settings = settings
        self.concurrency = settings.concurrency
        # The lease outlives the longest attempt (its timeout) and its recording by a
        # margin, so a live worker never loses a claim it is still sending; a killed
        # worker's claims come back when it passes.
        self.lease = timedelta(seconds=2 * settings.timeout_seconds + 10)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False

    # --- Control (thread-safe) ---

    def wake(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    # --- The loop ---

    async def run(self, sender: Sender | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        sender = sender or Sender(self.settings)
        unsubscribe = outbox.on_commit(self.wake)
        listener = asyncio.create_task(self._listen()) if self.db.dialect == "postgresql" else None
        outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        recorder = asyncio.create_task(self._record_loop(outcomes))
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                self._wake.clear()
                free = self.concurrency - len(in_flight)
                jobs: list[Job] = []
                next_due: datetime | None = None
                if free > 0:
                    try:
                        jobs, next_due = await asyncio.to_thread(self._claim, free)
                    except Exception:
                        log.exception("webhook claim failed")
                        await asyncio.sleep(self.settings.poll_seconds)
                        continue
                for job in jobs:
                    task = asyncio.create_task(self._attempt(sender, job, outcomes))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if jobs and len(jobs) == free:
                    # Every slot taken: go on when one frees.
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                timeout = self.settings.poll_seconds
                if next_due is not None:
                    timeout = min(timeout, (next_due - now()).total_seconds())
                if timeout > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._wake.wait()
        finally:
            unsubscribe()
            if in_flight:
                await asyncio.wait(in_flight, timeout=self.settings.timeout_seconds + 1)
            await outcomes.join()
            recorder.cancel()
            if listener is not None:
                listener.cancel()
            await sender.close()

    async def _attempt(self, sender: Sender, job: Job, outcomes: asyncio.Queue[Outcome]) -> None:
        outcomes.put_nowait(await sender.send(job))

    async def _record_loop(self, outcomes: asyncio.Queue[Outcome]) -> None:
        while True:
            batch = [await outcomes.get()]
            while not outcomes.empty():
                batch.append(outcomes.get_nowait())
            try:
                await asyncio.to_thread(self._record, batch)
            except Exception:
                # The leases pass and the deliveries are attempted again: at least once.
                log.exception("recording webhook attempts failed", count=len(batch))
            finally:
                for _ in batch:
                    outcomes.task_done()
            # An ordered endpoint's next message may be due now.
            if self._wake is not None:
                self._wake.set()

    async def _listen(self) -> None:
        """LISTEN for commits that wrote deliveries, reconnecting after a failure."""
        url = make_url(str(self.db.engine.url.render_as_string(hide_password=False)))
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
                    # Whatever was committed before LISTEN took effect.
                    self.wake()
                    async for _ in conn.notifies():
                        self.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook LISTEN connection lost; retrying", error=str(exc))
                await asyncio.sleep(1)

    # --- Database work (in a thread) ---

    def _claim(self, limit: int) -> tuple[list[Job], datetime | None]:
        token = new_id("lease")
        at = now()
        jobs: list[Job] = []
        with self.db.transaction() as session:
            rows = repository.claim(
                session, now=at, limit=limit, lease_until=at + self.lease, token=token
            )
            if rows:
                messages = repository.messages_by_id(session, {r.message_id for r in rows})
                endpoints = repository.endpoints_by_id(session, {r.endpoint_id for r in rows})
                secrets: dict[str, list[str]] = {}
                deferred: dict[str, int] = {}
                for row in rows:
                    endpoint = endpoints[row.endpoint_id]
                    if endpoint.rate_limit_per_second > 0:
                        interval = 1 / endpoint.rate_limit_per_second
                        free_at = repository.take_send_slot(
                            session, endpoint_id=endpoint.id, now=at, interval_seconds=interval
                        )
                        if free_at is not None:
                            # Back in line, each a slot after the one before, so they do
                            # not all come back at once for the one free slot.
                            waiting = deferred[endpoint.id] = deferred.get(endpoint.id, 0) + 1
                            repository.release(
                                session,
                                delivery_id=row.id,
                                token=token,
                                at=free_at + timedelta(seconds=interval * (waiting - 1)),
                            )
                            continue
                    if row.account_id not in secrets:
                        secrets[row.account_id] = accounts.signing_secrets(
                            session=session, keyring=self.keyring, account_id=row.account_id
                        )
                    jobs.append(
                        Job(
                            delivery_id=row.id,
                            token=token,
                            message_id=row.message_id,
                            endpoint_id=row.endpoint_id,
                            url=endpoint.url,
                            body=body_of(messages[row.message_id]),
                            secrets=secrets[row.account_id],
                            attempt_count=row.attempt_count,
                        )
                    )
            next_due = repository.next_due(session, after=at)
        return jobs, next_due

    def _record(self, batch: list[Outcome]) -> None:
        at = now()
        schedule = self.settings.retry_schedule
        succeeded: set[str] = set()
        failed: set[str] = set()
        gone: dict[str, str] = {}
        with self.db.transaction() as session:
            for outcome in batch:
                job = outcome.job
                attempts = job.attempt_count + 1
                values: dict[str, Any] = {
                    "attempt_count": attempts,
                    "last_attempt_at": outcome.attempted_at,
                    "http_status_code": outcome.status_code,
                    "error_message": outcome.error,
                    "latency_ms": outcome.latency_ms,
                    "response_headers": outcome.headers,
                    "response_content_length": outcome.content_length,
                }
                if outcome.succeeded:
                    values.update(status=repository.COMPLETED, next_attempt_at=None)
                    result = "completed"
                elif outcome.status_code == 410:
                    values.update(status=repository.FAILED, next_attempt_at=None)
                    gone[job.endpoint_id] = "the endpoint answered 410 Gone"
                    result = "gone"
                elif attempts > len(schedule):
                    values.update(status=repository.FAILED, next_attempt_at=None)
                    result = "failed"
                else:
                    delay = schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
                    if outcome.retry_after is not None:
                        delay = outcome.retry_after
                    values.update(next_attempt_at=at + timedelta(seconds=delay))
                    result = "retrying"
                recorded = repository.record_attempt(
                    session,
                    delivery_id=job.delivery_id,
                    token=job.token,
                    values=values,
                    attempt=WebhookAttempt(
                        id=new_id("whatt"),
                        delivery_id=job.delivery_id,
                        attempted_at=outcome.attempted_at,
                        http_status_code=outcome.status_code,
                        error_message=outcome.error,
                        latency_ms=outcome.latency_ms,
                    ),
                )
                if not recorded:
                    continue
                ATTEMPTS.labels(result).inc()
                (succeeded if outcome.succeeded else failed).add(job.endpoint_id)
            repository.endpoint_results(
                session,
                succeeded=sorted(succeeded),
                failed=sorted(failed - succeeded),
                gone=gone,
                at=at,
                disable_after=timedelta(seconds=self.settings.disable_after_seconds),
            )


class BackgroundWorker:
    """A worker on its own thread and event loop, inside `serve`."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._thread = threading.Thread(target=self._main, name="webhook-worker", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self.worker.run())
        except Exception:
            log.exception("the webhook worker stopped")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self.worker.stop()
        self._thread.join(timeout)
