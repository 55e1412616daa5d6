-- The right to be forgotten (issue 9): an account asked to be erased is unusable at once
-- (erasing_at set, tokens refused) and the erase_account job removes it and everything it
-- owns. An admin cannot re-enable it meanwhile.
ALTER TABLE users ADD COLUMN erasing_at BIGINT;
