"""The quick fault run as a test: kills, terminated backends, a PostgreSQL restart, a blocked event
loop, a frozen worker under a notification flood, a frozen leader, skewed worker clocks, cron, all
under load; every invariant must hold (see tests/faults/run.py and docs/reliability.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_the_quick_fault_run_keeps_every_invariant() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # it starts its own server
    result = subprocess.run(
        [sys.executable, "-m", "tests.faults.run", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "invariants          all hold" in result.stdout
    sys.stdout.write("\n" + result.stdout)
