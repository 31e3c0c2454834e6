"""Periodic schedules: cron expressions, their time zone, and which missed slots to run.

Pure slot arithmetic: every function takes `now` (the database's clock, read by the leader) as an
argument, so tests drive it with any clock. Five-field expressions and the @hourly-style names are
parsed by cronsim, which steps through daylight-saving changes in the schedule's time zone.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cronsim import CronSim, CronSimError

from notifyq.errors import NotifyqError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# "all" catch-up never enqueues more than this many missed slots at once
MAX_CATCH_UP = 100
# "none" catch-up still runs a slot this late (a leader tick, a leader hand-over)
ON_TIME_TOLERANCE = timedelta(seconds=60)


class CatchUp(enum.StrEnum):
    """What to run for slots missed while no leader ran (downtime, a deploy)."""

    LATEST = "latest"  # the latest missed slot, once
    ALL = "all"  # every missed slot, up to MAX_CATCH_UP
    NONE = "none"  # nothing missed; only a slot that is due now


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    task: str
    cron: str
    timezone: str = "UTC"
    catch_up: CatchUp = CatchUp.LATEST
    payload: Any = None

    def __post_init__(self) -> None:
        try:
            CronSim(expand(self.cron), datetime.now(self.zone))
        except CronSimError as exc:
            raise NotifyqError(
                f"periodic task {self.task!r}: bad cron expression {self.cron!r}: {exc}"
            ) from None

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise NotifyqError(f"periodic task {self.task!r}: unknown time zone {self.timezone!r}") from None

    def next_slot(self, now: datetime) -> datetime:
        slot: datetime = next(iter(CronSim(expand(self.cron), now.astimezone(self.zone))))
        return slot.astimezone(UTC)

    def due_slots(self, last: datetime, now: datetime) -> list[datetime]:
        """Slots after `last` and at or before `now` to enqueue now, oldest first, per catch-up policy."""
        missed = self._slots_back(last, now, limit=1 if self.catch_up is not CatchUp.ALL else MAX_CATCH_UP)
        if self.catch_up is CatchUp.NONE:
            missed = [s for s in missed if now - s <= ON_TIME_TOLERANCE]
        return sorted(missed)

    def _slots_back(self, last: datetime, now: datetime, *, limit: int) -> list[datetime]:
        # cronsim steps back from just after `now`, so a slot exactly at `now` counts as due
        start = (now + timedelta(seconds=1)).astimezone(self.zone)
        slots: list[datetime] = []
        for slot in CronSim(expand(self.cron), start, reverse=True):
            utc = slot.astimezone(UTC)
            if utc <= last or len(slots) >= limit:
                break
            if utc <= now:
                slots.append(utc)
        return slots


def expand(cron: str) -> str:
    return ALIASES.get(cron.strip().lower(), cron)


def slot_key(task: str, slot: datetime) -> str:
    """The idempotency key of one slot's job: Postgres's unique index makes each slot run once."""
    return f"cron:{task}:{slot.astimezone(UTC).isoformat()}"
