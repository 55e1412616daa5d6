-- What a creating request asked for, beside its `Idempotency-Key` (issue 20): a retry with the
-- same key and the same request answers the first resource; the same key with another request
-- is refused (422), as Stripe does. A SHA-256 of the request's parameters, never the text.
-- Rows made before this have none and replay as before.
ALTER TABLE exports ADD COLUMN idempotency_fingerprint TEXT;
ALTER TABLE mission_drafts ADD COLUMN idempotency_fingerprint TEXT;
ALTER TABLE sessions ADD COLUMN idempotency_fingerprint TEXT;
