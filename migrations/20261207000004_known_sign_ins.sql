-- Where each account has signed in from (issue 20): its client networks (an IPv4 address or an
-- IPv6 /64) with the last successful sign-in. Login attempts from a known network are limited
-- apart from the others', so strangers cannot lock the owner out. Kept 90 days after the last
-- sign-in (the cleanup removes older rows); goes with its account.
CREATE TABLE known_sign_ins (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_key TEXT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_key)
);
CREATE INDEX known_sign_ins_last_at ON known_sign_ins (last_at);
