-- 0005_prune_by_id: one index fewer to maintain on every finish.
-- Retention now walks the primary key from the oldest id (finished jobs are mostly the old ones)
-- instead of an index on finished_at that every finishing update had to insert into.
DROP INDEX {schema}.jobs_finished_idx;
