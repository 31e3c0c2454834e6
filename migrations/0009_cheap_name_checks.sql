-- 0009_cheap_name_checks: the queue and task name CHECKs, same rules, a tenth of the cost.
--
-- PostgreSQL evaluates every CHECK of a row on each INSERT and on each UPDATE, whatever columns
-- changed, so a job pays its name checks three times: insert, claim and finish. The bounded
-- repetitions of 0001 (up to 39 and 199 more characters) expand into a large automaton in
-- PostgreSQL's regex engine: about 10 µs a row for both, half of a bulk COPY's server time
-- (psql's \copy of 10,000 rows: 160-235 ms before, 83-113 ms with these checks, 94-105 ms with
-- no name check at all). An unbounded class with the length checked apart accepts exactly the
-- same names (names.py holds the same rules for the client side).
--
-- The new checks are validated against existing rows under this migration's exclusive lock (one
-- scan of jobs: 1.6 s per million rows measured here): enqueues, claims and reads of jobs wait
-- that long. (NOT VALID would skip the scan, the old checks being equivalent, but would leave the
-- constraints marked unvalidated on every install for the sake of large tables at upgrade.)

ALTER TABLE {schema}.jobs
    DROP CONSTRAINT jobs_queue_format,
    ADD CONSTRAINT jobs_queue_format
        CHECK (char_length(queue) <= 40 AND queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$'),
    DROP CONSTRAINT jobs_task_format,
    ADD CONSTRAINT jobs_task_format
        CHECK (char_length(task) <= 200 AND task ~ '^[A-Za-z_][A-Za-z0-9_.:-]*$');
