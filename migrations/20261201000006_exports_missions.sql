-- Issue 9: practice documents (exports), training missions and personal data exports.

-- A PDF or DOCX rendered by the render_export job: queued -> rendering -> ready | failed,
-- and expired once the file is removed (7 days after it was ready); the row stays.
CREATE TABLE exports (
    id TEXT PRIMARY KEY,
    practitioner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- session_notes | progress_report
    kind TEXT NOT NULL,
    -- pdf | docx
    format TEXT NOT NULL,
    session_id TEXT REFERENCES sessions (id) ON DELETE CASCADE,
    patient_id TEXT NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    weeks BIGINT,
    status TEXT NOT NULL,
    error TEXT,
    job_id TEXT,
    object_key TEXT,
    size_bytes BIGINT,
    file_name TEXT,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL,
    ready_at BIGINT,
    expires_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX exports_idempotency_key ON exports (practitioner_id, idempotency_key);
CREATE INDEX exports_by_owner ON exports (practitioner_id, created_at, id);
CREATE INDEX exports_expiry ON exports (status, expires_at);

-- A training mission drafted by the chat model (draft_mission job) from a questionnaire:
-- queued -> generating -> ready | failed. The questionnaire and the plan may hold health and
-- schedule details: they stay here, never in a job payload or a log line.
CREATE TABLE mission_drafts (
    id TEXT PRIMARY KEY,
    -- The coach who owns the client record.
    practitioner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    patient_id TEXT NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    -- Who asked: the coach, or the client's own account.
    requested_by TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- JSON: the validated questionnaire.
    questionnaire TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    job_id TEXT,
    -- JSON: the plan, once ready.
    plan TEXT,
    model_used TEXT,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    cost_micro_usd BIGINT,
    generated_at BIGINT,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX mission_drafts_idempotency_key ON mission_drafts (requested_by, idempotency_key);

-- A confirmed mission (a draft, possibly edited).
CREATE TABLE missions (
    id TEXT PRIMARY KEY,
    practitioner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    patient_id TEXT NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    draft_id TEXT REFERENCES mission_drafts (id) ON DELETE SET NULL,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    questionnaire TEXT NOT NULL,
    plan TEXT NOT NULL,
    -- The day the plan was drafted from (YYYY-MM-DD): its rules (weeks, past days) hold
    -- from then, so an edit months later is checked as the draft was.
    planned_on TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX missions_by_practitioner ON missions (practitioner_id, created_at, id);
CREATE INDEX missions_by_patient ON missions (patient_id, created_at, id);

-- The right of access: one ZIP of everything an account holds, built by the data_export job:
-- queued -> building -> ready | failed, expired after 7 days.
CREATE TABLE data_exports (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    error TEXT,
    job_id TEXT,
    object_key TEXT,
    size_bytes BIGINT,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL,
    ready_at BIGINT,
    expires_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX data_exports_idempotency_key ON data_exports (user_id, idempotency_key);
CREATE INDEX data_exports_by_user ON data_exports (user_id, created_at);
CREATE INDEX data_exports_expiry ON data_exports (status, expires_at);
