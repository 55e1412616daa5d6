-- The keys that sign access tokens (issue 20): the newest signs, older ones verify the tokens
-- they signed until those have expired. Rotated by `tend-api rotate-signing-key`, by an admin
-- (POST /api/v1/admin/signing-keys) or on the `rotate_signing_key` schedule. `rotation` names
-- a scheduled rotation (`schedule:<tick>`) so a retried run makes no second key. Backups leave
-- this table out: a restored database has no copy of signing material.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    rotation TEXT UNIQUE
);
