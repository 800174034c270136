-- File versions (explicit saves, automatic checkpoints, restores) and each room's event log,
-- owned by the history service. Portable SQL: SQLite and PostgreSQL both accept it.

CREATE TABLE file_versions (
    id TEXT PRIMARY KEY,
    file_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    -- 1, 2, 3, ... per file: the unique pair is what keeps numbers gap-free under races.
    number BIGINT NOT NULL,
    -- save, checkpoint or restore.
    kind TEXT NOT NULL,
    -- A JSON array of {"id": ..., "username": ...}: who edited since the previous version.
    authors_json TEXT NOT NULL,
    message TEXT NOT NULL,
    lines_added BIGINT NOT NULL,
    lines_removed BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    -- full: body is the content (UTF-8); delta: body turns version number - 1 into this one.
    encoding TEXT NOT NULL,
    body BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (file_id, number)
);

CREATE TABLE room_events (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- A JSON object: the event's details.
    metadata_json TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX room_events_by_room_and_time ON room_events (room_id, created_at_ms);
