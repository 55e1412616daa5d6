-- Recorded sessions: patients, their sessions (upload -> transcription -> extraction), the paid
-- provider calls each session caused, and one metrics row per processed session.
-- Same portability rules as the foundation: TEXT ids, BIGINT milliseconds, BIGINT numbers,
-- JSON documents as TEXT.

-- A practitioner's patient. Optionally linked to a `patient` account, which then reads the
-- patient summaries of its own sessions.
CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    practitioner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    display_name TEXT NOT NULL,
    -- The practitioner's own reference (file number, initials); optional.
    reference TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX patients_practitioner ON patients (practitioner_id, id);
CREATE INDEX patients_user ON patients (user_id);
-- One record per practitioner for a given patient account.
CREATE UNIQUE INDEX patients_practitioner_user_key ON patients (practitioner_id, user_id);

-- One recorded session and its processing state.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    practitioner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    patient_id TEXT NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    -- uploaded | transcribing | transcribed | extracting | processed | failed
    status TEXT NOT NULL,
    -- transcription | extraction, when status = failed
    failed_stage TEXT,
    -- Why the stage failed (or why its last attempt failed, while it is retried).
    error TEXT,
    -- audio | transcript: what was uploaded.
    source TEXT NOT NULL,
    -- The sniffed media type, e.g. audio/mpeg or text/vtt.
    media_type TEXT NOT NULL,
    -- Where the upload lies in the object store (NULL once deleted).
    object_key TEXT,
    size_bytes BIGINT NOT NULL,
    recorded_at BIGINT,
    duration_ms BIGINT,
    -- Patient text: never logged, never in a job payload.
    transcript TEXT,
    -- JSON array of {start_ms, end_ms, text}.
    segments TEXT,
    -- JSON object, the validated notes.
    notes TEXT,
    -- The job of the current (or last) stage.
    job_id TEXT,
    -- The client's `Idempotency-Key`: a retried upload finds this session instead of making
    -- a second one.
    idempotency_key TEXT,
    transcription_started_at BIGINT,
    transcription_finished_at BIGINT,
    extraction_started_at BIGINT,
    extraction_finished_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sessions_practitioner ON sessions (practitioner_id, id);
CREATE INDEX sessions_patient ON sessions (patient_id, id);
CREATE UNIQUE INDEX sessions_idempotency_key ON sessions (practitioner_id, idempotency_key);

-- Chunks of a long recording already transcribed: a retried transcription sends only the
-- chunks it does not have (chunking is deterministic; offset and length must match).
-- Cleared when the transcript is stored.
CREATE TABLE transcription_chunks (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    chunk_index BIGINT NOT NULL,
    offset_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- JSON array of segments, already on the recording's time line.
    segments TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, chunk_index)
);

-- Every paid provider call: what it cost, for the session view and later billing.
CREATE TABLE provider_usage (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    job_id TEXT,
    -- transcription | extraction
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    audio_ms BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    -- Estimated cost in millionths of a US dollar, from the configured prices.
    cost_micro_usd BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX provider_usage_session ON provider_usage (session_id);

-- One row per processed session, for analytics (rewritten when notes are re-extracted).
CREATE TABLE session_metrics (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    practitioner_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    -- recorded_at, or the upload time when unknown.
    session_date BIGINT NOT NULL,
    duration_ms BIGINT,
    -- 1 (very low) to 5 (very positive).
    mood_score BIGINT NOT NULL,
    mood_trajectory TEXT NOT NULL,
    -- JSON array of the key topics.
    topics TEXT NOT NULL,
    strategy_count BIGINT NOT NULL,
    action_item_count BIGINT NOT NULL,
    risk_flag_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX session_metrics_patient ON session_metrics (patient_id, session_date);
CREATE INDEX session_metrics_practitioner ON session_metrics (practitioner_id, session_date);

-- Uploads being streamed into the object store, before their session exists. A row outlives
-- its upload only if the API died mid-way (or between the store and the database): the
-- cleanup job then removes the object it may have left. No listing of the store is needed.
CREATE TABLE pending_uploads (
    object_key TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE INDEX pending_uploads_created ON pending_uploads (created_at);
