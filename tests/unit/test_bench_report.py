"""The bench's report renders every scenario's table, writes JSON and draws the latency PNG."""

from __future__ import annotations

import json
from pathlib import Path

from bench import latency, report
from bench.common import percentiles

RESULTS = {
    "meta": {"server": "PostgreSQL 16 (test)"},
    "latency": [
        {"mode": m, "rate": 200, "achieved_rate": 199.0, "jobs": 3, "exactly_once": True,
         "latency_ms": percentiles([1.0, 2.0, 3.0]), "samples_ms": [1.0, 2.0, 3.0],
         "enqueue_call_ms": percentiles([0.5, 0.75, 1.0]), "after_call_ms": percentiles([0.25, 0.5, 4.5]),
         "after_samples_ms": [-0.1, 0.5, 4.5]}
        for m in ("listen/notify", "poll 1s")
    ],
    "floor": [{"rate": 200, "call_ms": percentiles([0.5, 0.6, 2.5])}],
    "drain": [
        {"round": 1, "processes": 1, "jobs": 10, "seconds": 0.5, "jobs_per_s": 20.0, "exactly_once": False},
        {"round": 1, "processes": 2, "jobs": 10, "seconds": 0.4, "jobs_per_s": 25.0, "exactly_once": True},
        {"round": 2, "processes": 2, "jobs": 10, "seconds": 0.4, "jobs_per_s": 24.0, "exactly_once": True},
        {"round": 2, "processes": 1, "jobs": 10, "seconds": 0.5, "jobs_per_s": 30.0, "exactly_once": True},
    ],
    "enqueue": {
        "best": {"1 producers, notify": 10.0}, "notify_ratio_1": 0.5, "notify_ratio_8": 0.9,
        "bulk_jobs_per_s": 100.0, "single_job_rates": {}, "notify_ratio_8_rounds": [0.91, 0.87],
        "notify_ratio_rounds": {"no notify, 8 producers": [0.91, 0.87]}, "notify_ratio_8_of_best": 0.84,
        "exactly_once": False,
    },
    "backlog": [
        {"queued": 10, "cycle_ms": 2.0, "jobs_per_s": 50.0},  # before the check: no verdict
        {"queued": 100, "cycle_ms": 3.0, "jobs_per_s": 33.0, "exactly_once": True},
    ],
    "cost": {"jobs": 3, "transactions_per_job": 7.0, "wal_bytes_per_job": 1000.0,
             "notifications_per_job": 1.0, "hand_overs_per_job": 0.25, "exactly_once": True},
}  # fmt: skip


def test_render_shows_every_scenario_and_flags_a_failed_exactly_once_check() -> None:
    text = report.render(RESULTS)
    for title in ("Latency", "Floor", "Drain", "Enqueue", "Backlog", "Cost per job"):
        assert title in text
    floor_row = text.split("Floor")[1].splitlines()[3]
    assert floor_row.split() == ["200", "0.60", "2.12", "2.46", "2.50"]
    assert "1.50x" in text
    latency_row = next(line for line in text.splitlines() if line.startswith("listen/notify"))
    # call p50, call p99, after p50, after p99: the producer's part and the worker's part
    assert latency_row.split()[-5:-1] == ["0.75", "0.99", "0.50", "4.42"]
    assert "0.91, 0.87" in text
    enqueue = text.split("Enqueue")[1].split("Backlog")[0]
    assert "median of each round's own" in enqueue
    assert "best rate over best rate" in enqueue
    assert "0.84" in enqueue
    once = next(line for line in enqueue.splitlines() if line.startswith("each job ran exactly once"))
    assert once.split()[-1] == "NO"
    backlog = [line.split() for line in text.split("Backlog")[1].split("Cost per job")[0].splitlines()]
    rows = [cells for cells in backlog if cells and cells[0] in ("10", "100")]
    assert [cells[-1] for cells in rows] == ["-", "yes"]
    assert "hand_overs_per_job" in text.split("Cost per job")[1]
    assert "Targets (issue #4)" in text.split("Cost per job")[1]
    drain = text.split("Drain")[1].split("Enqueue")[0]
    assert "NO" in drain
    # the best of each process count, and each round's two over one in its own order
    assert "best jobs/s by processes: 1: 30, 2: 25" in drain
    assert "each round: 1.25, 0.80" in drain


def test_json_omits_raw_samples_and_the_plot_is_a_png(tmp_path: Path) -> None:
    report.write_json(RESULTS, tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert not {"samples_ms", "after_samples_ms"} & set(saved["latency"][0])
    assert saved["latency"][0]["after_call_ms"]["max"] == 4.5
    assert report.plot(RESULTS, tmp_path / "l.png")
    assert (tmp_path / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not report.plot({"meta": {}}, tmp_path / "none.png")


def test_percentiles_of_one_to_a_hundred() -> None:
    cuts = percentiles([float(v) for v in range(1, 101)])
    assert (round(cuts["p50"]), round(cuts["p99"]), cuts["max"]) == (50, 99, 100.0)


def test_a_rates_warm_up_jobs_are_left_out_of_what_is_measured() -> None:
    warm = latency.warmup_jobs(200)
    assert warm == 200 * latency.WARMUP_SECONDS
    by_job = {n: (50.0 if n < warm else float(n % 7)) for n in range(warm + 1000)}
    kept = latency.measured(by_job, 200)
    assert len(kept) == 1000
    assert kept == sorted(kept)
    assert max(kept) == 6.0
    assert latency.warmup(by_job, 200) == [50.0] * warm
