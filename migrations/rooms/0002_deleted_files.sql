-- A record of each deleted file: which room it was in and who deleted it, so that other services
-- can tell "deleted" from "not yours to see" before they remove what they keep of a file (the
-- documents service's log). No foreign key: the record outlives its room.
CREATE TABLE deleted_files (
    file_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    deleted_by TEXT NOT NULL,
    deleted_at_ms BIGINT NOT NULL
);

CREATE INDEX deleted_files_room ON deleted_files (room_id);
