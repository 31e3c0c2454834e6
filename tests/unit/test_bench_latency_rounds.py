"""The latency scenario's rounds: each figure the median of the rounds' own, shown and judged so."""

from __future__ import annotations

from typing import Any

from bench import latency, report, targets


def _round(p50: float, p99: float, peak: float, *, once: bool = True, samples: float = 1.0) -> dict[str, Any]:
    return {
        "rate": 200.0, "achieved_rate": 199.0 + p50, "jobs": 2200, "warmup_jobs": 200,
        "exactly_once": once, "latency_ms": {"p50": p50, "p99": p99, "max": peak},
        "samples_ms": [samples, samples * 2],
    }  # fmt: skip


ROUNDS = [_round(1.0, 2.5, 9.0), _round(1.2, 7.9, 30.0, samples=3.0), _round(1.1, 2.9, 12.0)]


def test_a_rate_in_rounds_takes_each_rounds_median_and_the_largest_max() -> None:
    merged = latency.of_rounds(ROUNDS)
    # one busy round (p99 7.9) moves no figure: the median is the middle round's, not a mean
    assert merged["latency_ms"] == {"p50": 1.1, "p99": 2.9, "max": 30.0}
    assert merged["achieved_rate"] == 200.1
    assert (merged["jobs"], merged["warmup_jobs"]) == (6600, 600)
    assert merged["samples_ms"] == [1.0, 1.0, 2.0, 2.0, 3.0, 6.0]  # pooled for the plot
    assert [r["latency_ms"]["p99"] for r in merged["rounds"]] == [2.5, 7.9, 2.9]
    assert "samples_ms" not in merged["rounds"][0]


def test_one_failed_exactly_once_check_fails_the_rate_and_one_round_is_itself() -> None:
    assert latency.of_rounds([*ROUNDS[:2], _round(1.1, 2.9, 12.0, once=False)])["exactly_once"] is False
    assert latency.of_rounds(ROUNDS[:1]) is ROUNDS[0]


def test_the_report_lists_each_round_beside_its_floor_and_the_target_says_median() -> None:
    floors = [{"rate": 200.0, "call_ms": {"p50": 0.5, "p99": p99, "max": 3.0}} for p99 in (1.1, 4.0, 1.3)]
    results = {
        "latency": [{"mode": "listen/notify", **latency.of_rounds(ROUNDS)}],
        "floor": [{"rate": 200.0, **latency.of_rounds(floors)}],
    }
    lines = report.latency_rounds(results["latency"], results["floor"])
    assert lines[1] == (
        "listen/notify at 200/s, p99 of each of its 3 rounds (ms): 2.50, 7.90, 2.90;"
        " the floor's, measured beside each: 1.10, 4.00, 1.30"
    )
    p99 = next(v for v in targets.verdicts(results) if "p99" in v.target)
    assert (p99.measured, p99.met, p99.note) == ("2.90 ms", True, "median of 3 rounds, floor p99 1.30 ms")
