"""The demo's tasks: what an application module passed to `notifyq-worker` looks like.

With NOTIFYQ_DEMO_STARTS set to a directory (the demo sets it), each worker process appends there
the seconds from each greeting's `sent_at` to its handler's start: the latency the demo reports.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

import msgspec

import notifyq

STARTS_ENV = "NOTIFYQ_DEMO_STARTS"


class Greeting(msgspec.Struct, frozen=True):
    name: str
    # the producer's wall clock just before the enqueue call
    sent_at: float


def _starts_file() -> TextIO | None:
    folder = os.environ.get(STARTS_ENV)
    return None if not folder else (Path(folder) / f"starts-{os.getpid()}.txt").open("a", buffering=1)


_STARTS = _starts_file()


@notifyq.task(queue="demo")
async def greet(greeting: Greeting) -> None:
    """A no-op handler: the demo measures the queue, not the work."""
    if _STARTS is not None:
        _STARTS.write(f"{time.time() - greeting.sent_at}\n")
