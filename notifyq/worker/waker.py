"""The waker: what the claimer sleeps on between claims.

It returns at the earliest of a notification (`wake`), the earliest known future run_at
(`schedule`, fed by scheduled-insert notifications and the worker's own retries), and the slow poll
interval, which only bounds how long a lost notification can delay a job. The claimer clears the
woken flag *before* it claims, so a notification that arrives during a claim is never lost.
Deadlines are on anyio's monotonic clock and come in as relative delays from the database's clock.
"""

from __future__ import annotations

import enum
import math

import anyio

# claim a hair after a scheduled job is due, so the database agrees it is due
TIMER_SLACK = 0.005


class Wake(enum.Enum):
    NOTIFIED = "notified"
    TIMER = "timer"
    POLL = "poll"
    REFILL = "refill"  # producers used half the jobs they may hand this worker (only if asked for)


class Waker:
    def __init__(self) -> None:
        self._woken = anyio.Event()
        # set by wake() and schedule(): interrupts a wait so it re-reads its deadline
        self._rearm = anyio.Event()
        self._deadline: float | None = None
        self._first_wake: float | None = None
        self._refill = False

    @property
    def deadline(self) -> float | None:
        return self._deadline

    @property
    def first_wake_since_mark(self) -> float | None:
        """When the first wake-up since the last `mark()` came (anyio's clock), if one did."""
        return self._first_wake

    def mark(self) -> None:
        """Watch for the first wake-up from now on (the claimer marks when it publishes demand,
        which also renews the hand-over slots: a pending refill is dropped)."""
        self._first_wake = None
        self._refill = False

    def request_refill(self) -> None:
        """Ask a `wait(..., refills=True)` to return Wake.REFILL (without waking a claim)."""
        self._refill = True
        self._rearm.set()

    def wake(self, *, grace: bool = True) -> None:
        """End a wait: a claim follows. `grace=False` for the claimer's own reasons, no producer's
        notification: no wake grace starts (the claimer re-arms without waiting for producers that
        are not notifying it)."""
        if grace and self._first_wake is None:
            self._first_wake = anyio.current_time()
        self._woken.set()
        self._rearm.set()

    def clear(self) -> None:
        if self._woken.is_set():
            self._woken = anyio.Event()

    def schedule(self, delay: float) -> None:
        """Claim again `delay` seconds from now (an earlier deadline wins)."""
        if delay <= 0:
            self.wake()
            return
        at = anyio.current_time() + delay + TIMER_SLACK
        if self._deadline is None or at < self._deadline:
            self._deadline = at
            self._rearm.set()

    async def wait(self, poll_interval: float, *, refills: bool = False) -> Wake:
        give_up = anyio.current_time() + poll_interval
        while not self._woken.is_set():
            if refills and self._refill:
                self._refill = False
                return Wake.REFILL
            now = anyio.current_time()
            if self._deadline is not None and now >= self._deadline:
                self._deadline = None
                return Wake.TIMER
            if now >= give_up:
                return Wake.POLL
            until = min(give_up, math.inf if self._deadline is None else self._deadline)
            self._rearm = anyio.Event()
            with anyio.move_on_after(until - now):
                await self._rearm.wait()
        return Wake.NOTIFIED
