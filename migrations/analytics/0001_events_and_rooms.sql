-- What the analytics service learns from the event bus: every event it consumed (with the
-- figures it aggregates pulled out into columns), and each room's name, members and who is in
-- it. Portable SQL: SQLite and PostgreSQL both accept it.

CREATE TABLE analytics_events (
    -- The event's own id: an event delivered twice is stored once.
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    event_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    -- The language of a run, the mode of an assistant answer.
    subject TEXT NOT NULL,
    -- ok, or what went wrong, for runs and answers.
    status TEXT NOT NULL,
    -- The wall time of a run, the latency of an answer.
    duration_ms BIGINT NOT NULL,
    -- The time to the first token of an answer (-1 when none came).
    first_token_ms BIGINT NOT NULL,
    -- Collaborative edits in an activity window.
    amount BIGINT NOT NULL,
    -- A JSON object: the event's payload.
    metadata_json TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX analytics_events_by_time ON analytics_events (created_at_ms);
CREATE INDEX analytics_events_by_type_and_time ON analytics_events (event_type, created_at_ms);
CREATE INDEX analytics_events_by_room_and_time ON analytics_events (room_id, created_at_ms);

CREATE TABLE analytics_rooms (
    room_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    member_count BIGINT NOT NULL,
    online_count BIGINT NOT NULL,
    -- When presence last reported the room (reports arrive in order; an older one is ignored).
    online_at_ms BIGINT NOT NULL,
    -- 0 or 1.
    deleted BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
