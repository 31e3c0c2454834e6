"""The benchmark's task: a no-op, so the figures measure the queue and not the work.

With NOTIFYQ_BENCH_STARTS set to a directory, each worker process appends to a file there, for
every job, its payload's number `n` and the seconds from the payload's `sent_at` (read just before
the enqueue call) to the start of the handler: enqueue-to-start as the handler sees it, after the
claim has committed. The number lets the bench subtract that job's own enqueue call.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

import notifyq

STARTS_ENV = "NOTIFYQ_BENCH_STARTS"


def _starts_file() -> TextIO | None:
    folder = os.environ.get(STARTS_ENV)
    if not folder:
        return None
    # line-buffered and opened for appending: each line is one write, and the bench may truncate
    return (Path(folder) / f"starts-{os.getpid()}.txt").open("a", buffering=1)


_STARTS = _starts_file()


@notifyq.task(queue="bench")
async def noop(payload: dict[str, float]) -> None:
    if _STARTS is not None:
        waited = time.time() - payload["sent_at"]
        _STARTS.write(f"{payload.get('n', -1):.0f} {waited}\n")
