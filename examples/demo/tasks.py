"""The demo's tasks: what an application module passed to `notifyq-worker` looks like."""

from __future__ import annotations

import msgspec

import notifyq


class Greeting(msgspec.Struct, frozen=True):
    name: str
    # the producer's wall clock at enqueue; the demo reads latency from the database afterwards
    sent_at: float


@notifyq.task(queue="demo")
async def greet(greeting: Greeting) -> None:
    """A no-op handler: the demo measures the queue, not the work."""
    del greeting
