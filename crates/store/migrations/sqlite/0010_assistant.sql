-- The buyer assistant: the seller's FAQ, its settings, the chat with buyers, the answers given
-- (from the FAQ, generated, or by a person after a hand-off), and every interaction as a
-- graph of typed nodes and edges written in the same transaction as the chat record.

CREATE TABLE faq_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT    NOT NULL,
    question    TEXT    NOT NULL,
    -- Other ways buyers ask it: a JSON array of strings.
    phrasings   TEXT    NOT NULL DEFAULT '[]',
    answer      TEXT    NOT NULL,
    scope       TEXT,
    tags        TEXT    NOT NULL DEFAULT '',
    lang        TEXT    NOT NULL DEFAULT 'en',
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX faq_entries_key_key ON faq_entries (key);

-- One row, bumped by every change to the FAQ: each node rebuilds its index when it moves.
CREATE TABLE faq_revision (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    revision  INTEGER NOT NULL
);
INSERT INTO faq_revision (id, revision) VALUES (1, 0);

-- One row: the seller's instructions, the confidence threshold and the LLM fallback
-- (an OpenAI-compatible endpoint; its key sealed).
CREATE TABLE assistant_settings (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    instructions  TEXT    NOT NULL DEFAULT '',
    threshold     REAL,
    llm_base_url  TEXT,
    llm_model     TEXT,
    llm_key       BLOB,
    llm_timeout_ms INTEGER NOT NULL DEFAULT 20000,
    updated_at    TEXT    NOT NULL
);
INSERT INTO assistant_settings (id, updated_at) VALUES (1, '1970-01-01T00:00:00Z');

-- Per marketplace shop: `auto` replies when confident, `suggest` only proposes, `off`.
ALTER TABLE market_connections ADD COLUMN assistant_mode TEXT NOT NULL DEFAULT 'suggest'
    CHECK (assistant_mode IN ('auto', 'suggest', 'off'));
-- The last buyer chat message read from the marketplace.
ALTER TABLE market_connections ADD COLUMN chat_cursor TEXT;

-- The chat with buyers, per shop (connection) and buyer.
CREATE TABLE chat_messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id  INTEGER REFERENCES market_connections (id) ON DELETE SET NULL,
    buyer_id       TEXT    NOT NULL,
    buyer_name     TEXT,
    order_id       INTEGER REFERENCES market_orders (id) ON DELETE SET NULL,
    sender         TEXT    NOT NULL CHECK (sender IN ('buyer', 'assistant', 'operator')),
    text           TEXT    NOT NULL,
    -- The marketplace's id of the message: the same message read twice is one row.
    external_id    TEXT,
    created_at     TEXT    NOT NULL
);
CREATE INDEX chat_messages_buyer_idx ON chat_messages (connection_id, buyer_id, id);
CREATE UNIQUE INDEX chat_messages_external_key ON chat_messages (connection_id, external_id);

-- What became of each buyer question.
CREATE TABLE assistant_answers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   INTEGER NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
    -- faq: from an entry; generated: by the LLM; handed_off: waiting for a person;
    -- operator: a person answered.
    source       TEXT    NOT NULL CHECK (source IN ('faq', 'generated', 'handed_off', 'operator')),
    -- suggested: shown, not sent; sent: sent to the buyer; waiting: in the hand-off queue;
    -- dismissed: closed without an answer.
    state        TEXT    NOT NULL CHECK (state IN ('suggested', 'sent', 'waiting', 'dismissed')),
    faq_id       INTEGER REFERENCES faq_entries (id) ON DELETE SET NULL,
    confidence   REAL,
    -- Why: each retriever's scores for the closest entries, and the fallback's error.
    explanation  TEXT    NOT NULL DEFAULT '{}',
    text         TEXT,
    reply_id     INTEGER REFERENCES chat_messages (id) ON DELETE SET NULL,
    operator_id  INTEGER REFERENCES operators (id) ON DELETE SET NULL,
    created_at   TEXT    NOT NULL,
    answered_at  TEXT
);
CREATE UNIQUE INDEX assistant_answers_message_key ON assistant_answers (message_id);
CREATE INDEX assistant_answers_waiting_idx ON assistant_answers (state, id);

-- The interaction graph. A node is a buyer, message, FAQ entry, product, order or answer,
-- named by its kind and a reference (the row's id, a SKU, `connection:buyer`).
CREATE TABLE graph_nodes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('buyer', 'message', 'faq', 'product', 'order', 'answer')),
    ref         TEXT    NOT NULL,
    label       TEXT,
    created_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX graph_nodes_ref_key ON graph_nodes (kind, ref);

CREATE TABLE graph_edges (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    src         INTEGER NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,
    dst         INTEGER NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,
    -- asked (buyer → message), about (message → order or product), placed (buyer → order),
    -- contains (order → product), answered_by (message → answer), used (answer → faq),
    -- sent_as (answer → message).
    kind        TEXT    NOT NULL CHECK (kind IN ('asked', 'about', 'placed', 'contains', 'answered_by', 'used', 'sent_as')),
    created_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX graph_edges_key ON graph_edges (src, kind, dst);
CREATE INDEX graph_edges_dst_idx ON graph_edges (dst, kind);
