"""The bench's verdicts on the issue's targets: each bound, its figure, met or not."""

from __future__ import annotations

from typing import Any

from bench import report, targets


def _latency(rate: float, p50: float, p99: float) -> dict[str, Any]:
    return {"mode": "listen/notify", "rate": rate, "latency_ms": {"p50": p50, "p99": p99}}


RESULTS: dict[str, Any] = {
    "meta": {"server": "PostgreSQL 16 (test)"},
    "latency": [
        _latency(200.0, 1.4, 3.2),
        _latency(1000.0, 2.0, 4.9),
        {"mode": "poll 1s", "rate": 200.0, "latency_ms": {"p50": 500.0, "p99": 990.0}},
    ],
    "floor": [{"rate": 200.0, "call_ms": {"p99": 1.5}}],
    "drain": [
        {"round": 1, "processes": 1, "jobs_per_s": 16_000.0},
        {"round": 1, "processes": 2, "jobs_per_s": 15_000.0},
        {"round": 2, "processes": 1, "jobs_per_s": 12_000.0},
    ],
    "enqueue": {
        "notify_ratio_8": 0.89, "notify_ratio_8_rounds": [0.95, 0.89, 0.7],
        "notify_ratio_rounds": {}, "bulk_jobs_per_s": 100_000.0,
    },
    "backlog": [{"queued": 10_000, "cycle_ms": 2.0}, {"queued": 1_000_000, "cycle_ms": 3.2}],
}  # fmt: skip


def test_each_target_is_judged_on_its_own_figure() -> None:
    got = {v.target: (v.measured, v.met, v.note) for v in targets.verdicts(RESULTS)}
    assert got == {
        "latency at 200 jobs/s, p50 <= 1.5 ms": ("1.40 ms", True, "floor p99 1.50 ms"),
        "latency at 200 jobs/s, p99 <= 3 ms": ("3.20 ms", False, "floor p99 1.50 ms"),
        "latency at 1,000 jobs/s, p99 <= 5 ms": ("4.90 ms", True, ""),
        "drain, 1 process >= 15,000 jobs/s": ("16,000", True, ""),
        "drain, 2 processes more than 1": ("0.94x", False, "best of each"),
        "8 producers, notify / no notify >= 0.9": ("0.89", False, "median of 3 rounds"),
        "bulk enqueue >= 100,000 jobs/s": ("100,000", True, ""),
        "claim cost at 1,000,000 queued <= 1.5x at 10,000": ("1.60x", False, ""),
    }


def test_only_the_scenarios_that_ran_are_judged_and_the_table_shows_verdict_and_floor() -> None:
    assert targets.verdicts({"meta": {}}) == []
    only_bulk = {"meta": {"server": "x"}, "enqueue": {**RESULTS["enqueue"], "notify_ratio_8": 0.95}}
    assert [v.met for v in targets.verdicts(only_bulk)] == [True, True]
    text = report.targets_table(targets.verdicts(RESULTS))
    assert text.splitlines()[1] == "Targets (issue #4)"
    row = next(line for line in text.splitlines() if line.startswith("latency at 200 jobs/s, p99"))
    assert row.split()[-7:] == ["3.20", "ms", "NO", "floor", "p99", "1.50", "ms"]
