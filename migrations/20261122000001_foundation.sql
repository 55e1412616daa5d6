-- Foundation schema: accounts, tokens, audit log and the job ledger.
-- Portable between SQLite and PostgreSQL: ids are TEXT (UUID v7, time-ordered), times are
-- BIGINT milliseconds since the Unix epoch, numbers are BIGINT (sqlx's Any driver decodes
-- them as i64 on both databases), flags are nullable timestamps rather than booleans.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Lower-cased at the edge (domain::Email), so the unique index is case-insensitive.
    email TEXT NOT NULL,
    -- Argon2id PHC string; never logged, never returned.
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'practitioner', 'patient')),
    display_name TEXT,
    -- NULL until the user follows the verification link.
    email_verified_at BIGINT,
    -- Access tokens issued (iat) before this instant are refused: set by a password reset.
    tokens_valid_after BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- Named so the API maps a violation to 409 Conflict.
CREATE UNIQUE INDEX users_email_key ON users (email);

-- Opaque refresh tokens, stored as SHA-256 hashes. Every rotation spends one token and issues
-- the next in the same family; presenting a spent token revokes the whole family.
CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Set when rotated: the token may not be used again.
    used_at BIGINT,
    -- Set by logout, reuse detection or a password reset.
    revoked_at BIGINT
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Single-use links sent by email (verification, password reset), stored hashed.
CREATE TABLE email_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE UNIQUE INDEX email_tokens_hash_key ON email_tokens (token_hash);
CREATE INDEX email_tokens_user ON email_tokens (user_id);

-- Security-relevant events. user_id has no foreign key: the trail outlives a deleted account.
CREATE TABLE audit_logs (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    user_id TEXT,
    action TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    -- Small JSON object with ids and reasons; never a password, token or patient text.
    detail TEXT
);
CREATE INDEX audit_logs_at ON audit_logs (at);
CREATE INDEX audit_logs_user ON audit_logs (user_id, at);

-- The job ledger: the truth about every job. The queue (Redis or SQLite) only carries ids.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    -- Which apalis queue (and worker pool) runs it.
    queue TEXT NOT NULL,
    -- JSON of the typed payload: ids only, never patient text or secrets.
    payload TEXT NOT NULL,
    -- pending: waiting to run; running: leased by a worker; failed: waiting for a retry at
    -- run_at; done; dead: will not run again (permanent error or attempts used up).
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'dead')),
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
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX jobs_dedup_key ON jobs (dedup_key);
CREATE INDEX jobs_dispatch ON jobs (queue, state, dispatched_at, run_at);
CREATE INDEX jobs_lease ON jobs (state, lease_until);
CREATE INDEX jobs_created_by ON jobs (created_by);
