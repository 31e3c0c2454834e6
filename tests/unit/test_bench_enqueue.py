"""The enqueue scenario: a notify ratio is the median of each round's own ratio; a round runs
each producer count's modes back to back."""

from __future__ import annotations

from bench.enqueue import MODES, SAME_WORKER, run_order, summarize


def test_ratios_are_the_median_of_each_rounds_own_and_best_over_best_is_kept_apart() -> None:
    notify = [90.0, 50.0, 190.0]  # a bad second round, a fast third one
    same = [100.0, 100.0, 200.0]
    rates = {f"{p} producers, {mode}": same for mode in MODES for p in (1, 8)}
    rates["8 producers, notify"] = notify
    summary = summarize(rates)
    assert summary["notify_ratio_8_rounds"] == [0.9, 0.5, 0.95]
    assert summary["notify_ratio_8"] == 0.9
    assert summary["notify_ratio_8_of_best"] == 0.95
    assert summary["notify_ratios"][f"{SAME_WORKER}, 8 producers"] == 0.9
    assert summary["notify_ratio_1"] == 1.0
    assert summary["best"]["8 producers, notify"] == 190.0


def test_each_producer_counts_modes_run_back_to_back_and_the_first_alternates_by_round() -> None:
    first, second = run_order(0), run_order(1)
    for order in (first, second):
        assert [p for p, _ in order] == [1] * len(MODES) + [8] * len(MODES)
        assert sorted(order) == sorted((p, m) for p in (1, 8) for m in MODES)
    assert [m for p, m in first if p == 8] == list(MODES)
    assert [m for p, m in second if p == 8] == list(reversed(MODES))
