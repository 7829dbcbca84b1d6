"""The console benchmark end to end, tiny, so the harness cannot rot unnoticed.

It checks what the benchmark writes, never how fast anything was, on the database the
suite runs on (with a PostgreSQL URL, in a database of its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import repo_root
from helpers import bench_database
from test_docs import CHROMIUM


def test_console_benchmark_reports_every_target(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        message = f"no browser at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with bench_database("cadenya_console_smoke") as (kind, arguments):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.console",
                *arguments,
                "--profiles=500",
                "--other-accounts=1",
                "--per-account=10",
                "--smiths=60",
                "--scroll-to=55",
                "--runs=2",
                f"--data-dir={tmp_path / 'data'}",
                f"--results-dir={tmp_path / 'results'}",
            ],
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "results" / f"console-{kind}.json").read_text())
    table = (tmp_path / "results" / f"console-{kind}.md").read_text()
    assert table in done.stdout
    assert result["database"] == kind
    assert result["smi_total"] == 60
    assert result["keystroke"]["runs"] == 2
    assert result["keystroke"]["request_p50_ms"] is not None
    assert result["scroll"]["rows_loaded"] >= 55 and result["scroll"]["ms"] > 0
    assert 0 < result["size"]["gzip_bytes"] < result["size"]["raw_bytes"]
    assert len(result["targets"]) == 3
    assert all(isinstance(t["met"], bool) for t in result["targets"])
