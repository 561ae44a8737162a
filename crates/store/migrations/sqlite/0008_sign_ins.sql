-- Each sign-in is a row: its token carries the row's id, so signing out (or an operator
-- ending one of their sign-ins from the dashboard) voids that token at once.
CREATE TABLE sign_ins (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    operator_id  INTEGER NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    revoked_at   TEXT,
    -- Where it came from, to recognise it in the list: the client address and user agent.
    address      TEXT NOT NULL,
    client       TEXT NOT NULL
);
CREATE INDEX sign_ins_operator ON sign_ins (operator_id, expires_at);
