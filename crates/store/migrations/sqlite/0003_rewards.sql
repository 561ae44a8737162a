-- Rewards checks: runs over an account selection, one snapshot per account checked (the
-- history), and schedules that start runs.

CREATE TABLE schedules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    cron        TEXT    NOT NULL,
    timezone    TEXT    NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    -- The run each occurrence starts (selection, concurrency, rate limit) as JSON.
    spec        TEXT    NOT NULL,
    next_run_at TEXT,
    last_run_id INTEGER,
    last_run_at TEXT,
    created_by  INTEGER REFERENCES operators (id) ON DELETE SET NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX schedules_name_key ON schedules (name);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled;

CREATE TABLE rewards_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id INTEGER NOT NULL REFERENCES storefronts (id),
    schedule_id   INTEGER REFERENCES schedules (id) ON DELETE SET NULL,
    -- The request as JSON.
    spec          TEXT    NOT NULL,
    -- The accounts to check, resolved when the run was made, as a JSON array of ids.
    accounts      TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'running'
                  CHECK (state IN ('running', 'finished', 'cancelled')),
    total         INTEGER NOT NULL,
    skipped       INTEGER NOT NULL DEFAULT 0,
    checked       INTEGER NOT NULL DEFAULT 0,
    ok            INTEGER NOT NULL DEFAULT 0,
    logged_out    INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    points_total  INTEGER NOT NULL DEFAULT 0,
    concurrency   INTEGER NOT NULL,
    rate_limit    REAL,
    created_by    INTEGER REFERENCES operators (id) ON DELETE SET NULL,
    created_at    TEXT    NOT NULL,
    started_at    TEXT,
    finished_at   TEXT
);
CREATE INDEX rewards_runs_storefront_idx ON rewards_runs (storefront_id, id);

CREATE TABLE rewards_snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER REFERENCES rewards_runs (id) ON DELETE CASCADE,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    status      TEXT    NOT NULL CHECK (status IN ('ok', 'logged_out', 'failed')),
    points      INTEGER,
    tier        TEXT,
    http_status INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    checked_at  TEXT    NOT NULL
);
-- An account is checked at most once per run, even when a crashed run is picked up again.
CREATE UNIQUE INDEX rewards_snapshots_run_account_key ON rewards_snapshots (run_id, account_id);
CREATE INDEX rewards_snapshots_account_idx ON rewards_snapshots (account_id, checked_at);

ALTER TABLE events ADD COLUMN rewards_run_id INTEGER REFERENCES rewards_runs (id) ON DELETE CASCADE;
CREATE INDEX events_rewards_run_idx ON events (rewards_run_id, id) WHERE rewards_run_id IS NOT NULL;
