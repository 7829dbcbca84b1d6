"""The write benchmark end to end, tiny, so the harness cannot rot unnoticed.

It checks what the benchmark writes, never how fast anything was. It runs on the
database the suite runs on: with a PostgreSQL URL, in a database of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import repo_root
from helpers import bench_database


def test_write_benchmark_reports_both_client_counts_alone_and_during_an_import(
    tmp_path: Path,
) -> None:
    with bench_database("cadenya_writes_smoke") as (kind, arguments):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.writes",
                *arguments,
                "--seconds=0.3",
                "--rounds=1",
                "--seed-profiles=20",
                # Enough that the import outlasts the writes it runs beside.
                "--import-profiles=30000",
                f"--data-dir={tmp_path / 'data'}",
                f"--results-dir={tmp_path / 'results'}",
            ],
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "results" / f"writes-{kind}.json").read_text())
    assert result["database"] == kind
    [measured] = result["rounds"]
    assert set(measured["alone"]) == set(measured["during_import"]) == {"1", "8"}
    assert all(w["profiles_per_second"] > 0 for w in measured["alone"].values())
    assert measured["import_seconds"] > 0
    assert f"## Profile writes: {kind}" in done.stdout
