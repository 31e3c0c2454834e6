"""`python -m bench --quick` end to end: every scenario runs with real worker processes, checks that
each job ran exactly once and says so, writes its JSON and plot, and ends with the issue's targets.

The figures themselves are not asserted: they belong to bench/ runs on a known machine, not to a test
on a shared one (docs/benchmarks.md). A missed target prints NO and a failed exactly-once check
prints no, and the bench still exits 0 (it reports; it does not judge), so the test reads the
verdicts from the JSON; a scenario that cannot finish (a timeout, a dead worker) exits non-zero.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notifyq import devdb
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

SCENARIOS = {"latency", "floor", "drain", "enqueue", "backlog", "cost"}
TARGETS = 8  # bench/targets.py: three latency, two drain, ratio, bulk, backlog
VERDICT = re.compile(r"\s(yes|NO)(\s|$)")


def _run_quick_bench(server_url: str, database: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": server_url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--database", database]
    return subprocess.run(
        command, check=False, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900
    )


def _exactly_once_checks(results: dict[str, Any]) -> list[object]:
    return [
        *(run["exactly_once"] for run in results["latency"]),
        *(run["exactly_once"] for run in results["drain"]),
        results["enqueue"]["exactly_once"],
        *(run["exactly_once"] for run in results["backlog"]),
        results["cost"]["exactly_once"],
    ]


def _database_exists(server_url: str, name: str) -> bool:
    with psycopg.connect(server_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def test_the_quick_bench_runs_every_scenario_and_checks_each_job_ran_once(
    pg_server: devdb.DevDatabase, tmp_path: Path
) -> None:
    database = f"notifyq_bench_{uuid.uuid4().hex[:12]}"
    run = _run_quick_bench(pg_server.url, database, tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]

    (written,) = tmp_path.glob("bench-*.json")
    results = json.loads(written.read_text())
    assert results.keys() >= SCENARIOS
    modes = {(r["mode"], r["rate"]) for r in results["latency"]}
    assert {mode for mode, _ in modes} == {"listen/notify", "poll 1s", "poll 100ms"}
    assert len(modes) == 9  # three modes at three rates
    checks = _exactly_once_checks(results)
    assert len(checks) > len(SCENARIOS)
    assert all(check is True for check in checks)
    assert list(tmp_path.glob("latency-*.png"))

    report = run.stdout
    assert "each job ran exactly once (every run, bulk included)" in report
    targets = report[report.index("Targets (issue #4)") :].splitlines()
    assert sum(1 for line in targets if VERDICT.search(line)) == TARGETS
    assert not _database_exists(pg_server.url, database)
