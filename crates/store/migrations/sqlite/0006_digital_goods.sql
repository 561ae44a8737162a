-- Digital goods: what a seller sells, the stock of unique items, marketplace connections and
-- their listings, marketplace orders with where each status came from, deliveries and the
-- outbox their messages go through.

CREATE TABLE digital_products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sku         TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('code', 'credential', 'shared', 'template')),
    -- The delivery message, with {{variables}} checked against the kind when saved.
    message     TEXT    NOT NULL,
    -- A shared product's content (a link, a text), sealed.
    content     BLOB,
    -- Below this many available items the product raises a low-stock alert.
    low_stock   INTEGER NOT NULL DEFAULT 0,
    -- Whether the low-stock alert went out since stock last rose (one alert per crossing).
    -- The buyer's page: days it shows the goods after delivery (NULL: always), and whether
    -- the goods show once, behind a button.
    link_days   BIGINT,
    reveal_once INTEGER NOT NULL DEFAULT 0,
    low_alerted INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX digital_products_sku_key ON digital_products (sku);

CREATE TABLE market_connections (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- `shopee` (and the demo marketplace, which speaks its API).
    marketplace   TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    shop_id       TEXT    NOT NULL,
    base_url      TEXT    NOT NULL,
    partner_id    TEXT    NOT NULL,
    -- The partner key, access and refresh tokens, sealed.
    secrets       BLOB NOT NULL,
    -- The update time the next reconciliation poll starts from.
    polled_to     TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);
CREATE UNIQUE INDEX market_connections_shop_key ON market_connections (marketplace, shop_id);

CREATE TABLE listings (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id  INTEGER NOT NULL REFERENCES market_connections (id) ON DELETE CASCADE,
    -- The marketplace's item and model (variant) ids, or the seller's SKU ('' when unused).
    item_id        TEXT    NOT NULL DEFAULT '',
    model_id       TEXT    NOT NULL DEFAULT '',
    seller_sku     TEXT    NOT NULL DEFAULT '',
    product_id     INTEGER NOT NULL REFERENCES digital_products (id),
    -- Units of the product delivered per unit sold.
    units          INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT    NOT NULL
);
CREATE UNIQUE INDEX listings_item_key ON listings (connection_id, item_id, model_id, seller_sku);

CREATE TABLE market_orders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id  INTEGER REFERENCES market_connections (id) ON DELETE SET NULL,
    marketplace    TEXT    NOT NULL,
    shop_id        TEXT    NOT NULL,
    external_id    TEXT    NOT NULL,
    buyer_name     TEXT,
    buyer_id       TEXT,
    buyer_email    TEXT,
    total_minor    INTEGER,
    currency       TEXT,
    payment_method TEXT,
    state          TEXT    NOT NULL DEFAULT 'unpaid'
                   CHECK (state IN ('unpaid', 'paid', 'delivering', 'delivered', 'partially_delivered', 'needs_attention', 'cancelled', 'refunded')),
    -- What the marketplace last said (`unpaid`, `paid`, `cancelled`, `refunded`) and its
    -- update time: an older report never overwrites a newer one.
    reported       TEXT    NOT NULL,
    reported_at    TEXT    NOT NULL,
    attention      TEXT,
    paid_at        TEXT,
    delivered_at   TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);
CREATE UNIQUE INDEX market_orders_external_key ON market_orders (marketplace, shop_id, external_id);
CREATE INDEX market_orders_state_idx ON market_orders (state, id);

