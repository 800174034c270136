-- Events are protobuf (proto/codesync/events/v1/events.proto): stored as the bytes that go on the
-- wire. `payload` holds '' for them; a row from before this migration keeps its JSON there and is
-- relayed as it is (consumers of this version send it to the dead letters, bytes unchanged).
ALTER TABLE event_outbox ADD COLUMN message BYTEA;
