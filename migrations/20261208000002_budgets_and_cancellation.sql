-- Budgets and cancellation (issue 22, items 4 and 5): two more job states, a budget per
-- practice, and the usage ledger by practice.
--
-- held: waits for something outside the job before it may run (held_reason says what: today
-- only budget_exceeded, a practice past its monthly budget); never handed to the transport.
-- cancelled: stopped at the request of its owner or an admin (cancelled_by says who); will
-- not run again.
--
-- SQLite cannot change a CHECK, so the table is rebuilt (the same statements on PostgreSQL).
-- Only maintenance_reports refers to jobs: it is set aside first so that dropping the old
-- table deletes nothing through its ON DELETE CASCADE.
CREATE TABLE jobs_with_holds (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    -- Which apalis queue (and worker pool) runs it.
    queue TEXT NOT NULL,
    -- JSON of the typed payload: ids only, never patient text or secrets.
    payload TEXT NOT NULL,
    -- pending: waiting to run; running: leased by a worker; failed: waiting for a retry at
    -- run_at; held: waiting for held_reason to clear; done; dead: will not run again
    -- (permanent error, attempts used up, killed); cancelled: stopped by its owner or an admin.
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'dead',
        'held', 'cancelled')),
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    -- Not before this instant (backoff after a failure).
    run_at BIGINT NOT NULL,
    -- Outbox: NULL until the relay hands the job to the queue.
    dispatched_at BIGINT,
    -- A running job's worker renews this; once it lapses the job is given to another worker.
    lease_until BIGINT,
    worker TEXT,
    last_error TEXT,
    -- The user whose request started it (GET /jobs/{id} shows a user their own jobs).
    created_by TEXT,
    request_id TEXT,
    -- Scheduler ticks use it so two replicas never enqueue the same run twice.
    dedup_key TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL,
    -- When an admin killed it or somebody cancelled it: its running attempt stops.
    killed_at BIGINT,
    -- The fencing token of its latest attempt.
    claims BIGINT NOT NULL DEFAULT 0,
    -- The practice whose work it is; NULL for the system's.
    tenant TEXT,
    -- 0 goes first, 9 last.
    priority BIGINT NOT NULL DEFAULT 5,
    -- Its turn among its priority's waiting work (start-time fair queueing).
    fair_key BIGINT NOT NULL DEFAULT 0,
    -- Why a held job waits: budget_exceeded.
    held_reason TEXT,
    -- Who cancelled it (a user id); with killed_at, the job ends cancelled rather than dead.
    cancelled_by TEXT
);
INSERT INTO jobs_with_holds (id, kind, queue, payload, state, attempts, max_attempts, run_at,
    dispatched_at, lease_until, worker, last_error, created_by, request_id, dedup_key,
    created_at, started_at, finished_at, updated_at, killed_at, claims, tenant, priority,
    fair_key)
SELECT id, kind, queue, payload, state, attempts, max_attempts, run_at, dispatched_at,
    lease_until, worker, last_error, created_by, request_id, dedup_key, created_at, started_at,
    finished_at, updated_at, killed_at, claims, tenant, priority, fair_key
FROM jobs;

CREATE TABLE maintenance_reports_kept AS SELECT * FROM maintenance_reports;
DROP TABLE maintenance_reports;
DROP TABLE jobs;
ALTER TABLE jobs_with_holds RENAME TO jobs;

CREATE TABLE maintenance_reports (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    dry_run BIGINT NOT NULL,
    -- JSON: {"dry_run": bool, "categories": [{"category", "items", "bytes"}]}
    report TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO maintenance_reports (job_id, kind, dry_run, report, created_at)
SELECT job_id, kind, dry_run, report, created_at FROM maintenance_reports_kept;
DROP TABLE maintenance_reports_kept;
CREATE INDEX maintenance_reports_kind ON maintenance_reports (kind, created_at);

-- The indexes the ledger had.
CREATE INDEX jobs_queue_id ON jobs (queue, id);
CREATE INDEX jobs_kind_id ON jobs (kind, id);
CREATE INDEX jobs_state_id ON jobs (state, id);
CREATE INDEX jobs_lease ON jobs (state, lease_until) WHERE state = 'running';
CREATE INDEX jobs_done_recent ON jobs (state, finished_at) WHERE state = 'done';
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at) WHERE state = 'done';
CREATE UNIQUE INDEX jobs_dedup_key ON jobs (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX jobs_dead ON jobs (queue, state, finished_at) WHERE state = 'dead';
CREATE INDEX jobs_dispatch ON jobs (queue, state, dispatched_at, priority, fair_key);
-- A practice's held work: for the chore that resumes it when its budget allows, and its
-- count. (No index on tenant for every job: one more index made the burst bench's enqueue 15%
-- slower, and cancelling a practice's unfinished jobs, a rare admin action, reads the
-- unfinished jobs through jobs_state_id instead.)
CREATE INDEX jobs_held ON jobs (tenant) WHERE state = 'held';

-- A practice's monthly budget for paid provider calls, when an admin set one (otherwise
-- PRACTICE_MONTHLY_BUDGET_USD applies, unlimited when unset). NULL: no limit.
CREATE TABLE practice_budgets (
    tenant TEXT PRIMARY KEY,
    monthly_micro_usd BIGINT,
    updated_by TEXT,
    updated_at BIGINT NOT NULL
);

-- The usage ledger by practice: what a practice spent this month is one index range.
ALTER TABLE provider_usage ADD COLUMN tenant TEXT;
UPDATE provider_usage SET tenant = (
    SELECT practitioner_id FROM sessions WHERE sessions.id = provider_usage.session_id);
UPDATE provider_usage SET tenant = (
    SELECT jobs.tenant FROM jobs WHERE jobs.id = provider_usage.job_id)
WHERE tenant IS NULL;
CREATE INDEX provider_usage_tenant ON provider_usage (tenant, created_at);