CREATE TABLE market_order_lines (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id         INTEGER NOT NULL REFERENCES market_orders (id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    item_id          TEXT    NOT NULL DEFAULT '',
    model_id         TEXT    NOT NULL DEFAULT '',
    seller_sku       TEXT    NOT NULL DEFAULT '',
    name             TEXT    NOT NULL,
    quantity         INTEGER NOT NULL,
    unit_price_minor INTEGER
);
CREATE UNIQUE INDEX market_order_lines_key ON market_order_lines (order_id, line_no);

-- Every status an order was told and every move it made, with where it came from.
CREATE TABLE market_order_history (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id  INTEGER NOT NULL REFERENCES market_orders (id) ON DELETE CASCADE,
    at        TEXT    NOT NULL,
    source    TEXT    NOT NULL,
    reported  TEXT,
    state     TEXT,
    note      TEXT
);
CREATE INDEX market_order_history_order_idx ON market_order_history (order_id, id);

-- Pushes as received, before anything is done with them: the receiver answers at once.
CREATE TABLE market_inbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id  INTEGER REFERENCES market_connections (id) ON DELETE CASCADE,
    received_at    TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    processed_at   TEXT,
    error          TEXT
);

CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id      INTEGER NOT NULL REFERENCES market_orders (id) ON DELETE CASCADE,
    line_no       INTEGER NOT NULL,
    product_id    INTEGER REFERENCES digital_products (id),
    units         INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'waiting'
                  CHECK (state IN ('waiting', 'sending', 'delivered', 'released', 'revoked')),
    -- The delivery page's key: its hash finds the page; the key itself is sealed, to show the
    -- link again.
    token_hash    BLOB NOT NULL,
    token         BLOB NOT NULL,
    -- The message as sent (it holds the goods), sealed.
    message       BLOB,
    attention     TEXT,
    -- When the buyer revealed a reveal-once page's goods.
    revealed_at   TEXT,
    reveals       INTEGER NOT NULL DEFAULT 0,
    -- How many times an operator sent it again (each send gets a new idempotency key).
    resends       INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL,
    claimed_at    TEXT,
    delivered_at  TEXT,
    ended_at      TEXT,
    expires_at    TEXT
);
CREATE UNIQUE INDEX deliveries_line_key ON deliveries (order_id, line_no);
CREATE UNIQUE INDEX deliveries_token_key ON deliveries (token_hash);
CREATE INDEX deliveries_waiting_idx ON deliveries (product_id, id) WHERE state = 'waiting';

CREATE TABLE stock_items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id   INTEGER NOT NULL REFERENCES digital_products (id),
    state        TEXT    NOT NULL DEFAULT 'available'
                 CHECK (state IN ('available', 'reserved', 'delivered', 'revoked')),
    -- The item, sealed; its keyed hash finds duplicates without opening it.
    secret       BLOB NOT NULL,
    fingerprint  BLOB NOT NULL,
    masked       TEXT    NOT NULL,
    delivery_id  INTEGER REFERENCES deliveries (id),
    imported_at  TEXT    NOT NULL,
    reserved_at  TEXT,
    delivered_at TEXT
);
CREATE UNIQUE INDEX stock_items_fingerprint_key ON stock_items (product_id, fingerprint);
-- Only available items, in claim order: the claim reads this index and nothing else.
CREATE INDEX stock_items_claim_idx ON stock_items (product_id, id) WHERE state = 'available';
CREATE INDEX stock_items_delivery_idx ON stock_items (delivery_id);

-- Where deliveries go besides the buyer's page: the seller's webhook, e-mail, the marketplace
-- chat. Never deleted once used (their sends name them), only switched off.
CREATE TABLE channels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('webhook', 'email', 'chat')),
    name        TEXT    NOT NULL,
    -- The checked settings (address, sender, subject) as JSON; the secret apart, sealed.
    settings    TEXT    NOT NULL,
    secret      BLOB,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

-- The outbox: one row per delivery and channel (channel_id 0 is the delivery page), with its
-- idempotency key, its attempts and the receiver's answer.
CREATE TABLE delivery_sends (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    channel_id       INTEGER NOT NULL,
    channel          TEXT    NOT NULL CHECK (channel IN ('page', 'webhook', 'email', 'chat')),
    idempotency_key  TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sent', 'failed', 'skipped', 'queued')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    answer           TEXT,
    created_at       TEXT    NOT NULL,
    tried_at         TEXT,
    sent_at          TEXT
);
CREATE UNIQUE INDEX delivery_sends_key ON delivery_sends (delivery_id, channel_id);
