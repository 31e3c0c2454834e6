"""Freeze faults: a worker process stopped (SIGSTOP) while producers keep notifying, and a frozen
leader. A frozen process keeps its connections open, so only the server can end what it holds."""

from __future__ import annotations

import random
import signal

from notifyq import names
from tests.faults.fleet import Run, leader_pid, log, sql, wait_for

# 5,000 notifications of 4 KB: 20 MB, far more than a socket buffer holds, so the frozen worker's
# listener backend blocks sending (ClientWrite) and the notification queue cannot drop them
FLOOD = "SELECT pg_notify('{channel}', 'flood ' || i || repeat('x', 4000)) FROM generate_series(1, 5000) i"
# the victim's listener backend: the session holding its worker's liveness lock
LISTENER_OF = (
    "SELECT l.pid FROM pg_locks l JOIN notifyq.workers w"
    " ON ((l.classid::bigint << 32) | l.objid::bigint) = w.lock_key"
    " WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted AND w.pid = {pid}"
)


def freeze_worker_under_a_flood(run: Run) -> None:
    """Stop a follower, flood its queue's channel; the leader's guard must end the stuck listener."""
    leader = leader_pid(run)
    victim = random.choice([p for p in run.workers if p.pid != leader] or run.workers)
    listener = sql(run.url, LISTENER_OF.format(pid=victim.pid))
    if not listener:
        run.problems.append(f"worker {victim.pid} holds no liveness lock")
        return
    backend = int(str(listener[0][0]))
    victim.send_signal(signal.SIGSTOP)
    try:
        sql(run.url, FLOOD.format(channel=names.queue_channel("notifyq", "faults")))
        if wait_for(lambda: _waiting(run, backend) == "ClientWrite", 15) is None:
            run.problems.append("a frozen worker's listener never blocked on the flood")
            return
        usage = sql(run.url, "SELECT pg_notification_queue_usage()")[0][0]
        # the guard checks every 10 s and ends a listener seen stuck twice in a row
        ended = wait_for(lambda: _waiting(run, backend) is None, 40)
        if ended is None:
            run.problems.append("the leader's guard did not end a stuck listener within 40 s")
            return
        run.timings.setdefault("stuck listener ended (s)", []).append(ended)
        log(f"  notification queue {float(str(usage)):.2%} full; guard ended the listener in {ended:.1f}s")
    finally:
        victim.send_signal(signal.SIGCONT)


def _waiting(run: Run, backend: int) -> str | None:
    """The backend's wait event ('' when not waiting); None once it is gone."""
    rows = sql(run.url, f"SELECT coalesce(wait_event, '') FROM pg_stat_activity WHERE pid = {backend}")
    return str(rows[0][0]) if rows else None


def freeze_leader(run: Run) -> None:
    """Stop the leader; another worker must lead within a few seconds; thawed, it steps down."""
    leader = leader_pid(run)
    frozen = [p for p in run.workers if p.pid == leader]
    if not frozen:
        return
    frozen[0].send_signal(signal.SIGSTOP)
    try:
        took = wait_for(lambda: leader_pid(run) not in (None, leader), 20)
    finally:
        frozen[0].send_signal(signal.SIGCONT)
    if took is None:
        run.problems.append("no other worker took the lead within 20 s of the leader freezing")
        return
    run.timings.setdefault("frozen leader replaced (s)", []).append(took)
    log(f"  another worker led {took:.1f}s after the leader froze")
