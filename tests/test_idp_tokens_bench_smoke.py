"""The IdP token benchmark end to end, tiny, so the harness cannot rot unnoticed.

It checks what the benchmark writes, never how fast anything was, on the database the
suite runs on (with a PostgreSQL URL, in a database of its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import repo_root
from helpers import bench_database

MEASURES = {
    f"{call}_{what}" for call in ("account", "whoami") for what in ("api_key", "idp_token", "ratio")
}


def test_idp_tokens_benchmark_reports_every_measure(tmp_path: Path) -> None:
    with bench_database("cadenya_idp_tokens_smoke") as (kind, arguments):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.idp_tokens",
                *arguments,
                "--seconds=1",
                "--rounds=1",
                "--connections=2",
                f"--data-dir={tmp_path / 'data'}",
                f"--results-dir={tmp_path / 'results'}",
            ],
            cwd=repo_root(),
            # The built-in load client: wrk's path is covered by the throughput smoke test.
            env={**os.environ, "CADENYA_BENCH_NO_WRK": "1"},
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "results" / f"idp-tokens-{kind}.json").read_text())
    assert result["database"] == kind
    [measured] = result["rounds"]
    assert set(measured) == MEASURES == set(result["summary"])
    # Every call answered 2xx (a failure aborts the run), with both credentials.
    assert all(value > 0 for value in measured.values())
    assert [t["target"] for t in result["targets"]] == [0.8, 0.8]
    assert f"### {kind}:" in done.stdout
