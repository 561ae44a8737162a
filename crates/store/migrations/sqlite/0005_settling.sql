-- no-transaction
-- An order whose final click went out leaves `placing` only on positive evidence: it can be
-- `unresolved` (a person must settle it), and keeps what settling it found (`settling`, JSON).
-- Failed orders of the old class `unresolved` become that state. People's decisions go to the
-- audit log. SQLite cannot change a CHECK constraint in place: the table is rebuilt, with
-- foreign keys off so that dropping the old table does not cascade to the events.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE orders_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id       INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    account_id     INTEGER NOT NULL REFERENCES accounts (id),
    repetition     INTEGER NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'placing', 'placed', 'failed', 'cancelled', 'skipped', 'unresolved')),
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
    finished_at    TEXT,
    -- What settling the order after its final click found (core::placing::Settling), as JSON.
    settling       TEXT
);
INSERT INTO orders_new (id, batch_id, account_id, repetition, state, attempts, error_class,
    error_message, subtotal_minor, discount_minor, total_minor, coupon, order_number,
    history_before, timings, screenshot, snapshot, created_at, updated_at, started_at,
    placing_at, finished_at)
SELECT id, batch_id, account_id, repetition,
    CASE WHEN state = 'failed' AND error_class = 'unresolved' THEN 'unresolved' ELSE state END,
    attempts,
    CASE WHEN error_class = 'unresolved' THEN NULL ELSE error_class END,
    error_message, subtotal_minor, discount_minor, total_minor, coupon, order_number,
    history_before, timings, screenshot, snapshot, created_at, updated_at, started_at,
    placing_at, finished_at
FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE UNIQUE INDEX orders_repetition_key ON orders (batch_id, account_id, repetition);
CREATE INDEX orders_account_idx ON orders (account_id, id);

-- Who did what that matters: an order settled by hand, a secret revealed.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL,
    operator_id INTEGER REFERENCES operators (id) ON DELETE SET NULL,
    -- The operator's name at the time, kept when the operator is deleted.
    actor       TEXT    NOT NULL,
    -- What was done (`order.resolve`).
    action      TEXT    NOT NULL,
    -- What it was done to (`order:12`).
    subject     TEXT    NOT NULL,
    -- The details, as JSON.
    detail      TEXT
);
CREATE INDEX audit_subject_idx ON audit (subject, id);
COMMIT;
PRAGMA foreign_keys = ON;
