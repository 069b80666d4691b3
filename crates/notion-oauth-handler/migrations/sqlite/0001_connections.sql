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
    -- Sealed by the vault: version, key id, nonce, ciphertext. Never plain text.
    access_token           BLOB NOT NULL,
    refresh_token          BLOB,
    key_id                 TEXT NOT NULL,
    -- Notion's whole answer except the two tokens, including fields added after this release.
    token_response         TEXT NOT NULL,
    ref                    TEXT,
    status                 TEXT NOT NULL DEFAULT 'active',
    authorizations         INTEGER NOT NULL DEFAULT 1,
    last_request_id        TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX connections_workspace_id ON connections (workspace_id);
CREATE INDEX connections_ref ON connections (ref);

-- Nonces of states already accepted: what makes a signed state single-use.
CREATE TABLE used_states (
    nonce      TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX used_states_expires_at ON used_states (expires_at);
