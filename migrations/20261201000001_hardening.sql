-- Hardening (issue 8) and first-start catch-up (issue 12).

-- Linking a patient account to a practitioner's patient record needs the account owner's
-- consent: the practitioner invites an address, a mail carries a single-use link, and the
-- patient accepts it from their own account. Until then the record shows "invited".
-- One open invitation per record, kept on the record itself; accepting it (or unlinking)
-- clears these columns.

-- The normalised address invited; NULL when no invitation is open.
ALTER TABLE patients ADD COLUMN invited_email TEXT;
-- SHA-256 of the link's token; minted by the mail job at send time, NULL until then.
ALTER TABLE patients ADD COLUMN invitation_token_hash TEXT;
-- When the invitation lapses (milliseconds); the link is refused after it.
ALTER TABLE patients ADD COLUMN invitation_expires_at BIGINT;
-- Accepting looks the record up by its token.
CREATE UNIQUE INDEX patients_invitation_token_key ON patients (invitation_token_hash);

-- Requests for account mail (password reset, verification again) by address. The API stores
-- the request and answers at once, the same way for every address; the job that answers it
-- looks the address up, so response time says nothing about which addresses have accounts.
-- The job deletes its row; the cleanup removes rows a dead job left.
CREATE TABLE account_mail_requests (
    id TEXT PRIMARY KEY,
    -- password_reset | verify_email
    purpose TEXT NOT NULL,
    -- The address as normalised by the API (a job payload never holds it).
    email TEXT NOT NULL,
    -- Where the request came from, for the audit log the job writes.
    ip TEXT,
    user_agent TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX account_mail_requests_created ON account_mail_requests (created_at);

-- When this installation first started its scheduler (one row): catch-up on start considers
-- only runs due after it, so a brand-new installation has nothing "missed".
CREATE TABLE installation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    first_started_at BIGINT NOT NULL
);
