-- Events on their way to Kafka (common/src/outbox.rs): stored with the change that caused them,
-- removed once the brokers acknowledged them. Ids are UUIDv7: their order is the order events
-- were made in, per process.
CREATE TABLE event_outbox (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    event_key TEXT NOT NULL,
    -- The event as it goes on the wire (its JSON).
    payload TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Which process relays the outbox (one per database), until when.
CREATE TABLE event_outbox_relay (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
