-- Analytics rollups (issue 10), written by the daily_stats and weekly_snapshots jobs. Each
-- computation replaces its period's rows, so running it twice gives the same rows. Days are
-- UTC dates as TEXT (YYYY-MM-DD), weeks ISO weeks (YYYY-Www): they sort, and read the same on
-- both databases. An average is stored as its sum and count, so periods add up exactly.

-- One row per practitioner per UTC day with anything in it.
CREATE TABLE daily_stats (
    practitioner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    -- Sessions created that day.
    recordings_uploaded BIGINT NOT NULL,
    -- Sessions whose notes were extracted that day (and are processed).
    recordings_processed BIGINT NOT NULL,
    -- Sessions that failed that day (and are still failed).
    recordings_failed BIGINT NOT NULL,
    -- Audio transcribed that day.
    audio_ms BIGINT NOT NULL,
    new_patients BIGINT NOT NULL,
    -- Mood scores (1-5) of the processed sessions held that day.
    mood_sum BIGINT NOT NULL,
    mood_count BIGINT NOT NULL,
    -- Provider calls made that day for the practitioner's sessions.
    cost_micro_usd BIGINT NOT NULL,
    computed_at BIGINT NOT NULL,
    PRIMARY KEY (practitioner_id, day)
);
CREATE INDEX daily_stats_day ON daily_stats (day);

-- The platform-wide row of each computed day, for admins; also the mark that a day was
-- computed (the job catches up every day after the last one, at most 31).
CREATE TABLE daily_platform_stats (
    day TEXT PRIMARY KEY,
    users_registered BIGINT NOT NULL,
    recordings_uploaded BIGINT NOT NULL,
    recordings_processed BIGINT NOT NULL,
    recordings_failed BIGINT NOT NULL,
    audio_ms BIGINT NOT NULL,
    new_patients BIGINT NOT NULL,
    mood_sum BIGINT NOT NULL,
    mood_count BIGINT NOT NULL,
    -- Every provider call of the day, for a session or not (mission drafts).
    cost_micro_usd BIGINT NOT NULL,
    computed_at BIGINT NOT NULL
);

-- Jobs that finished each day, per kind (from the ledger, which keeps done jobs 14 days).
CREATE TABLE daily_job_stats (
    day TEXT NOT NULL,
    kind TEXT NOT NULL,
    done BIGINT NOT NULL,
    dead BIGINT NOT NULL,
    -- 95th percentile of the run time of the day's finished jobs of the kind.
    p95_run_ms BIGINT,
    PRIMARY KEY (day, kind)
);

-- One row per patient per ISO week with a processed session in it.
CREATE TABLE patient_progress (
    patient_id TEXT NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    practitioner_id TEXT NOT NULL,
    week TEXT NOT NULL,
    sessions BIGINT NOT NULL,
    mood_sum BIGINT NOT NULL,
    mood_count BIGINT NOT NULL,
    improving BIGINT NOT NULL,
    declining BIGINT NOT NULL,
    stable BIGINT NOT NULL,
    fluctuating BIGINT NOT NULL,
    -- JSON array of {topic, count}, the week's most frequent (case and plurals folded).
    top_topics TEXT NOT NULL,
    action_items BIGINT NOT NULL,
    risk_flags BIGINT NOT NULL,
    computed_at BIGINT NOT NULL,
    PRIMARY KEY (patient_id, week)
);

-- Which ISO weeks the weekly snapshot has computed (the job catches up the weeks after).
CREATE TABLE weekly_snapshot_runs (
    week TEXT PRIMARY KEY,
    computed_at BIGINT NOT NULL
);

-- The day's rollup reads by time.
CREATE INDEX sessions_created ON sessions (created_at);
CREATE INDEX patients_created ON patients (created_at);
CREATE INDEX provider_usage_created ON provider_usage (created_at);
CREATE INDEX session_metrics_date ON session_metrics (session_date);
