"""The enqueue scenario's summary: a notify ratio is the median of each round's own ratio."""

from __future__ import annotations

from bench.enqueue import MODES, SAME_WORKER, summarize


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
