-- Each run's result, as the API reported it (output already capped at 1 MiB per stream).
CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    -- Empty for inline programs; the room and file run otherwise.
    room_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    language TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code BIGINT NOT NULL,
    signal BIGINT NOT NULL,
    wall_time_ms BIGINT NOT NULL,
    peak_memory_bytes BIGINT NOT NULL,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL,
    stdout_truncated BIGINT NOT NULL,
    stderr_truncated BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX executions_by_user_and_time ON executions (user_id, created_at_ms);
CREATE INDEX executions_by_room_and_time ON executions (room_id, created_at_ms);
