"""The report: a table on stdout, the raw figures as JSON, and a PNG of the latency distributions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import drain, targets


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    widths = (
        [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        if rows
        else [len(h) for h in headers]
    )
    lines = [f"\n{title}", _row(headers, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(r, widths) for r in rows]
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    parts = [f"notifyq bench — {results['meta']['server']}"]
    if "latency" in results:
        rows = [
            [
                r["mode"],
                f"{r['rate']:g}",
                f"{r['achieved_rate']:.0f}",
                *(f"{r['latency_ms'][k]:.2f}" for k in ("p50", "p90", "p99", "max")),
                *(f"{r.get('enqueue_call_ms', {}).get(k, 0):.2f}" for k in ("p50", "p99")),
                *(f"{r.get('after_call_ms', {}).get(k, 0):.2f}" for k in ("p50", "p99")),
                _yes(r["exactly_once"]),
            ]
            for r in results["latency"]
        ]
        headers = ["mode", "offered/s", "achieved/s", "p50", "p90", "p99", "max", "call p50", "call p99"]
        headers += ["after p50", "after p99"]
        parts.append(
            table(
                "Latency, enqueue to start (ms), each rate after a warm-up of its own (in the JSON, not"
                " here); call: the enqueue call alone (insert and commit); after: from the call's return"
                " to the handler's start (the worker's part)",
                [*headers, "exactly once"],
                rows,
            )
        )
        parts += latency_rounds(results["latency"], results.get("floor", []))
    if "floor" in results:
        rows = [
            [f"{r['rate']:g}", *(f"{r['call_ms'][k]:.2f}" for k in ("p50", "p90", "p99", "max"))]
            for r in results["floor"]
        ]
        parts.append(
            table(
                "Floor (ms): a bare durable insert, one row (a primary key, a jsonb) in its own transaction,"
                " same producers, pacing and warm-up, no job running (beside listen/notify, whose worker"
                " idles meanwhile): what any enqueue call costs on this machine",
                ["offered/s", "p50", "p90", "p99", "max"],
                rows,
            )
        )
    if "drain" in results:
        parts.append(drain_table(results["drain"]))
    if "enqueue" in results:
        parts.append(enqueue_table(results["enqueue"]))
    if "backlog" in results:
        parts.append(backlog_table(results["backlog"]))
    if "cost" in results:
        c = results["cost"]
        # hand-overs are counted since 2026-12-03 (older results lack the key)
        measures = (
            "transactions_per_job",
            "wal_bytes_per_job",
            "notifications_per_job",
            "hand_overs_per_job",
        )
        rows = [[k, f"{c[k]:.2f}"] for k in measures if k in c]
        rows.append(["exactly once", _yes(c["exactly_once"])])
        parts.append(
            table(f"Cost per job ({c['jobs']} jobs, one per transaction)", ["measure", "value"], rows)
        )
    verdicts = targets.verdicts(results)
    if verdicts:
        parts.append(targets_table(verdicts))
    return "\n".join(parts) + "\n"


def latency_rounds(latency: list[dict[str, Any]], floor: list[dict[str, Any]]) -> list[str]:
    """Lines under the latency table for a mode run in rounds: each round's p99, its floor's beside."""
    floors = {f["rate"]: f.get("rounds", []) for f in floor}
    lines = []
    for r in (r for r in latency if "rounds" in r):
        p99 = ", ".join(f"{x['latency_ms']['p99']:.2f}" for x in r["rounds"])
        beside = ", ".join(f"{x['call_ms']['p99']:.2f}" for x in floors.get(r["rate"], []))
        line = f"{r['mode']} at {r['rate']:g}/s, p99 of each of its {len(r['rounds'])} rounds (ms): {p99}"
        lines.append(line + (f"; the floor's, measured beside each: {beside}" if beside else ""))
    if lines:
        lines.insert(0, "(a mode run in rounds shows the median of its rounds' figures, and the largest max)")
    return lines


def targets_table(verdicts: list[targets.Verdict]) -> str:
    rows = [[v.target, v.measured, _yes(v.met), v.note] for v in verdicts]
    return table("Targets (issue #4)", ["target", "measured", "met", ""], rows)


def backlog_table(runs: list[dict[str, Any]]) -> str:
    """One row per size; in rounds (since 2026-12-04), each figure is the median of the rounds'
    and the largest size's ratio to the smallest is printed for each round under the table."""
    rows = [
        [
            f"{r['queued']:,}",
            f"{r['cycle_ms']:.2f}",
            f"{r['jobs_per_s']:,.0f}",
            f"{r.get('vs_smallest', r['cycle_ms'] / runs[0]['cycle_ms']):.2f}x",
            _yes(r["exactly_once"]) if "exactly_once" in r else "-",  # checked since 2026-12-04
        ]
        for r in runs
    ]
    headers = ["queued", "ms/cycle", "jobs/s", "vs smallest", "exactly once"]
    largest = runs[-1]
    each = largest.get("vs_smallest_rounds", [])
    if len(each) < 2:
        return table("Backlog: claim 100 + finish 100", headers, rows)
    title = (
        f"Backlog: claim 100 + finish 100 (median of {len(each)} rounds; vs smallest: of each round's own)"
    )
    listed = ", ".join(f"{v:.2f}x" for v in each)
    return (
        table(title, headers, rows)
        + f"\n{largest['queued']:,} queued over the smallest, each round: {listed}"
    )


