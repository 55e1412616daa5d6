-- What each maintenance run did, or would do in a dry run (issue 10): one JSON report per
-- job, shown to admins with the schedule. Goes with its job when the ledger is pruned.
CREATE TABLE maintenance_reports (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    dry_run BIGINT NOT NULL,
    -- JSON: {"dry_run": bool, "categories": [{"category", "items", "bytes"}]}
    report TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX maintenance_reports_kind ON maintenance_reports (kind, created_at);

-- Failed recordings whose audio the cleanup removes.
CREATE INDEX sessions_status_updated ON sessions (status, updated_at);
