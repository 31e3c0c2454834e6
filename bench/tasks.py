"""The benchmark's task: a no-op, so the figures measure the queue and not the work."""

from __future__ import annotations

import notifyq


@notifyq.task(queue="bench")
async def noop(payload: dict[str, float]) -> None:
    """Latency is read from the database afterwards (started_at against the payload's sent_at)."""
    del payload
