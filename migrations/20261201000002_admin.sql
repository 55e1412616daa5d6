-- What admins watch and do (issue 11): each attempt's history, kills, paused queues and
-- disabled accounts.

-- One row per attempt that failed (retried, dead or killed). The latest attempt of a running or
-- done job is the job row itself, so the hot path of a job done at its first try writes no
-- history (measured: a row per done job halved PostgreSQL's throughput). Pruned with its job
-- by the cleanup (ON DELETE CASCADE), so it stays as bounded as the ledger.
CREATE TABLE job_attempts (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- When the attempt started: with the job id, names the attempt (a retried job counts its
    -- attempts from 1 again, so the number alone is not unique).
    started_at BIGINT NOT NULL,
    -- Which attempt of the job's count it was.
    attempt BIGINT NOT NULL,
    worker TEXT,
    finished_at BIGINT NOT NULL,
    -- failed | dead | killed
    outcome TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (job_id, started_at)
);

-- An admin asked to kill the job: a worker holding it stops it at its next lease renewal,
-- one claiming it buries it without running it; either way the kind's dead hook runs.
ALTER TABLE jobs ADD COLUMN killed_at BIGINT;

-- Admin lists: newest first, filtered by queue, kind or state.
CREATE INDEX jobs_queue_id ON jobs (queue, id);
CREATE INDEX jobs_kind_id ON jobs (kind, id);
CREATE INDEX jobs_state_id ON jobs (state, id);
-- Run-time percentiles read the latest finished jobs of a queue.
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at);

-- A paused queue hands out nothing: the relay dispatches none of its jobs and workers claim
-- none (running ones finish). One row per paused queue.
CREATE TABLE queue_pauses (
    queue TEXT PRIMARY KEY,
    paused_at BIGINT NOT NULL,
    -- The admin who paused it.
    paused_by TEXT
);

-- A disabled account cannot sign in, refresh or use a token issued before.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- Worker processes, for admins: each registers on start, beats every few seconds with the
-- number of jobs it runs, and says when it stopped. One silent past its heartbeat is gone.
-- Rows of processes gone for a day are removed by the cleanup.
CREATE TABLE workers (
    -- The instance name, also written on the jobs it claims.
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    version TEXT NOT NULL,
    -- The queues it serves with their concurrency, e.g. `email=4,extraction=2`.
    queues TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    -- Jobs it held at its last heartbeat.
    running BIGINT NOT NULL,
    -- Set on a graceful stop.
    stopped_at BIGINT
);
