-- Sealed cookie jars are bound to their account's id (a jar copied to another row no longer
-- opens). Jars sealed before were bound to nothing: the first start after this migration
-- seals them again, bound, and marks them here.
ALTER TABLE accounts ADD COLUMN cookies_bound BOOLEAN NOT NULL DEFAULT FALSE;
