-- Provider usage belongs to the job that paid for it, and to a recorded session only when
-- it was for one (a mission draft's calls are for none). SQLite cannot drop NOT NULL in
-- place, so the table is rebuilt the same way on both databases.
CREATE TABLE provider_usage_by_job (
    id TEXT PRIMARY KEY,
    -- The job whose call this was (its ledger row may be pruned; the cost stays).
    job_id TEXT NOT NULL,
    -- The recording it was for, if any; its usage goes with it.
    session_id TEXT REFERENCES sessions (id) ON DELETE CASCADE,
    -- What the call was for: transcription | extraction (more with new job kinds).
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    audio_ms BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    -- Estimated cost in millionths of a US dollar, from the configured prices.
    cost_micro_usd BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
INSERT INTO provider_usage_by_job (id, job_id, session_id, stage, model, audio_ms,
    prompt_tokens, completion_tokens, cost_micro_usd, created_at)
SELECT id, COALESCE(job_id, ''), session_id, stage, model, audio_ms, prompt_tokens,
    completion_tokens, cost_micro_usd, created_at
FROM provider_usage;
DROP TABLE provider_usage;
ALTER TABLE provider_usage_by_job RENAME TO provider_usage;
CREATE INDEX provider_usage_job ON provider_usage (job_id);
CREATE INDEX provider_usage_session ON provider_usage (session_id);
