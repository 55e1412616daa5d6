-- Fenced attempts (issue 19): every claim of a job is an attempt with a token that every later
-- write of that attempt presents, and every attempt, however it ended, is a history row.

-- How many times the job was claimed, ever: the fencing token of its current attempt. Unlike
-- `attempts` it is never reset (an admin's retry counts attempts afresh), so a token is never
-- given out twice for one job. A renewal, an outcome, a progress or artifact write carries the
-- token it was claimed with and changes nothing once another claim has moved it on.
ALTER TABLE jobs ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET claims = attempts;

-- The attempt history, now one row per claim that ran (done, failed, dead, killed, lost with
-- its worker, cut at shutdown, or refused because another attempt held the job by then),
-- written in the same statement or transaction as the outcome it records. No foreign key:
-- its per-row check made each group of finished jobs five times as costly (measured with
-- pg_stat_statements in the burst bench); the rows are written only by the statements that
-- change their job, and deleted with it (`prune_done`, `delete_finished`).
CREATE TABLE job_attempts_by_claim (
    job_id TEXT NOT NULL,
    -- The job's `claims` when this attempt claimed it: with the job id, names the attempt.
    claim BIGINT NOT NULL,
    -- Which attempt of the job's count it was (counted afresh after an admin's retry).
    attempt BIGINT NOT NULL,
    worker TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    -- done | failed | dead | killed | lost | cut | refused
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (job_id, claim)
);
-- Earlier rows had no token: they are numbered below zero, oldest first, so they never meet a
-- real one.
INSERT INTO job_attempts_by_claim (job_id, claim, attempt, worker, started_at, finished_at,
    outcome, error)
SELECT job_id, -ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY started_at DESC), attempt,
    worker, started_at, finished_at, outcome, error
FROM job_attempts;
DROP TABLE job_attempts;
ALTER TABLE job_attempts_by_claim RENAME TO job_attempts;

-- Recently finished jobs, whatever their queue: the queue figures (every metrics scrape) and
-- the per-minute series read only the last hour's done rows through it, so their cost stays
-- flat however many finished jobs the ledger keeps.
CREATE INDEX jobs_done_recent ON jobs (state, finished_at);
