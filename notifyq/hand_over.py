"""When notifyq's own enqueue hands its job over in the insert itself (migrations/0010).

That insert takes an armed worker's slot and writes the job as running for it: one row version
where the insert trigger's hand-over writes two (pgbench, one server: 0.22-0.28 ms a statement
against 0.28-0.33, 384 WAL bytes against 661). When no worker waits, the common case under load
(busy workers claim without being told), the same statement costs more than a plain insert
(pgbench, 8 clients, durable commits: 14-33 % fewer inserts a second). So after an insert that
handed nothing over, a client sends plain inserts to that queue for RETRY_AFTER, then tries again
with one insert: the others it sends meanwhile go plain until that one's answer is back. (Every
producer that found the gate open used to try: eight concurrent producers on a queue nobody
waited on sent the dearer insert for 7-9 % of their jobs, now 1.0-1.4 %; docs/benchmarks.md,
2026-12-04, before midnight.) Once a try hands its job over, every insert on that queue tries
until one misses. Nothing is lost meanwhile: a worker that went idle is handed those jobs by the
trigger, a row version more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from notifyq.models import NewJob

RETRY_AFTER = 0.02
# a try whose answer never came (its call failed) stops holding the others back after this long
TRY_TIMEOUT = 1.0
# a payload longer than this as encoded is not tried: over 7,000 bytes as jsonb text the insert
# hands nothing over (migrations/0010), and a miss it could not help would close the gate
MAX_PAYLOAD = 7000


class HandOverGate:
    """Per client: whether its next enqueue on a queue tries the hand-over insert."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open: set[str] = set()  # queues whose last answered try handed its job over
        self._closed_until: dict[str, float] = {}
        self._trying_since: dict[str, float] = {}  # the one try out on a queue not known open

    def open_for(self, job: NewJob) -> bool:
        """Try it for an unkeyed job due now with a small payload: on a queue whose last try
        handed its job over; else unless a try found no worker less than RETRY_AFTER ago or
        another try's answer is still out."""
        if job.run_at is not None or job.delay or job.idempotency_key is not None:
            return False
        if len(job.payload) > MAX_PAYLOAD:
            return False
        if job.queue in self._open:
            return True
        now = self._clock()
        if now < self._closed_until.get(job.queue, -math.inf):
            return False
        if now < self._trying_since.get(job.queue, -math.inf) + TRY_TIMEOUT:
            return False
        self._trying_since[job.queue] = now
        return True

    def saw(self, job: NewJob, *, handed_over: bool) -> None:
        """What a try for `job` did: a hand-over opens the gate on its queue, a miss closes it for
        RETRY_AFTER."""
        self._trying_since.pop(job.queue, None)
        if handed_over:
            self._open.add(job.queue)
            self._closed_until.pop(job.queue, None)
        else:
            self._open.discard(job.queue)
            self._closed_until[job.queue] = self._clock() + RETRY_AFTER
