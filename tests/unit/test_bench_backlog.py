"""The backlog scenario in rounds: each size's figure is the median of its rounds', and its ratio
to the smallest the median of each round's own (not the ratio of the two medians)."""

from __future__ import annotations

from bench import backlog, report, targets


def _runs(*cycle_ms: float) -> list[dict[str, object]]:
    return [{"cycle_ms": ms, "jobs": 100, "exactly_once": True} for ms in cycle_ms]


def test_a_sizes_ratio_is_the_median_of_each_rounds_own() -> None:
    # round 2 is slow for both sizes alike; round 3's large size alone is slow
    by_size = {10: _runs(2.0, 4.0, 2.0), 1000: _runs(2.2, 4.4, 6.0)}
    small, large = backlog.summarize([10, 1000], by_size)
    assert large["rounds_ms"] == [2.2, 4.4, 6.0]
    assert large["cycle_ms"] == 4.4  # the median round
    assert [round(r, 2) for r in large["vs_smallest_rounds"]] == [1.1, 1.1, 3.0]
    assert round(large["vs_smallest"], 2) == 1.1  # 4.4 / 2.0 = 2.2 as a ratio of the medians
    assert small["vs_smallest"] == 1.0
    assert large["jobs"] == 300
    assert large["exactly_once"] is True


def test_the_target_and_the_table_take_the_rounds_ratio_and_a_failed_round_fails_the_check() -> None:
    by_size = {10: _runs(2.0, 4.0, 2.0), 1000: _runs(2.2, 4.4, 6.0)}
    by_size[1000][1]["exactly_once"] = False
    results = backlog.summarize([10, 1000], by_size)
    (verdict,) = targets.verdicts({"meta": {}, "backlog": results})
    assert (verdict.measured, verdict.met, verdict.note) == ("1.10x", True, "median of 3 rounds")
    text = report.backlog_table(results)
    assert "1,000 queued over the smallest, each round: 1.10x, 1.10x, 3.00x" in text
    large_row = next(line.split() for line in text.splitlines() if line.startswith("1,000 "))
    assert large_row == ["1,000", "4.40", "22,727", "1.10x", "NO"]
