"""Bursts of concurrent writers: each waits its turn, none is answered 5xx, reads go on."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from cadenya import APIError

from conftest import Server, make_account

WRITERS = 200
# The bound for a read of another account in the middle of a burst.
READ_WITHIN_SECONDS = 1.0


def test_a_burst_of_writers_queues_and_reads_of_another_account_go_on(server: Server) -> None:
    writer = make_account(server, name="Burst", domain="burst.io")
    reader = make_account(server, name="Quiet", domain="quiet.io")
    reading = server.client(reader.api_key)
    # Warm: the reader's key has been used and its last use recorded, as in steady use.
    reading.profiles.whoami()
    start = threading.Barrier(WRITERS + 1)

    def write(n: int) -> int | APIError:
        client = server.client(writer.api_key)
        start.wait()
        try:
            client.workspace_admin.create(metadata={"name": f"Burst {n}"}, spec={})
        except APIError as error:
            return error
        return 200

    with ThreadPoolExecutor(WRITERS) as pool:
        answers = [pool.submit(write, n) for n in range(WRITERS)]
        start.wait()
        # In the middle of the burst: some writers are done, most are waiting.
        while sum(a.done() for a in answers) < WRITERS // 10:
            time.sleep(0.005)
        assert not all(a.done() for a in answers), "the burst ended before the read"
        started = time.perf_counter()
        me = reading.profiles.whoami()
        read_seconds = time.perf_counter() - started
        results = [a.result() for a in answers]

    assert me.profile.metadata.account_id == reader.id
    assert read_seconds < READ_WITHIN_SECONDS, f"the read took {read_seconds:.2f} s"
    errors = [r for r in results if isinstance(r, APIError)]
    assert not [e for e in errors if e.status_code >= 500], errors
    # Anything refused is refused in the contract's shape, with a reason.
    assert all(e.code and e.message for e in errors), errors
    listed = server.http(writer.api_key).get("/v1/account/workspaces", params={"limit": 1})
    assert listed.json()["pagination"]["total"] == 1 + WRITERS - len(errors)
    print(f"\n{WRITERS} writers, {len(errors)} refused; the read took {read_seconds:.3f} s")
