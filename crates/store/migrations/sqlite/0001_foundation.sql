-- Foundation: operators and their API tokens, storefronts, customer accounts, products,
-- shipping addresses. Timestamps are fixed-width UTC text (see db::Ts). Unique indexes are
-- named {table}_{field}_key so that a violation names the API field.

CREATE TABLE operators (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    email         TEXT,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    -- Bumped when a password, role or disabled flag changes: older sign-in tokens stop working.
    auth_version  INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    last_login_at TEXT
);
CREATE UNIQUE INDEX operators_username_key ON operators (username);
CREATE UNIQUE INDEX operators_email_key ON operators (email);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    -- SHA-256 of the secret; the secret itself is shown once and never stored.
    secret_hash  BLOB NOT NULL,
    prefix       TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_by   INTEGER REFERENCES operators (id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE UNIQUE INDEX api_tokens_secret_hash_key ON api_tokens (secret_hash);

CREATE TABLE storefronts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    profile    TEXT NOT NULL,
    base_url   TEXT NOT NULL,
    currency   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX storefronts_slug_key ON storefronts (slug);

CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL REFERENCES storefronts (id),
    label           TEXT,
    name            TEXT,
    email           TEXT,
    phone           TEXT,
    -- Sorted, comma-separated, each tag [a-z0-9-_:.]: filtered with LIKE '%,tag,%'.
    tags            TEXT    NOT NULL DEFAULT '',
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    -- AES-256-GCM sealed JSON of the cookie jar.
    cookies         BLOB,
    -- The jar without values (names, domains, expiry), JSON, for listing without decrypting.
    cookie_info     TEXT,
    session_status  TEXT    NOT NULL DEFAULT 'unknown'
                    CHECK (session_status IN ('unknown', 'ok', 'logged_out')),
    points          INTEGER,
    tier            TEXT,
    last_checked_at TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    CHECK (email IS NOT NULL OR phone IS NOT NULL)
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (storefront_id, email);
CREATE UNIQUE INDEX accounts_phone_key ON accounts (storefront_id, phone);
-- Positions (the old "users 1-50") count a storefront's accounts in id order.
CREATE INDEX accounts_position_idx ON accounts (storefront_id, id);

CREATE TABLE products (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id INTEGER NOT NULL REFERENCES storefronts (id),
    name          TEXT    NOT NULL,
    url           TEXT    NOT NULL,
    sku           TEXT,
    price_minor   INTEGER CHECK (price_minor >= 0),
    brand         TEXT,
    category      TEXT,
    in_stock      BOOLEAN NOT NULL DEFAULT TRUE,
    image_url     TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);
CREATE UNIQUE INDEX products_url_key ON products (storefront_id, url);
CREATE UNIQUE INDEX products_sku_key ON products (storefront_id, sku);

CREATE TABLE addresses (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    label      TEXT,
    full_name  TEXT    NOT NULL,
    line1      TEXT    NOT NULL,
    street     TEXT,
    landmark   TEXT,
    postcode   TEXT    NOT NULL,
    city       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    phone      TEXT    NOT NULL,
    kind       TEXT    NOT NULL DEFAULT 'home' CHECK (kind IN ('home', 'work', 'other')),
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
-- At most one default address: a unique index over the rows where it is true.
CREATE UNIQUE INDEX addresses_is_default_key ON addresses (is_default) WHERE is_default;
