"""When notifyq's own enqueue hands its job over in the insert itself (migrations/0010).

That insert takes an armed worker's slot and writes the job as running for it: one row version
where the insert trigger's hand-over writes two (pgbench, one server: 0.22-0.28 ms a statement
against 0.28-0.33, 384 WAL bytes against 661). When no worker waits, the common case under load
(busy workers claim without being told), the same statement costs more than a plain insert
(pgbench, 8 clients, durable commits: 14-33 % fewer inserts a second). So after an insert that
handed nothing over, a client sends plain inserts for RETRY_AFTER, then tries again. Nothing is
lost meanwhile: a worker that went idle is handed those jobs by the trigger, a row version more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from notifyq.models import NewJob

RETRY_AFTER = 0.02


class HandOverGate:
    """Per client: whether its next enqueue tries the hand-over insert."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._closed_until = -math.inf

    def open_for(self, job: NewJob) -> bool:
        """Try it for an unkeyed job due now, unless a try found no worker less than RETRY_AFTER ago."""
        due_now = job.run_at is None and not job.delay
        return due_now and job.idempotency_key is None and self._clock() >= self._closed_until

    def saw(self, handed_over: bool) -> None:
        """What the last try did: a miss closes the gate for RETRY_AFTER."""
        if not handed_over:
            self._closed_until = self._clock() + RETRY_AFTER
