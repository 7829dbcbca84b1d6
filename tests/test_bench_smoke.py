"""The search benchmark end to end on tiny data, so the harness cannot rot unnoticed.

It checks what the benchmark writes, never how fast anything was. It runs on
the database the suite runs on: with a PostgreSQL URL, in a database of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conftest import repo_root
from helpers import bench_database

# The query shapes issue #3 asks the benchmark to measure.
SHAPES = [
    "empty",
    "one_letter",
    "two_letters",
    "common_trigram",
    "email_domain",
    "full_name",
    "rare",
    "no_match",
    "non_ascii_zoe",
    "non_ascii_luk",
    "with_type",
    "with_label",
]
# Issue #17's: long needles matching many profiles, alone, with a type and with a label.
SHAPES += [
    f"long_{kind}{combined}"
    for kind in ("surname", "domain", "domain_dot", "local_part", "address", "mixed_case")
    for combined in ("", "_type", "_label")
]
# And what a hostile reviewer tries next (bench/search.py).
SHAPES += ["long_grams_apart", "long_four_filtered"]
PROFILES = 3000
RUNS = 2
# Small pages, so that a 200th page exists for the broad shapes of this small data set.
LIMIT = 10
STATS = {"samples", "p50_ms", "p99_ms", "min_ms", "max_ms", "mean_ms"}


@pytest.fixture
def database() -> Iterator[tuple[str, list[str]]]:
    """The database kind and the benchmark's arguments that select it."""
    with bench_database("cadenya_bench_smoke") as chosen:
        yield chosen


def run_benchmark(tmp_path, kind: str, arguments: list[str], *extra: str) -> tuple[dict, str]:
    """Run `python -m bench.search` as a user would; its JSON results and Markdown table."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.search",
            *arguments,
            f"--profiles={PROFILES}",
            "--other-accounts=2",
            "--per-account=200",
            f"--runs={RUNS}",
            f"--limit={LIMIT}",
            f"--data-dir={tmp_path / 'data'}",
            f"--results-dir={tmp_path / 'results'}",
            *extra,
        ],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "results" / f"search-{kind}.json").read_text())
    table = (tmp_path / "results" / f"search-{kind}.md").read_text()
    assert table in done.stdout
    return result, table


def test_benchmark_runs_end_to_end_and_reports_every_shape(tmp_path, database):
    kind, arguments = database
    result, table = run_benchmark(tmp_path, kind, arguments)

    assert result["database"] == kind
    assert result["dataset"]["profiles"] == PROFILES
    assert result["dataset"]["reused"] is False
    assert result["load"]["main_profiles"] == PROFILES
    assert result["load"]["main_import_seconds"] > 0

    shapes = {shape["key"]: shape for shape in result["shapes"]}
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert list(shapes) == SHAPES
    for key, shape in shapes.items():
        # The search and the naive scan answer alike: otherwise the speed-up means nothing.
        assert shape["agrees"], key
        assert shape["total"] == shape["baseline_total"], key
        for measured in (shape["api"]["first"], shape["sql"]["first"], shape["baseline"]["first"]):
            assert set(measured) == STATS
            assert measured["samples"] == RUNS
            assert 0 < measured["p50_ms"] <= measured["p99_ms"]
        has_next = shape["total"] > LIMIT
        assert (shape["api"]["next"] is not None) == has_next, key
        assert (shape["sql"]["next"] is not None) == has_next, key
        assert (shape["api"]["page200"] is not None) == (shape["total"] > 199 * LIMIT), key
        query = f"`{shape['query']}`" if shape["query"] else '`""`'
        assert any(row.startswith(f"| {shape['title']} | {query}") for row in rows), key

    # The main account holds the data set plus its admin and the admin's API key.
    assert shapes["empty"]["total"] == PROFILES + 2
    assert shapes["empty"]["api"]["page200"] is not None
    assert shapes["no_match"]["total"] == 0
    assert shapes["rare"]["total"] == 1
    for key in ("email_domain", "full_name", "non_ascii_zoe", "non_ascii_luk", "with_type"):
        assert shapes[key]["total"] > 0, key
    for key in ("surname", "domain", "domain_dot", "address", "mixed_case"):
        assert shapes[f"long_{key}"]["total"] > 0, key
    assert shapes["long_address"]["total"] == 1

    profiles = next(t for t in result["sizes"]["tables"] if t["name"] == "profiles")
    assert profiles["table_bytes"] > 0
    assert result["sizes"]["search_index_bytes"] > 0
    targets = result["targets"]
    assert len(targets) == 9
    assert all(target["met"] in (True, False, None) for target in targets)
    assert "Targets of issue #3" in table
    # The machine's state next to the numbers: its speed, and the server's floor.
    assert all(seconds > 0 for seconds in result["environment"]["yardstick_seconds"])
    floor = result["environment"]["healthz_p50_ms"]
    assert len(floor) == 2 and all(ms > 0 for ms in floor)
    assert "GET /healthz" in table

    picked = ["empty", "long_domain_label"]
    again, _ = run_benchmark(tmp_path, kind, arguments, "--reuse", f"--shapes={','.join(picked)}")
    assert again["dataset"]["reused"] is True
    assert again["load"] == result["load"]
    assert [s["key"] for s in again["shapes"]] == picked
    assert [s["total"] for s in again["shapes"]] == [shapes[key]["total"] for key in picked]


def test_scim_benchmark_runs_end_to_end(tmp_path, database):
    """bench.scim on tiny data: every call measured, the target judged, the table written."""
    kind, arguments = database
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scim",
            *arguments,
            "--profiles=1000",
            "--other-accounts=1",
            "--per-account=100",
            f"--runs={RUNS}",
            f"--data-dir={tmp_path / 'data'}",
            f"--results-dir={tmp_path / 'results'}",
        ],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "results" / f"scim-{kind}.json").read_text())
    assert (tmp_path / "results" / f"scim-{kind}.md").read_text() in done.stdout
    assert set(result["shapes"]) == {
        "user_name_eq",
        "user_name_eq_first_pass",
        "emails_value_eq",
        "user_name_eq_no_match",
        "first_page_count_100",
        "healthz",
        "naive_scan_sql",
    }
    for measured in result["shapes"].values():
        assert set(measured) == STATS and 0 < measured["p50_ms"] <= measured["p99_ms"]
    assert [t["met"] in (True, False) for t in result["targets"]] == [True]
