-- Runs: durable jobs, order batches and their orders, and the event log they write.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    -- Higher first: sign-in tests before orders before rewards checks.
    priority     INTEGER NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 5,
    run_at       TEXT    NOT NULL,
    -- At most one queued or running job per key (one rewards check per account at a time).
    unique_key   TEXT,
    worker       TEXT,
    heartbeat_at TEXT,
    last_error   TEXT,
    created_at   TEXT    NOT NULL,
    finished_at  TEXT
);
-- Only queued jobs, in claim order: the claim reads this index and nothing else.
CREATE INDEX jobs_claim_idx ON jobs (priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_running_idx ON jobs (heartbeat_at) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_unique_key_key ON jobs (unique_key) WHERE state IN ('queued', 'running');

CREATE TABLE batches (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT,
    storefront_id INTEGER NOT NULL REFERENCES storefronts (id),
    -- The submitted batch (selection, cart, address, payment, coupon policy, cap) as JSON.
    spec          TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'running'
                  CHECK (state IN ('running', 'paused', 'stopped', 'finished')),
    pause_reason  TEXT,
    created_by    INTEGER REFERENCES operators (id) ON DELETE SET NULL,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    finished_at   TEXT
);

CREATE TABLE orders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id       INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    account_id     INTEGER NOT NULL REFERENCES accounts (id),
    repetition     INTEGER NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'placing', 'placed', 'failed', 'cancelled', 'skipped')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    error_class    TEXT,
    error_message  TEXT,
    subtotal_minor INTEGER,
    discount_minor INTEGER,
    total_minor    INTEGER,
    coupon         TEXT,
    order_number   TEXT,
    -- Order numbers in the account's history just before the final click, as JSON: after a
    -- crash, a number not among them is this order.
    history_before TEXT,
    -- Per-phase durations in milliseconds, as JSON.
    timings        TEXT,
    screenshot     TEXT,
    snapshot       TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    started_at     TEXT,
    placing_at     TEXT,
    finished_at    TEXT
);
CREATE UNIQUE INDEX orders_repetition_key ON orders (batch_id, account_id, repetition);
CREATE INDEX orders_account_idx ON orders (account_id, id);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id   INTEGER REFERENCES batches (id) ON DELETE CASCADE,
    order_id   INTEGER REFERENCES orders (id) ON DELETE CASCADE,
    account_id INTEGER,
    phase      TEXT,
    step       TEXT,
    level      TEXT    NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message    TEXT    NOT NULL,
    at         TEXT    NOT NULL
);
CREATE INDEX events_batch_idx ON events (batch_id, id);
CREATE INDEX events_order_idx ON events (order_id, id);
