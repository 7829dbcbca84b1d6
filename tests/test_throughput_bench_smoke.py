"""The throughput benchmark end to end, tiny, so the harness cannot rot unnoticed.

It checks what the benchmark writes, never how fast anything was. It runs on the
database the suite runs on: with a PostgreSQL URL, in a database of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import repo_root
from helpers import bench_database

MEASURES = {
    "cheapest_1w",
    "account_1w",
    "cheapest_2w",
    "account_2w",
    "account_ratio_1w",
    "account_ratio_2w",
    "two_workers_account",
    "two_workers_cheapest",
}


@pytest.fixture
def database() -> Iterator[tuple[str, list[str]]]:
    """The database kind and the benchmark's arguments that select it."""
    with bench_database("cadenya_throughput_smoke") as chosen:
        yield chosen


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_throughput_benchmark_reports_every_measure(
    tmp_path: Path, database: tuple[str, list[str]], generator: str
) -> None:
    kind, arguments = database
    env = dict(os.environ)
    if generator == "python":
        # No wrk on PATH and none at /usr/bin: the built-in client's path.
        env["CADENYA_BENCH_NO_WRK"] = "1"
    elif not os.access("/usr/bin/wrk", os.X_OK):
        pytest.skip("wrk is not installed")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.throughput",
            *arguments,
            "--seconds=1",
            "--rounds=1",
            "--connections=2",
            f"--data-dir={tmp_path / 'data'}",
            f"--results-dir={tmp_path / 'results'}",
        ],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "results" / f"throughput-{kind}.json").read_text())
    assert result["database"] == kind
    assert ("wrk" in result["load_generator"]) == (generator == "wrk")
    [measured] = result["rounds"]
    assert set(measured) == MEASURES
    assert all(value > 0 for value in measured.values())
    assert set(result["summary"]) == MEASURES
    assert [t["target"] for t in result["targets"]] == [0.5, 1.5]
    assert all(t["met"] in (True, False) for t in result["targets"])
    assert f"### {kind}:" in done.stdout
