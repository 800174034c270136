-- Accounts and refresh tokens of the auth service.
-- Portable SQL: SQLite and PostgreSQL both accept it.

CREATE TABLE auth_users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    -- Lower-cased username: names differing only in case are one name.
    username_key TEXT NOT NULL UNIQUE,
    -- Stored lower-cased.
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    -- Flags are BIGINT 0/1: the portable (sqlx Any) driver cannot read SQLite BOOLEAN columns.
    is_admin BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Refresh tokens are stored as SHA-256 hashes. A family is the chain of
-- tokens obtained from one login by rotation; reuse of a used token revokes it.
CREATE TABLE auth_refresh_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT,
    revoked_at_ms BIGINT
);

CREATE INDEX auth_refresh_tokens_family ON auth_refresh_tokens (family_id);
CREATE INDEX auth_refresh_tokens_user ON auth_refresh_tokens (user_id);
