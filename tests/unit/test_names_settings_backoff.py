"""Pure validation: names, settings, retry delays (no database)."""

from __future__ import annotations

import pytest

from notifyq import names
from notifyq.backoff import RetryPolicy
from notifyq.errors import ConfigError, InvalidNameError
from notifyq.settings import Settings, WorkerSettings


@pytest.mark.parametrize("queue", ["default", "mail.high", "a-b_c", "9lives", "q" * 40])
def test_valid_queue_names_pass(queue: str) -> None:
    assert names.queue_name(queue) == queue


@pytest.mark.parametrize(
    "queue", ["", "q" * 41, "has space", "quote'", 'dq"', "nul\x00", ".dot", "-dash", "é", None, 5]
)
def test_hostile_queue_names_are_rejected_with_the_rule(queue: object) -> None:
    with pytest.raises(InvalidNameError, match="invalid queue name"):
        names.queue_name(queue)


def test_every_channel_fits_in_63_bytes_at_the_longest_names() -> None:
    channel = names.queue_channel("s" * names.MAX_SCHEMA_LENGTH, "q" * names.MAX_QUEUE_LENGTH)
    assert len(channel.encode()) <= 63
    assert len(names.cancel_channel("s" * names.MAX_SCHEMA_LENGTH).encode()) <= 63


@pytest.mark.parametrize("task", ["", "1starts_with_digit", "t" * 201, "semi;colon", "a b"])
def test_bad_task_names_are_rejected(task: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid task name"):
        names.task_name(task)


def test_lock_keys_are_stable_and_distinct_per_schema() -> None:
    assert names.migration_lock_key("notifyq") == names.migration_lock_key("notifyq")
    assert names.migration_lock_key("notifyq") != names.migration_lock_key("other")


def test_settings_from_env_reads_prefixed_variables_and_database_url_fallback() -> None:
    env = {"DATABASE_URL": "postgresql://x/y", "NOTIFYQ_SCHEMA": "jobs", "NOTIFYQ_POOL_MAX_SIZE": "3"}
    settings = Settings.from_env(env)
    assert (settings.database_url, settings.schema, settings.pool_max_size) == ("postgresql://x/y", "jobs", 3)
    assert (
        Settings.from_env({**env, "NOTIFYQ_DATABASE_URL": "postgresql://a/b"}).database_url
        == "postgresql://a/b"
    )


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"NOTIFYQ_CONCURRENCY": "0"}, "concurrency"),
        ({"NOTIFYQ_CONCURRENCY": "many"}, "concurrency"),
        ({"NOTIFYQ_POLL_INTERVAL": "-1"}, "poll_interval"),
        ({"NOTIFYQ_QUEUES": "ok,bad queue"}, "queues"),
        ({"NOTIFYQ_QUEUES": "a,a"}, "queues"),
        ({"NOTIFYQ_LEADER_IDLE_TIMEOUT": "0.5"}, "leader_idle_timeout"),
        ({"NOTIFYQ_LEADER_TICK": "1", "NOTIFYQ_LEADER_IDLE_TIMEOUT": "1.5"}, "leader_idle_timeout"),
        ({"NOTIFYQ_CLAIM_LINGER": "2"}, "claim_linger"),
    ],
)
def test_bad_worker_settings_fail_naming_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        WorkerSettings.from_env(env)
    assert info.value.field == field


def test_bad_schema_and_missing_url_name_their_field() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_URL": "postgresql://x/y", "NOTIFYQ_SCHEMA": "Bad-Schema"})
    assert info.value.field == "schema"
    with pytest.raises(ConfigError) as missing:
        Settings.from_env({})
    assert "database_url" in str(missing.value)


def test_worker_queues_from_env_are_split_on_commas() -> None:
    assert WorkerSettings.from_env({"NOTIFYQ_QUEUES": "a, b ,c"}).queues == ("a", "b", "c")


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(base=1, factor=2, max_delay=10, jitter=0)
    assert [policy.delay(a, 0.5) for a in (1, 2, 3, 4, 5, 100)] == [1, 2, 4, 8, 10, 10]


def test_backoff_jitter_spreads_both_ways_within_its_fraction() -> None:
    policy = RetryPolicy(base=10, factor=2, max_delay=1000, jitter=0.2)
    assert policy.delay(1, 0.0) == pytest.approx(8)
    assert policy.delay(1, 0.5) == pytest.approx(10)
    assert policy.delay(1, 0.999999) == pytest.approx(12, rel=1e-4)


def test_backoff_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(factor=0.5)
