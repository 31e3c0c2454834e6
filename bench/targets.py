"""The performance targets of the bench's issue (#4), checked against one run's results.

The report prints them last, one line each: the bound, the figure, met or not. Beside a latency
target goes the floor's p99 at that rate (a bare durable insert on the same machine, no job running):
where it is already over the bound, the machine left no room for any queue to meet it. Latency
run in rounds is judged on the median of its rounds' figures, as the notification ratio is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench import drain

LATENCY = [(200.0, "p50", 1.5), (200.0, "p99", 3.0), (1000.0, "p99", 5.0)]  # rate, percentile, ms
DRAIN_ONE = 15_000.0  # jobs/s, one worker process
BULK = 100_000.0  # jobs/s
BACKLOG_GROWTH = 1.5  # claim cost at the largest backlog over the smallest
NOTIFY_RATIO = 0.9  # 8 producers, with notifications over without


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool
    note: str = ""


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    """A verdict for each target whose scenario ran."""
    return [*_latency(results), *_drain(results), *_enqueue(results), *_backlog(results)]


def _latency(results: dict[str, Any]) -> Iterator[Verdict]:
    runs = {r["rate"]: r for r in results.get("latency", []) if r["mode"] == "listen/notify"}
    floors = {r["rate"]: r["call_ms"]["p99"] for r in results.get("floor", [])}
    for rate, percentile, bound in LATENCY:
        if rate not in runs:
            continue
        value = runs[rate]["latency_ms"][percentile]
        rounds = len(runs[rate].get("rounds", []))
        notes = [f"median of {rounds} rounds"] if rounds else []
        notes += [f"floor p99 {floors[rate]:.2f} ms"] if rate in floors else []
        note = ", ".join(notes)
        target = f"latency at {rate:,.0f} jobs/s, {percentile} <= {bound:g} ms"
        yield Verdict(target, f"{value:.2f} ms", value <= bound, note)


def _drain(results: dict[str, Any]) -> Iterator[Verdict]:
    best = drain.best_by_processes(results.get("drain", []))
    if 1 in best:
        yield Verdict(f"drain, 1 process >= {DRAIN_ONE:,.0f} jobs/s", f"{best[1]:,.0f}", best[1] >= DRAIN_ONE)
    if {1, 2} <= best.keys():
        ratio = best[2] / best[1]
        yield Verdict("drain, 2 processes more than 1", f"{ratio:.2f}x", ratio > 1, "best of each")


def _enqueue(results: dict[str, Any]) -> Iterator[Verdict]:
    e = results.get("enqueue")
    if e is None:
        return
    ratio = e["notify_ratio_8"]
    rounds = len(e.get("notify_ratio_8_rounds", []))
    how = f"median of {rounds} round{'s' * (rounds != 1)}" if "notify_ratio_rounds" in e else "best over best"
    target = f"8 producers, notify / no notify >= {NOTIFY_RATIO:g}"
    yield Verdict(target, f"{ratio:.2f}", ratio >= NOTIFY_RATIO, how)
    bulk = e["bulk_jobs_per_s"]
    yield Verdict(f"bulk enqueue >= {BULK:,.0f} jobs/s", f"{bulk:,.0f}", bulk >= BULK)


def _backlog(results: dict[str, Any]) -> Iterator[Verdict]:
    runs = results.get("backlog", [])
    if len(runs) < 2:
        return
    small, large = runs[0], runs[-1]
    growth = large.get("vs_smallest", large["cycle_ms"] / small["cycle_ms"])  # in rounds since 2026-12-04
    target = f"claim cost at {large['queued']:,} queued <= {BACKLOG_GROWTH:g}x at {small['queued']:,}"
    rounds = len(large.get("vs_smallest_rounds", []))
    note = f"median of {rounds} rounds" if rounds > 1 else ""
    yield Verdict(target, f"{growth:.2f}x", growth <= BACKLOG_GROWTH, note)
