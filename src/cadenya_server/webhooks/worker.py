"""The delivery worker: claims due deliveries, sends them signed, records what happened.

The loop: claim as many due deliveries as there are free slots (at most
CADENYA_SERVER_WEBHOOK_CONCURRENCY in flight), send each in its own task, and
hand the outcomes to a recorder that writes them in batches. Then wait for a
wake-up (a commit that wrote deliveries: NOTIFY on PostgreSQL, an in-process
signal on both), the next retry's time, or the poll interval; with a backlog,
claim again once a quarter of the slots are free, so a claim is a batch, not a
transaction per message.

A worker also takes the deliveries its own process writes, as far as it has free
slots (`outbox.hand_to`): the writing transaction leases them to it, and commits
hand them over, so they are sent without a claim (the `serve` process's worker
sends what its API writes within milliseconds). A lease is a lease however it was
taken: another worker skips them, and they come back to any worker if this one dies.

Claims are leases committed with the claim (`repository.claim`): any number of
workers on one PostgreSQL take disjoint rows (FOR UPDATE SKIP LOCKED), and the
rows of a worker killed mid-attempt come back when its lease passes, so every
message is delivered at least once. An ordered endpoint's delivery is claimable
only when no earlier one of that endpoint is pending; it is claimed with the run
of pending deliveries after it, which one task sends one after another in commit
order, each only after the one before succeeded. After one that did not (it waits
for its retry, or was given up), the rest go back unsent, and the next claim
starts with the first still pending. An endpoint's rate is booked on its row
(`repository.take_send_slot`), shared by every worker; a rate-limited ordered
endpoint is sent one delivery per claim.

When the worker disables an endpoint (410 Gone, or failing for
CADENYA_SERVER_WEBHOOK_DISABLE_AFTER_SECONDS), it writes the audit record and the
`webhook_endpoint.disabled` event in the transaction that records the attempt,
as an administrator's :disable does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
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
from cadenya_server.outbox import Handed, Reservation
from cadenya_server.webhooks import repository
from cadenya_server.webhooks import service as webhooks
from cadenya_server.webhooks.metrics import ATTEMPT_SECONDS, ATTEMPTS, HANDED
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
# Connections per HTTP pool of a Sender.
POOL_SIZE = 8
# An ordered endpoint's deliveries sent one after another on one claim, at most.
RUN_LENGTH = 200
# A run stops (and gives the rest back) when less than an attempt's timeout and this
# much is left of its lease, so no attempt is sent after its lease could have passed.
LEASE_MARGIN_SECONDS = 5.0


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
    ordered: bool = False
    # time.monotonic() when this worker's lease on the delivery passes.
    lease_ends: float = math.inf


@dataclass
class RunOver:
    """An ordered run was sent: once recorded, its endpoint's next delivery is first in line."""


