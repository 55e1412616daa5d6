-- Fewer index entries per job (issue 19, item 5). A job row is updated at dispatch, claim,
-- each lease renewal and its outcome; each update changes an indexed column, so it writes a
-- new entry into every index of the table: ten of them, the largest share of the ledger's time
-- during a burst. An index that serves rows of one state now holds only those rows (partial),
-- so the other states' updates skip it, and the creator's index, which no query used, goes: a
-- dispatch writes five entries instead of ten, a claim or a renewal six, an outcome seven.
-- Every query that used these indexes names the same condition literally, so PostgreSQL and
-- SQLite both still pick them; the state stays the first column where it was, so SQLite's
-- planner, without statistics, still prefers them to `jobs_state_id`.

-- Lapsed leases are looked for among running jobs only.
DROP INDEX jobs_lease;
CREATE INDEX jobs_lease ON jobs (state, lease_until) WHERE state = 'running';

-- The last hour's done jobs (queue figures, the per-minute series, pruning).
DROP INDEX jobs_done_recent;
CREATE INDEX jobs_done_recent ON jobs (state, finished_at) WHERE state = 'done';

-- The latest done jobs of a queue (run-time percentiles).
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at) WHERE state = 'done';

-- Only scheduler ticks carry a dedup key.
DROP INDEX jobs_dedup_key;
CREATE UNIQUE INDEX jobs_dedup_key ON jobs (dedup_key) WHERE dedup_key IS NOT NULL;

-- No query looks jobs up by their creator (`GET /jobs/{id}` compares it on the row it found).
DROP INDEX jobs_created_by;

-- A queue's dead jobs in the order they died: the bulk retry walks them in batches. Only the
-- move to `dead` writes here.
CREATE INDEX jobs_dead ON jobs (queue, state, finished_at) WHERE state = 'dead';
