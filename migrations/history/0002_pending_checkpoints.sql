-- Files edited since their newest version, waiting for a checkpoint: written before the
-- collaboration event that reported the edits is acknowledged, so that a restart of history (or
-- another replica taking its events over) still takes the checkpoint.
CREATE TABLE history_pending_checkpoints (
    file_id TEXT PRIMARY KEY,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    -- A JSON array of user ids, in the order they were first seen editing.
    editors_json TEXT NOT NULL,
    -- A checkpoint that failed for a passing reason waits until then.
    retry_at_ms BIGINT NOT NULL,
    -- Raised by every change: a replica takes the row for a checkpoint only as it read it.
    revision BIGINT NOT NULL
);
