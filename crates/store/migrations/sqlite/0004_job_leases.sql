-- A running job's lease: its worker sets the moment it may be presumed dead (now plus that
-- worker's own stale_after) on every beat, so nodes with different settings never take each
-- other's live jobs.
ALTER TABLE jobs RENAME COLUMN heartbeat_at TO lease_until;