def enqueue_table(e: dict[str, Any]) -> str:
    """Best rates, notify ratios (each round's too), bulk, and the exactly-once check."""
    rows = [[k, f"{v:,.0f}"] for k, v in e["best"].items()]
    ratios = e.get("notify_ratios") or {
        "no notify, 1 producer": e["notify_ratio_1"],
        "no notify, 8 producers": e["notify_ratio_8"],
    }
    rows += [[f"ratio notify / {k}", f"{v:.2f}"] for k, v in ratios.items()]
    if e.get("notify_ratio_8_rounds"):
        rounds = ", ".join(f"{r:.2f}" for r in e["notify_ratio_8_rounds"])
        rows += [["same-worker ratio at 8 producers, each round", rounds]]
    if "notify_ratio_8_of_best" in e:  # since 2026-12-04 (later morning)
        of_best = f"{e['notify_ratio_8_of_best']:.2f}"
        rows += [["same-worker, 8 producers: best rate over best rate", of_best]]
    rows += [["bulk enqueue_many", f"{e['bulk_jobs_per_s']:,.0f}"]]
    if "exactly_once" in e:  # checked since 2026-12-04 (later morning)
        rows += [["each job ran exactly once (every run, bulk included)", _yes(e["exactly_once"])]]
    title = "Enqueue (jobs/s: best of interleaved rounds; ratios: " + (
        "median of each round's own)" if "notify_ratio_rounds" in e else "of those best rates)"
    )
    return table(title, ["case", "value"], rows)


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


# per-job figures: the plot draws them, the JSON keeps their percentiles only
RAW = ("samples_ms", "after_samples_ms")
# the left edge of the plot's log axis (ms)
FLOOR_MS = 0.05


def drain_table(runs: list[dict[str, Any]]) -> str:
    """Each drain run in its round, then the best per process count and each round's two over one."""
    rows = [
        [
            str(r.get("round", 1)),
            str(r["processes"]),
            f"{r['jobs']:,}",
            f"{r['seconds']:.2f}",
            f"{r['jobs_per_s']:,.0f}",
            _yes(r["exactly_once"]),
        ]
        for r in runs
    ]
    lines = [table("Drain", ["round", "processes", "jobs", "seconds", "jobs/s", "exactly once"], rows)]
    best = [f"{p}: {rate:,.0f}" for p, rate in drain.best_by_processes(runs).items()]
    lines.append(f"best jobs/s by processes: {', '.join(best)}")
    ratios = drain.two_over_one(runs)
    if ratios:
        lines.append(f"2 processes over 1, each round: {', '.join(f'{v:.2f}' for v in ratios)}")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    slim = {
        **results,
        "latency": [{k: v for k, v in r.items() if k not in RAW} for r in results.get("latency", [])],
    }
    path.write_text(json.dumps(slim, indent=2, default=str))


def plot(results: dict[str, Any], path: Path) -> bool:
    """Latency CDFs per mode, one panel per offered rate; False when there is nothing to plot."""
    latency = results.get("latency", [])
    if not latency:
        return False
    import matplotlib  # noqa: PLC0415 - only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rates = sorted({r["rate"] for r in latency})
    fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 4), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        for r in (r for r in latency if r["rate"] == rate):
            line = _cdf(ax, r["samples_ms"], f"{r['mode']} (p50 {r['latency_ms']['p50']:.1f} ms)")
            if r["mode"] == "listen/notify" and r.get("after_samples_ms"):
                p50 = r["after_call_ms"]["p50"]
                label = f"  its worker's part (p50 {p50:.2f} ms)"
                _cdf(ax, r["after_samples_ms"], label, style="--", color=line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel("enqueue to start (ms, log scale)")
        ax.set_ylabel("fraction of jobs")
        ax.set_title(f"{rate:g} jobs/s offered")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("notifyq: LISTEN/NOTIFY against polling")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _cdf(ax: Any, values: list[float], label: str, *, style: str = "-", color: str | None = None) -> Any:
    """One cumulative distribution. A worker's part can be zero or less (the handler started before
    the producer's call returned): such values sit at the log axis's left edge, FLOOR_MS."""
    shown = sorted(max(v, FLOOR_MS) for v in values)
    ys = [(i + 1) / len(shown) for i in range(len(shown))]
    (line,) = ax.plot(shown, ys, style, label=label, color=color)
    return line
