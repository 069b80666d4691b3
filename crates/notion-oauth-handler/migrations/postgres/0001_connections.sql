-- PostgreSQL twin of migrations/sqlite/0001_connections.sql: the same tables and columns, in
-- PostgreSQL's types (BIGINT for every integer, so both backends read them as i64).
-- One row per bot: a user's install of the integration in one workspace. Re-authorizing
-- replaces the token pair in place, so a connection is never duplicated.
CREATE TABLE connections (
    bot_id                 TEXT PRIMARY KEY NOT NULL,
    workspace_id           TEXT NOT NULL,
    workspace_name         TEXT,
    workspace_icon         TEXT,
    owner_type             TEXT NOT NULL,
    owner_user_id          TEXT,
    owner_name             TEXT,
    owner_email            TEXT,
    duplicated_template_id TEXT,
    token_type             TEXT NOT NULL,
    -- Sealed by the vault: version, key id, nonce, ciphertext. Never plain text. NULL once the
    -- connection is revoked.
    access_token           BYTEA,
    refresh_token          BYTEA,
    key_id                 TEXT NOT NULL,
    -- Notion's whole answer except the two tokens, including fields added after this release.
    token_response         TEXT NOT NULL,
    ref                    TEXT,
    -- active | needs_reauth | revoked
    status                 TEXT NOT NULL DEFAULT 'active',
    status_reason          TEXT,
    authorizations         BIGINT NOT NULL DEFAULT 1,
    -- Bumped by every new token pair: callers that saw generation N and need a newer token wait
    -- for N+1 instead of refreshing again.
    generation             BIGINT NOT NULL DEFAULT 1,
    -- The refresh lock: its owner (a random id) may refresh or revoke until refresh_lease_until,
    -- which it renews while it works. It stays set with refresh_started_at if the process dies
    -- mid-refresh, which is how the next one learns that a refresh was interrupted.
    refresh_lease_owner    TEXT,
    refresh_lease_until    BIGINT,
    refresh_started_at     BIGINT,
    -- When a refresh whose outcome is unknown started (a crash, a lost answer): Notion may have
    -- rotated the pair, so the stored one may be dead.
    refresh_interrupted_at BIGINT,
    -- When the stored pair was issued (authorization or refresh): what background refresh ages.
    tokens_issued_at       BIGINT NOT NULL,
    refreshed_at           BIGINT,
    checked_at             BIGINT,
    last_request_id        TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX connections_workspace_id ON connections (workspace_id);
CREATE INDEX connections_ref ON connections (ref);
CREATE INDEX connections_status ON connections (status);

-- What happened to each connection, with Notion's request id: connected, reconnected,
-- refreshed, refresh_failed, refresh_interrupted, needs_reauth, checked, revoked.
CREATE TABLE connection_events (
    id         BIGSERIAL PRIMARY KEY,
    bot_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT,
    request_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX connection_events_bot_id ON connection_events (bot_id, id);

-- Deliveries of connection events to the developer's app: one row per event and target,
-- written in the same transaction as the change it reports, so none is lost or invented.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    event_id        TEXT NOT NULL,
    target          TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- Deliveries with the same key and target go out in order (the bot id, or the ref of a
    -- denied flow).
    ordering_key    TEXT NOT NULL,
    bot_id          TEXT,
    -- The event body, without tokens (a webhook with include_tokens gets them added when sent).
    payload         TEXT NOT NULL,
    -- pending | delivered | dead
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by       TEXT,
    locked_until    BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (event_id, target)
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_order ON outbox (target, ordering_key, id);

-- Keys for the API the developer's backend calls. Only a SHA-256 of the secret part is kept.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

-- One-time connect links made through the API: only a digest of each link's token is kept.
CREATE TABLE connect_links (
    token_hash BYTEA PRIMARY KEY NOT NULL,
    ref        TEXT,
    return_to  TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- Nonces of states already accepted: what makes a signed state single-use.
CREATE TABLE used_states (
    nonce      TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_states_expires_at ON used_states (expires_at);
