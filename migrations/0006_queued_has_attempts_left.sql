-- 0006_queued_has_attempts_left: a queued job always has an attempt left.
-- A claim increments attempts; a queued row already at max_attempts would make that claim fail the
-- attempts CHECK and so block every claim of its queue. Every notifyq path already avoids such rows
-- (a retry on the last attempt finishes as failed); this keeps plain SQL from creating one.
ALTER TABLE {schema}.jobs
    ADD CONSTRAINT jobs_queued_has_attempts_left CHECK (status <> 'queued' OR attempts < max_attempts);
