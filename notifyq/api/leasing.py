"""Lease long-polls for HTTP workers, woken by the API's one listener connection.

The API registers itself in the workers registry (its listener session holds the liveness lock) so
that, like a worker, it can publish demand on its listened queues: producers then notify. Every
waiting request sleeps on one shared event that each queue notification replaces and sets. Each
lease call gets a fresh holder uuid: HTTP workers cannot finish each other's jobs, and their jobs
are rescued by lease expiry (the holder is not a registered worker).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence

import anyio
import psycopg

from notifyq.client import Client
from notifyq.models import ClaimedJob
from notifyq.worker.claimer import DEMAND_RENEW_EVERY, DEMAND_SURE_FOR, DemandClock
from notifyq.worker.waker import Waker

log = logging.getLogger("notifyq.api.leasing")

# a request on a queue the API does not listen to claims again this often
UNLISTENED_POLL = 1.0


class BroadcastWaker(Waker):
    """The listener's waker, turned into a broadcast to every waiting lease request."""

    def __init__(self) -> None:
        super().__init__()
        self.event = anyio.Event()

    def wake(self, *, grace: bool = True) -> None:
        event, self.event = self.event, anyio.Event()
        event.set()

    def schedule(self, delay: float) -> None:
        # a scheduled job is not due yet; waiters claim again on their own poll
        return


class LeaseBroker:
    def __init__(self, client: Client, *, worker_id: uuid.UUID, listened: Sequence[str]) -> None:
        self.client = client
        self.worker_id = worker_id
        self.listened = frozenset(listened)
        self.waker = BroadcastWaker()
        self._renewed_at = -math.inf  # when the last renewal was sent (anyio's clock)
        self._demand = DemandClock()  # the last publication or renewal, by any request

    async def lease(
        self, queues: Sequence[str], *, limit: int, lease_seconds: float, wait: float
    ) -> tuple[uuid.UUID, list[ClaimedJob]]:
        holder = uuid.uuid4()
        deadline = anyio.current_time() + wait
        demand = [q for q in queues if q in self.listened]
        while True:
            # taken before the claim, so a notification during the claim is not lost
            event = self.waker.event
            jobs = await self.client.lease(queues, limit=limit, lease_seconds=lease_seconds, holder=holder)
            remaining = deadline - anyio.current_time()
            if jobs or remaining <= 0:
                return holder, jobs
            if demand:
                published = anyio.current_time()
                await self.client.publish_demand(demand, worker_id=self.worker_id)
                self._demand.renewed(published)
                jobs = await self.client.lease(
                    queues, limit=limit, lease_seconds=lease_seconds, holder=holder
                )
                if jobs:
                    return holder, jobs
            sleep = remaining if len(demand) == len(set(queues)) else min(remaining, UNLISTENED_POLL)
            await self._wait(event, sleep, renew=bool(demand))

    async def _wait(self, event: anyio.Event, seconds: float, *, renew: bool) -> None:
        """Wait for `event` at most `seconds`; with demand published, renew its lease meanwhile
        (one renewal every DEMAND_RENEW_EVERY for all the requests waiting), and return to claim
        again when a renewal came too late to be sure the lease had not run out (as the worker's
        claimer rechecks then: notifyq/worker/claimer.py, DEMAND_SURE_FOR)."""
        deadline = anyio.current_time() + seconds
        while (left := deadline - anyio.current_time()) > 0:
            with anyio.move_on_after(min(left, DEMAND_RENEW_EVERY) if renew else left):
                await event.wait()
                return
            due = renew and anyio.current_time() >= self._renewed_at + DEMAND_RENEW_EVERY
            if due and await self._renew():
                return

    async def _renew(self) -> bool:
        """Renew the demand lease; True if it may have run out since the last renewal."""
        self._renewed_at = sent = anyio.current_time()
        try:
            await self.client.renew_demand()
        except psycopg.Error as exc:  # producers may skip us for a moment: we claim at the end
            log.warning("renewing the demand lease failed (%s)", exc)
            return False
        return self._demand.renewed(sent) > DEMAND_SURE_FOR