@dataclass
class Unsent:
    """A delivery of an ordered run given back unsent: one before it did not succeed, or
    the run's lease is running out."""

    job: Job


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
    """Posts signed bodies over bounded, guarded connection pools.

    httpcore's pool looks at every one of its connections for each request, so its
    cost per request grows with its size: the concurrency is spread over pools of at
    most POOL_SIZE connections, each attempt taking the least busy one.
    """

    def __init__(self, settings: WebhookSettings, guard: AddressGuard | None = None) -> None:
        self.timeout = settings.timeout_seconds
        guard = guard or AddressGuard(settings.allowed_networks)
        pools = math.ceil(settings.concurrency / POOL_SIZE)
        size = math.ceil(settings.concurrency / pools)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        ssl_context = httpx.create_ssl_context(trust_env=False)
        self.clients = [
            httpx.AsyncClient(
                transport=GuardedTransport(guard, limits=limits, ssl_context=ssl_context),
                timeout=httpx.Timeout(settings.timeout_seconds),
                follow_redirects=False,
                headers={"user-agent": USER_AGENT},
            )
            for _ in range(pools)
        ]
        self._busy = [0] * pools

    async def send(self, job: Job) -> Outcome:
        at = now()
        headers = {
            "content-type": "application/json",
            "webhook-id": job.message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature_header(job.secrets, job.message_id, at, job.body),
        }
        outcome = Outcome(job=job, attempted_at=at)
        pool = self._busy.index(min(self._busy))
        self._busy[pool] += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                async with self.clients[pool].stream(
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
        finally:
            self._busy[pool] -= 1
        outcome.latency_ms = int((time.perf_counter() - started) * 1000)
        ATTEMPT_SECONDS.observe(outcome.latency_ms / 1000)
        return outcome

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


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
        # With a backlog, claim again once this many slots are free, not for each one:
        # a claim is a transaction, and a batch costs little more than one row.
        self.refill = max(1, self.concurrency // 4)
        # The lease outlives the longest attempt (its timeout) and its recording by a
        # margin, so a live worker never loses a claim it is still sending; a killed
        # worker's claims come back when it passes.
        self.lease = timedelta(seconds=2 * settings.timeout_seconds + 10)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        # Slots in use: runs in flight, and room reserved for or handed by commits.
        self._room = threading.Lock()
        self._used = 0
        self._accepting = False
        # Handed over by commits, to be sent (touched on the loop only).
        self._handed: list[tuple[Reservation, list[Handed]]] = []
        # Set when a commit hands some over (apart from `_wake`, which means: claim).
        self._arrived: asyncio.Event | None = None

    # --- Hand-off from this process's commits (outbox.Taker; thread-safe) ---

    def reserve(self, count: int) -> Reservation | None:
        """Room for up to `count` deliveries a transaction is writing, leased to this worker."""
        with self._room:
            granted = min(count, self.concurrency - self._used)
            if not self._accepting or granted <= 0:
                return None
            self._used += granted
        at = now()
        return Reservation(token=new_id("lease"), lease_until=at + self.lease, count=granted)

    def unreserve(self, reservation: Reservation) -> None:
        """The transaction rolled back: nothing comes."""
        self._free(reservation.count)

    def take(self, reservation: Reservation, handed: list[Handed]) -> None:
        """The transaction committed these, leased to this worker: send them."""
        self._free(reservation.count - len(handed))
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # their lease passes, and a claim takes them
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._accept, reservation, handed)

    def _accept(self, reservation: Reservation, handed: list[Handed]) -> None:
        self._handed.append((reservation, handed))
        if self._arrived is not None:
            self._arrived.set()

    def _free(self, slots: int) -> None:
        if slots:
            with self._room:
                self._used -= slots

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
        wake = self._wake = asyncio.Event()
        wake.set()
        arrived = self._arrived = asyncio.Event()
        sender = sender or Sender(self.settings)
        # A commit's wake-up: the signal of this process, at once; on PostgreSQL also its
        # NOTIFY, which reaches the workers of every process.
        listener = None
        if self.db.dialect == "postgresql":
            listener = asyncio.create_task(self._listen())
        unsubscribe = outbox.on_commit(self.wake)
        with self._room:
            self._accepting = True
        unhand = outbox.hand_to(self.db.engine, self)
        outcomes: asyncio.Queue[Outcome | Unsent | RunOver] = asyncio.Queue()
        recorder = asyncio.create_task(self._record_loop(outcomes))
        in_flight: set[asyncio.Task[None]] = set()

        def start(run: list[Job]) -> None:
            """Send a run in a task of its own, in a slot already counted."""
            task = asyncio.create_task(self._send_run(sender, run, outcomes))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            task.add_done_callback(lambda _: self._free(1))

        # The last claim took as many as it asked for: more may be due.
        backlog = False
        next_due: datetime | None = None
        try:
            while not self._stopping:
                if self._handed:
                    arrived.clear()
                    handed, self._handed = self._handed, []
                    try:
                        jobs = await asyncio.to_thread(self._prepare, handed)
                    except Exception:
                        # Their leases pass, and a claim takes them.
                        log.exception("preparing handed webhook deliveries failed")
                        self._free(sum(len(h) for _, h in handed))
                        continue
                    for job in jobs:
                        start([job])
                    continue
                with self._room:
                    free = self.concurrency - self._used
                    claiming = free > 0 and (wake.is_set() or (backlog and free >= self.refill))
                    if claiming:
                        self._used += free
                if claiming:
                    wake.clear()
                    try:
                        runs, next_due = await asyncio.to_thread(self._claim, free)
                    except Exception:
                        self._free(free)
                        log.exception("webhook claim failed")
                        await asyncio.sleep(self.settings.poll_seconds)
                        wake.set()
                        continue
                    self._free(free - len(runs))
                    for run in runs:
                        start(run)
                    backlog = len(runs) == free
                    continue
                # Wait for a wake-up (a commit, an ordered run's recording, stop), the
                # next retry's time or the poll; with a backlog, for free slots too.
                timeout = self.settings.poll_seconds
                if next_due is not None:
                    timeout = max(min(timeout, (next_due - now()).total_seconds()), 0)
                woken = asyncio.create_task(wake.wait())
                handed_over = asyncio.create_task(arrived.wait())
                waiting = {woken, handed_over, *in_flight} if backlog else {woken, handed_over}
                done, _ = await asyncio.wait(
                    waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                woken.cancel()
                handed_over.cancel()
                if not done:
                    wake.set()
        finally:
            unhand()
            unsubscribe()
            with self._room:
                self._accepting = False
            # Handed over but not started: given back, for any worker to claim.
            for reservation, handed in self._handed:
                for h in handed:
                    outcomes.put_nowait(Unsent(_unsent_job(reservation, h)))
            self._handed = []
            if in_flight:
                await asyncio.wait(in_flight, timeout=self.settings.timeout_seconds + 1)
            await outcomes.join()
            recorder.cancel()
            if listener is not None:
                listener.cancel()
            await sender.close()

    async def _send_run(
        self, sender: Sender, run: list[Job], outcomes: asyncio.Queue[Outcome | Unsent | RunOver]
    ) -> None:
        """Send a run one after another; an unordered delivery is a run of one. A
        delivery goes only after the one before it succeeded; after one that did not,
        or when the lease is running out, the rest are given back unsent.

        A run's outcomes go to the recorder together when it ends: recorded while the
        run goes on, the recorder's thread would hold the interpreter while each next
        response arrives (an ordered run sends one at a time). The end of an ordered
        run wakes the loop once it is recorded, for the endpoint's next."""
        results: list[Outcome | Unsent] = []
        try:
            await self._send_each(sender, run, results)
        finally:
            for result in results:
                outcomes.put_nowait(result)
            if run and run[0].ordered:
                outcomes.put_nowait(RunOver())

    async def _send_each(
        self, sender: Sender, run: list[Job], results: list[Outcome | Unsent]
    ) -> None:
        for n, job in enumerate(run):
            if job.lease_ends - time.monotonic() < self.settings.timeout_seconds + (
                LEASE_MARGIN_SECONDS
            ):
                results.append(Unsent(job))
                continue
            outcome = await sender.send(job)
            results.append(outcome)
            if not outcome.succeeded:
                results.extend(Unsent(rest) for rest in run[n + 1 :])
                return

    async def _record_loop(self, outcomes: asyncio.Queue[Outcome | Unsent | RunOver]) -> None:
        while True:
            batch = [await outcomes.get()]
            while not outcomes.empty():
                batch.append(outcomes.get_nowait())
            items = [item for item in batch if not isinstance(item, RunOver)]
            try:
                if items:
                    await asyncio.to_thread(self._record, items)
            except Exception:
                # The leases pass and the deliveries are attempted again: at least once.
                log.exception("recording webhook attempts failed", count=len(items))
            finally:
                for _ in batch:
                    outcomes.task_done()
            # An ordered run is recorded: its endpoint's next delivery is first in line.
            if self._wake is not None and len(items) < len(batch):
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

    def _prepare(self, handed: list[tuple[Reservation, list[Handed]]]) -> list[Job]:
        """Jobs of deliveries handed over by commits: their accounts' signing secrets are
        read (a statement each, outside a transaction on PostgreSQL), the rest came with
        them."""
        accounts_of = {h.account_id for _, batch in handed for h in batch}
        with self.db.transaction(write=False, statements_alone=True) as session:
            secrets = {
                account_id: accounts.signing_secrets(
                    session=session, keyring=self.keyring, account_id=account_id
                )
                for account_id in accounts_of
            }
        at = now()
        started = time.monotonic()
        jobs = [
            Job(
                delivery_id=h.delivery_id,
                token=reservation.token,
                message_id=h.message_id,
                endpoint_id=h.endpoint_id,
                url=h.url,
                body=body_of(h),
                secrets=secrets[h.account_id],
                attempt_count=0,
                lease_ends=started + (reservation.lease_until - at).total_seconds(),
            )
            for reservation, batch in handed
            for h in batch
        ]
        HANDED.inc(len(jobs))
        return jobs

    def _claim(self, limit: int) -> tuple[list[list[Job]], datetime | None]:
        token = new_id("lease")
        at = now()
        lease_ends = time.monotonic() + self.lease.total_seconds()
        runs: list[list[Job]] = []
        with self.db.transaction() as session:
            claimed = repository.claim(
                session,
                now=at,
                limit=limit,
                run_length=RUN_LENGTH,
                lease_until=at + self.lease,
                token=token,
            )
            secrets: dict[str, list[str]] = {}
            deferred: dict[str, int] = {}
            for rows in claimed:
                head = rows[0]
                if head.rate_limit_per_second > 0:
                    # A run of one (repository.claim).
                    interval = 1 / head.rate_limit_per_second
                    free_at = repository.take_send_slot(
                        session, endpoint_id=head.endpoint_id, now=at, interval_seconds=interval
                    )
                    if free_at is not None:
                        # Back in line, each a slot after the one before, so they do
                        # not all come back at once for the one free slot.
                        waiting = deferred[head.endpoint_id] = deferred.get(head.endpoint_id, 0) + 1
                        repository.release(
                            session,
                            delivery_id=head.id,
                            token=token,
                            at=free_at + timedelta(seconds=interval * (waiting - 1)),
                        )
                        continue
                if head.account_id not in secrets:
                    secrets[head.account_id] = accounts.signing_secrets(
                        session=session, keyring=self.keyring, account_id=head.account_id
                    )
                runs.append(
                    [
                        Job(
                            delivery_id=row.id,
                            token=token,
                            message_id=row.message_id,
                            endpoint_id=row.endpoint_id,
                            url=row.url,
                            body=body_of(row),
                            secrets=secrets[row.account_id],
                            attempt_count=row.attempt_count,
                            ordered=row.seq is not None,
                            lease_ends=lease_ends,
                        )
                        for row in rows
                    ]
                )
            next_due = repository.next_due(session, after=at)
        return runs, next_due

    def _record(self, batch: list[Outcome | Unsent]) -> None:
        at = now()
        schedule = self.settings.retry_schedule
        results: dict[str, str] = {}
        outcomes: list[tuple[str, dict[str, Any]]] = []
        attempts: list[dict[str, Any]] = []
        sent: list[Outcome] = []
        for item in batch:
            if isinstance(item, Unsent):
                continue
            sent.append(item)
            job = item.job
            attempts_made = job.attempt_count + 1
            status, next_attempt_at = repository.PENDING, None
            if item.succeeded:
                status, result = repository.COMPLETED, "completed"
            elif item.status_code == 410:
                status, result = repository.FAILED, "gone"
            elif attempts_made > len(schedule):
                status, result = repository.FAILED, "failed"
            else:
                delay = schedule[attempts_made - 1] * random.uniform(1 - JITTER, 1 + JITTER)
                if item.retry_after is not None:
                    delay = item.retry_after
                next_attempt_at, result = at + timedelta(seconds=delay), "retrying"
            results[job.delivery_id] = result
            outcomes.append(
                (
                    job.token,
                    {
                        "id": job.delivery_id,
                        "status": status,
                        "next_attempt_at": next_attempt_at,
                        "attempt_count": attempts_made,
                        "last_attempt_at": item.attempted_at,
                        "http_status_code": item.status_code,
                        "error_message": item.error,
                        "latency_ms": item.latency_ms,
                        "response_headers": item.headers,
                        "response_content_length": item.content_length,
                    },
                )
            )
            attempts.append(
                {
                    "id": new_id("whatt"),
                    "delivery_id": job.delivery_id,
                    "attempted_at": item.attempted_at,
                    "http_status_code": item.status_code,
                    "error_message": item.error,
                    "latency_ms": item.latency_ms,
                }
            )
        with self.db.transaction() as session:
            repository.lock_endpoints(session, {item.job.endpoint_id for item in batch})
            repository.release_unsent(
                session,
                [(i.job.delivery_id, i.job.token) for i in batch if isinstance(i, Unsent)],
            )
            recorded = repository.record_attempts(session, outcomes, attempts)
            succeeded: set[str] = set()
            failed: set[str] = set()
            gone: dict[str, str] = {}
            for outcome in sent:
                job = outcome.job
                if job.delivery_id not in recorded:
                    continue
                (succeeded if outcome.succeeded else failed).add(job.endpoint_id)
                if outcome.status_code == 410:
                    gone[job.endpoint_id] = "the endpoint answered 410 Gone"
            disabled = repository.endpoint_results(
                session,
                succeeded=sorted(succeeded),
                failed=sorted(failed - succeeded),
                gone=gone,
                at=at,
                disable_after=timedelta(seconds=self.settings.disable_after_seconds),
            )
            if disabled:
                webhooks.disabled_by_worker(session=session, reasons=disabled)
        for delivery_id in recorded:
            ATTEMPTS.labels(results[delivery_id]).inc()


def _unsent_job(reservation: Reservation, handed: Handed) -> Job:
    """What giving a handed delivery back takes (its id and lease token)."""
    return Job(
        delivery_id=handed.delivery_id,
        token=reservation.token,
        message_id=handed.message_id,
        endpoint_id=handed.endpoint_id,
        url=handed.url,
        body=b"",
        secrets=[],
        attempt_count=0,
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
