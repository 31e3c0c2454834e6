"""The claimer: claims as many jobs as there are free slots, in one statement, and hands them on.

Loop: wait for a free slot; clear the woken flag (before claiming, so a notification arriving
during the claim wakes the next round); claim; start the jobs. While claims come back full it
claims again at once: a busy worker needs no notifications, so producers need not send them. When a
claim comes back short, the queues were empty as of that claim: it publishes its demand
(queue_waiters: producers notify only while a worker waits), claims once more to catch a job
inserted while it published, and only then sleeps.

Linger: while jobs stream in (a claim returned several jobs, or two claims in a row returned
some, or a notification woke the worker within two lingers of its going to sleep), a short claim
is followed by another instead of publishing demand: at once if it found jobs (they arrive about
as fast as a claim takes), after `linger` (1 ms) if it found none; the stream ends only after
STREAM_PATIENCE lingers in a row (10 ms) found nothing.
Under a steady stream the worker then never asks for notifications, so producers send none and
take no NOTIFY lock; a job arriving meanwhile waits for the claim in flight or the linger, at most
`linger` and two claims. A single job now and then never lingers: its notification wakes the
worker, as before. (The claim at once, measured at 1,000 jobs/s in alternated rounds: the worker's
part p50 1.0 ms against 1.2-1.8 with a linger after every short claim, for 0.4 more claims a job;
docs/benchmarks.md, 2026-12-04 afternoon.)
A poll-only worker (no LISTEN) lingers the same way, so a stream does not wait for its poll.

Wake grace: a producer's notification stamps this worker's queue_waiters rows, and producers keep
notifying for WAKE_GRACE (50 ms) after that stamp. So after a short claim, a worker woken less than
WAKE_GRACE_USE (30 ms) ago waits for the next notification instead of publishing demand, and only
then arms and confirms: at moderate rates (jobs a few ms apart, too slow to count as a stream) a
job costs its claim and its outcome, not also an arm and a confirming claim.

Hand-over (migrations/0008_hand_over.sql): publishing demand also gives producers `slots` per
queue (the free room, shared among the queues, HAND_OVER_SLOTS at most): while the worker waits, an
insert claims its job for the worker in the producer's own transaction and sends it on the
worker's channel, and the listener starts it (worker/handover.py); the claimer sleeps on. When
producers have used half the slots the claimer refills them (one statement for `slots` jobs) once a
runner is free, unless they went faster than `hand_over_max_rate` (a hand-over costs its producer a
claim and a NOTIFY in its transaction, and NOTIFY serialises commits): then it claims, and streams
as above, so a busy queue costs producers no NOTIFY. A claim in flight holds the runners it may
fill (`Executor.reserve`): a job handed over meanwhile that finds none free is handed back. After
the listener reconnected, `recover` runs between two claims to find hand-overs whose notification
was lost; should it fail, claims go on and it is tried again later.

A job committed by a producer that checked for waiters before this worker published, and became
visible only after its confirming claim, was told to nobody. While producers hand this worker jobs
the claimer sleeps on, so each refill also asks whether a due job waits queued and, if one does,
claims (before, such a job waited for the poll while hand-overs went on). And when nothing comes at
all, `recheck_after` (50 ms) into its sleep the claimer asks the same question once more (the
refill's probe, refilling nothing), and again at ten times that (0.5 s), and so on until the poll:
a producer that committed by the first recheck has its job claimed about 50 ms after the worker
went to sleep, one that stayed open longer waits at most about ten times as long as it stayed
open, and `poll_interval` (5 s by default) bounds every miss. The next refill or notification on
the queue finds such a job sooner.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import psycopg
from psycopg_pool import AsyncConnectionPool

from notifyq import db, queries
from notifyq.models import ClaimedJob, Refill
from notifyq.worker.executor import Executor
from notifyq.worker.waker import Wake, Waker

log = logging.getLogger("notifyq.worker.claimer")

MAX_ERROR_DELAY = 5.0
# a sleeping worker rechecks `recheck_after` in, then at this many times that, and so on until
# the poll: a job nobody told of waits about ten times as long as its producer stayed open after
# the worker slept, at most (the poll bounds it), for a probe or two per poll interval
RECHECK_BACKOFF = 10.0
# a stream ends only after this many lingers in a row found nothing: producers pausing for a moment
# (a commit waiting for the disk, a busy CPU) then do not make the worker publish its demand, which
# would cost them a burst of notifying commits (WAKE_GRACE, migrations/0004) for nothing
STREAM_PATIENCE = 10
# a producer's notification stamps our queue_waiters rows, and for WAKE_GRACE (50 ms, in the
# trigger) from that stamp producers keep notifying us without our re-arming: a woken worker waits
# for the next notification for this much of it, from the first wake-up since it last published
# its demand (a margin for the notification's way here), before it publishes it again. That saves
# two statements a job at moderate rates. Should producers have stopped notifying sooner (a lost
# notification, a slow one), a job waits at most this long: the wait ends in arming and a claim.
WAKE_GRACE_USE = 0.03
# hand-over slots per queue row, at most: a refill every half this many jobs at light load
HAND_OVER_SLOTS = 10
# producers look for waiting workers only while the demand lease runs (a second from its last
# renewal, renewed when less than 0.7 s is left: migrations/0011_demand_until.sql): a sleeping
# worker renews it this often, so it never runs out while the worker sleeps
DEMAND_RENEW_EVERY = 0.25
# and an arm or a renewal leaves it at least this long to run (the renewal threshold): a worker that
# stalled longer (a blocked event loop, a starved process) may have let it run out, and producers
# that committed meanwhile told nobody, so the renewal that ends such a gap is followed by a recheck
DEMAND_SURE_FOR = 0.7


@dataclass(slots=True)
class DemandClock:
    """When a waiter last renewed the demand lease: the send time (anyio's clock) of its last arm,
    publication or renewal. The claimer keeps one, and so does the API's lease broker."""

    sent_at: float = -math.inf

    def renewed(self, sent: float) -> float:
        """Note a renewal sent at `sent`, now answered; the seconds since the one before was sent
        (over DEMAND_SURE_FOR: the lease may have run out in between)."""
        gap = anyio.current_time() - self.sent_at
        self.sent_at = max(self.sent_at, sent)
        return gap


@dataclass(slots=True)
class _Grant:
    """The hand-over slots one queue's row was last given (an arm or a refill): how many, when
    (anyio's clock), how many producers left, and whether a refill or a claim was asked for since."""

    given: int
    at: float
    left: int
    asked: bool = False


@dataclass(slots=True)
class _Stream:
    """Whether jobs are streaming in, as far as the claims tell; all on anyio's clock."""

    linger: float
    had_jobs: bool = False  # the previous claim returned jobs
    until: float = -math.inf  # a short claim before this is followed by a linger, not by demand

    def full(self) -> None:
        self.had_jobs = True
        self._extend()

    def after_short_claim(self, claimed: int) -> bool:
        """Note a claim that came back short; True if the next claim should follow a linger."""
        if claimed > 1 or (self.had_jobs and claimed > 0):
            self._extend()
        self.had_jobs = claimed > 0
        return anyio.current_time() < self.until

    def woke(self, slept_for: float) -> None:
        # woken within two lingers of going to sleep: jobs come about as fast as a claim cycle, so
        # the next claim's jobs count as a stream
        self.had_jobs = slept_for < 2 * self.linger

    def _extend(self) -> None:
        if self.linger > 0:
            self.until = anyio.current_time() + STREAM_PATIENCE * self.linger


class Claimer:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        statements: queries.Statements,
        worker_id: uuid.UUID,
        queues: Sequence[str],
        lease: float,
        poll_interval: float,
        linger: float = 0.0,
        recheck_after: float = 0.0,
        db_timeout: float = 10.0,
        executor: Executor,
        waker: Waker,
        publish_demand: bool = True,
        hand_over_channel: str | None = None,
        hand_over_max_rate: float = 0.0,
        recover: Callable[[], Awaitable[None]] | None = None,
        observe: Callable[[Sequence[ClaimedJob]], None] | None = None,
    ) -> None:
        self.pool = pool
        self.statements = statements
        self.worker_id = worker_id
        self.queues = list(queues)
        self.lease = lease
        self.poll_interval = poll_interval
        self.linger = linger
        self.recheck_after = recheck_after
        self.db_timeout = db_timeout
        self.executor = executor
        self.waker = waker
        self.claims = 0
        self.claimed = 0
        self.sleeping = False  # waiting for work, demand published: no claim until woken
        # only a listening worker publishes demand; a poll-only one asks for no notifications
        self.publish_demand = publish_demand
        self.observe = observe  # metrics, when on
        self.arms = 0
        # where producers hand this worker jobs (None: they only wake it; hand_over_max_rate > 0)
        self.hand_over_channel = hand_over_channel
        self.hand_over_max_rate = hand_over_max_rate
        self.handed = 0  # jobs producers handed over (claimed for us by the insert trigger)
        self.refills = 0
        self.found_waiting = 0  # refills and rechecks that found a job queued nobody told us of
        self.rechecks = 0
        self.renewals = 0  # demand_renew statements sent while sleeping
        self.lapses = 0  # renewals that came too late to be sure the lease had not run out
        self._demand = DemandClock()
        self._grants: dict[str, _Grant] = {}
        # run between claims when asked (the listener reconnected): finds lost hand-overs
        self.recover = recover
        self._recover_pending = False
        self._recover_at = -math.inf
        self._recover_delay = 0.05

    async def run_once(self, limit: int) -> list[ClaimedJob]:
        query = queries.job_claim_batch(
            self.statements,
            worker=self.worker_id,
            queues=self.queues,
            limit=limit,
            lease=self.lease,
        )
        jobs = await db.fetch_all_within(self.pool, query, self.db_timeout)
        self.claims += 1
        self.claimed += len(jobs)
        return jobs

    async def run(self) -> None:
        """Claim until cancelled (the worker cancels it to stop claiming)."""
        error_delay = 0.05
        stream = _Stream(self.linger)
        while True:
            if self._recover_pending and anyio.current_time() >= self._recover_at:
                await self._recover()
            free = await self.executor.wait_for_capacity()
            self.waker.clear()
            try:
                jobs = await self._claim_and_start(free)
                if len(jobs) >= free:
                    stream.full()
                    error_delay = 0.05
                    continue  # a full batch: more may be waiting
                if stream.after_short_claim(len(jobs)):
                    error_delay = 0.05
                    if not jobs:  # jobs found: more are coming about as fast as we claim
                        await self.waker.wait(self.linger)
                    continue
                if await self._wait_within_wake_grace(stream):
                    continue
                empty = await self._confirm_empty()
                error_delay = 0.05  # reset only after a whole cycle went through
                if not empty:
                    continue
            except psycopg.Error as exc:
                error_delay = min(error_delay * 2, MAX_ERROR_DELAY)
                log.warning("claim failed (%s); retrying in %.2fs", exc, error_delay)
                await self.waker.wait(error_delay)
                continue
            slept = anyio.current_time()
            self.sleeping = True
            try:
                await self._sleep()
            finally:
                self.sleeping = False
            stream.woke(anyio.current_time() - slept)

    async def _sleep(self) -> None:
        """Wait for a notification, the timer or the poll; meanwhile refill the hand-over slots
        whenever producers used half of them, so the next jobs come handed over too, recheck
        for a job nobody told us of `recheck_after` in, then at ten times that, and so on, and
        renew the demand lease every DEMAND_RENEW_EVERY."""
        slept = anyio.current_time()
        give_up = slept + self.poll_interval
        after = self.recheck_after if self.publish_demand and self.recheck_after > 0 else math.inf
        renew_at = slept + DEMAND_RENEW_EVERY if self.publish_demand else math.inf
        while True:
            recheck_at = slept + after
            until = min(give_up, recheck_at, renew_at)
            wake = await self.waker.wait(until - anyio.current_time(), refills=True)
            if wake is Wake.REFILL:
                # no renewal while we wait for room: producers may skip us meanwhile (we could take
                # nothing), and the refill's probe then finds what queued
                await self.executor.wait_for_capacity()
                await self._db_step(self.refill, "refilling hand-over slots")
            elif wake is not Wake.POLL or until == give_up:
                return
            elif until == renew_at:
                renew_at = anyio.current_time() + DEMAND_RENEW_EVERY
                await self._db_step(self.renew_demand, "renewing the demand lease")
            else:
                after *= RECHECK_BACKOFF
                await self._db_step(self.recheck, "rechecking the queues")

    async def _db_step(self, step: Callable[[], Awaitable[None]], what: str) -> None:
        try:
            await step()
        except psycopg.Error as exc:  # producers wake us instead, or the poll: slower, nothing lost
            log.warning("%s failed (%s)", what, exc)

    def request_recovery(self) -> None:
        """Run `recover` before the next claim (no claim of ours is in flight while it runs)."""
        if self.recover is not None:
            self._recover_pending = True
            self._recover_at = -math.inf
            self.waker.wake()

    async def _recover(self) -> None:
        """Run `recover`; when it fails, claims go on and it is tried again later (backing off)."""
        assert self.recover is not None
        try:
            with anyio.CancelScope(shield=True):  # jobs it finds must reach the executor
                await self.recover()
        except psycopg.Error as exc:
            self._recover_delay = min(self._recover_delay * 2, MAX_ERROR_DELAY)
            self._recover_at = anyio.current_time() + self._recover_delay
            log.warning("looking for lost hand-overs failed (%s); again in %.2fs", exc, self._recover_delay)
            return
        self._recover_pending = False
        self._recover_delay = 0.05

    async def _wait_within_wake_grace(self, stream: _Stream) -> bool:
        """Shortly after a producer's notification woke us, wait for the next one (producers
        still notify us) instead of publishing demand; True if woken (claim again)."""
        woken_at = self.waker.first_wake_since_mark
        if not self.publish_demand or woken_at is None:
            return False
        left = woken_at + WAKE_GRACE_USE - anyio.current_time()
        if left <= 0:
            return False
        started = anyio.current_time()
        woken = await self.waker.wait(left) is not Wake.POLL
        stream.woke(anyio.current_time() - started)
        return woken

    async def _confirm_empty(self) -> bool:
        """Publish demand, then claim once more; True if the queues are still empty."""
        if not self.publish_demand:
            return True
        await self.arm()
        free = self.executor.free
        if free <= 0:  # producers handed us jobs meanwhile: not empty, and no room to claim
            return False
        return not await self._claim_and_start(free)

    async def arm(self, *, hand_over: bool = True) -> None:
        """Publish this worker's demand: from the commit on, inserts into its queues notify it, and
        (with `hand_over`) hand it jobs up to its free room."""
        if not self.publish_demand:
            return
        slots = self._slots_for_free_room() if hand_over else 0
        channel = self.hand_over_channel
        query = queries.queue_wait(
            self.statements, worker=self.worker_id, queues=self.queues, slots=slots,
            lease=self.lease if channel else None, channel=channel,
        )  # fmt: skip
        # shielded, as the refill below: a stop mid-statement would cost the pool its connection
        sent = anyio.current_time()
        rows = await db.fetch_all_within(self.pool, query, self.db_timeout, shield=True)
        self._demand.renewed(sent)
        self.waker.mark()  # producers notify us again; the next wake-up starts a new grace
        self._gave_slots(slots)
        self.arms += 1
        next_in = rows[0] if rows else None
        if next_in is not None and next_in > 0:
            # a job scheduled while nobody waited: its producer notified nobody (migrations/0011).
            # One due now is the confirming claim's.
            self.waker.schedule(next_in)

    async def renew_demand(self) -> None:
        """Keep producers looking for us while we sleep (migrations/0011_demand_until.sql); after
        a gap longer than DEMAND_SURE_FOR since the last arm or renewal, recheck."""
        query = queries.demand_renew(self.statements)
        sent = anyio.current_time()
        await db.fetch_all_within(self.pool, query, self.db_timeout, shield=True)
        self.renewals += 1
        if (gap := self._demand.renewed(sent)) > DEMAND_SURE_FOR:
            self.lapses += 1
            log.info("the demand lease may have run out (%.2fs since it was last renewed): rechecking", gap)
            await self.recheck()

    async def refill(self) -> None:
        """Producers used half our hand-over slots on some queue: allow as many as we have room; and
        if a due job waits queued that nobody told us of, wake to claim it."""
        slots = self._slots_for_free_room()
        if slots <= 0:  # no room now: once the slots run out, producers notify us instead
            return
        refill = await self._refill_and_probe(slots)
        self._gave_slots(slots, refill.queues)
        for queue in set(self.queues) - set(refill.queues):
            # skipped: a producer's transaction held the row (it took a slot; its job comes next,
            # and asks again), or a notification stamped it (the claimer re-arms when done)
            if queue in self._grants:
                self._grants[queue].asked = False
        if refill.queues:
            self.refills += 1
        self._claim_or_schedule(refill.next_in)

    async def recheck(self) -> None:
        """Some time into our sleep: if a due job waits queued that nobody told us of, claim it;
        if a scheduled one does, set its timer."""
        probe = await self._refill_and_probe(None)
        self.rechecks += 1
        self._claim_or_schedule(probe.next_in)

    async def _refill_and_probe(self, slots: int | None) -> Refill:
        query = queries.queue_refill(self.statements, worker=self.worker_id, slots=slots, queues=self.queues)
        (refill,) = await db.fetch_all_within(self.pool, query, self.db_timeout, shield=True)
        return refill

    def _claim_or_schedule(self, next_in: float | None) -> None:
        if next_in is None:
            return
        if next_in <= 0:  # a job no producer told us of: claim it now, not at the poll
            self.found_waiting += 1
            self.waker.wake(grace=False)
        else:  # an earlier deadline already set wins
            self.waker.schedule(next_in)

    def _gave_slots(self, slots: int, queues: Sequence[str] | None = None) -> None:
        """Count `slots` from now on on `queues` (all of ours by default)."""
        now = anyio.current_time()
        for queue in self.queues if queues is None else queues:
            self._grants[queue] = _Grant(given=slots, at=now, left=slots)

    async def disarm(self) -> None:
        """Withdraw our demand (stopping): producers stop notifying us and handing us jobs."""
        if self.publish_demand:
            query = queries.queue_unwait(self.statements, worker=self.worker_id)
            await db.fetch_all_within(self.pool, query, self.db_timeout)

    def _slots_for_free_room(self) -> int:
        # every queue row gets the share, rounded up (a worker on n queues may be handed up to n - 1
        # jobs over its room: it hands them back), and no more than HAND_OVER_SLOTS: a worker that
        # armed and then froze holds no more jobs than that until its leases expire
        if self.hand_over_channel is None:
            return 0
        return min(max(-(-self.executor.free // len(self.queues)), 0), HAND_OVER_SLOTS)

    def handed_over(self, job: ClaimedJob) -> None:
        """A producer's trigger claimed `job` for us, using one of our slots on its queue. Once half
        the slots are used, refill them: a refill that came only when none were left let producers
        find none in the meantime, so their jobs were notified and claimed (5-28 % of the jobs at
        200 jobs/s on a slow machine, and the longest waits)."""
        self.handed += 1
        now = anyio.current_time()
        grant = self._grants.get(job.queue)
        if grant is None:  # handed over before our first arm was counted (a lost race): none given
            grant = self._grants[job.queue] = _Grant(given=0, at=now, left=0)
        grant.left -= 1
        if grant.asked or grant.left > grant.given // 2:
            return
        grant.asked = True  # once per grant: one refill (or claim) is enough
        used = grant.given - grant.left
        if self.hand_over_max_rate > 0 and now - grant.at < used / self.hand_over_max_rate:
            self.waker.wake()  # jobs come too fast for one NOTIFY each: claim them in batches
        else:
            self.waker.request_refill()

    async def _claim_and_start(self, free: int) -> list[ClaimedJob]:
        # a stop that came during a shielded statement just before (the arm's) takes effect here,
        # before a new claim: the shield below would otherwise carry the claim through it
        await anyio.lowlevel.checkpoint_if_cancelled()
        # shielded: a claim the database committed must reach the executor, or its jobs would sit
        # leased to us, unrun, until the lease expired
        with anyio.CancelScope(shield=True):
            with self.executor.reserve(free):  # a hand-over arriving meanwhile is handed back
                jobs = await self.run_once(free)
            for job in jobs:
                self.executor.start(job)
        if self.observe is not None:  # metrics, after the jobs are safely started
            self.observe(jobs)
        if jobs:
            # let the runners begin these handlers before this task prepares its next statement
            await anyio.lowlevel.checkpoint()
        return jobs
