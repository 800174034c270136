-- Each file's document is its latest snapshot plus the updates appended after it.
-- Updates are Yjs v1 updates exactly as clients sent them; applying one twice is harmless,
-- which is what lets a snapshot overlap the log it replaces.
CREATE TABLE document_updates (
    file_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    update_v1 BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (file_id, seq)
);

CREATE TABLE document_snapshots (
    file_id TEXT PRIMARY KEY,
    -- Every update with seq <= covers_seq is contained in state_v1.
    covers_seq BIGINT NOT NULL,
    state_v1 BYTEA NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
