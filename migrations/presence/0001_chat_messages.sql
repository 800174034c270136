-- Each room's chat, replayed (the latest 100) when someone joins.
CREATE TABLE chat_messages (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    username TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at_ms BIGINT NOT NULL
);

CREATE INDEX chat_messages_by_room_and_time ON chat_messages (room_id, sent_at_ms);
