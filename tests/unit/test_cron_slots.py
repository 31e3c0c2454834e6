"""Cron slot arithmetic with a fake clock: which slots are due, per catch-up policy, across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifyq import CatchUp, Registry, Schedule
from notifyq.errors import NotifyqError
from notifyq.schedules import MAX_CATCH_UP, slot_key

NOON = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_slot_exactly_at_now_is_due_and_one_before_last_is_not() -> None:
    s = Schedule(task="t", cron="*/5 * * * *")
    assert s.due_slots(NOON - timedelta(minutes=5), NOON) == [NOON]
    assert s.due_slots(NOON, NOON + timedelta(minutes=4)) == []


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (CatchUp.LATEST, [NOON]),
        (CatchUp.ALL, [NOON - timedelta(minutes=m) for m in (15, 10, 5, 0)]),
        (CatchUp.NONE, [NOON]),
    ],
)
def test_catch_up_after_downtime(policy: CatchUp, expected: list[datetime]) -> None:
    s = Schedule(task="t", cron="*/5 * * * *", catch_up=policy)
    assert s.due_slots(NOON - timedelta(minutes=16), NOON + timedelta(seconds=30)) == expected


def test_none_skips_a_slot_missed_by_more_than_the_tolerance() -> None:
    s = Schedule(task="t", cron="0 * * * *", catch_up=CatchUp.NONE)
    assert s.due_slots(NOON - timedelta(hours=3), NOON + timedelta(minutes=30)) == []


def test_all_is_bounded() -> None:
    s = Schedule(task="t", cron="* * * * *", catch_up=CatchUp.ALL)
    slots = s.due_slots(NOON - timedelta(days=7), NOON)
    assert len(slots) == MAX_CATCH_UP
    assert slots[-1] == NOON


def test_aliases_and_time_zones_follow_local_time_across_dst() -> None:
    daily = Schedule(task="t", cron="@daily", timezone="Europe/Paris")
    # the night of 29 March 2026 Paris moves from UTC+1 to UTC+2
    assert daily.next_slot(datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert daily.next_slot(datetime(2026, 3, 29, 12, tzinfo=UTC)) == datetime(2026, 3, 29, 22, tzinfo=UTC)


def test_bad_expressions_and_zones_fail_at_declaration() -> None:
    with pytest.raises(NotifyqError, match="bad cron expression"):
        Schedule(task="t", cron="61 * * * *")
    registry = Registry()
    with pytest.raises(NotifyqError, match="unknown time zone"):

        @registry.periodic("* * * * *", timezone="Mars/Olympus")
        def tick() -> None: ...


def test_slot_keys_are_per_task_and_slot() -> None:
    assert slot_key("a", NOON) != slot_key("b", NOON)
    assert slot_key("a", NOON) != slot_key("a", NOON + timedelta(minutes=1))
    assert slot_key("a", NOON) == slot_key("a", NOON.astimezone())
