-- Each user's notifications, owned by the notifications service. A notification made from an
-- event has an id derived from the event's, so an event delivered twice is stored once.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    -- execution, invite, room or system.
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    -- A JSON object, e.g. {"language": "python", "exit_code": 0, "wall_time_ms": 41}.
    metadata_json TEXT NOT NULL,
    -- 0 or 1.
    is_read BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX notifications_by_user_and_time ON notifications (user_id, created_at_ms);
CREATE INDEX notifications_unread ON notifications (user_id, is_read);
