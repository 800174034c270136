-- Which documents replica owns each file's live document (PostgreSQL with several replicas;
-- unused on SQLite, where one replica holds a lock instead). See services/documents/src/ownership.rs.

-- One row per running replica: where the others reach it, and until when its lease holds (in
-- milliseconds of the database's clock).
CREATE TABLE document_nodes (
    node_id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);

-- A file's owner, and the epoch its appends carry: every takeover raises the epoch, and an
-- append is refused unless its (node_id, epoch) is still the row's. node_id '' is released.
CREATE TABLE document_owners (
    file_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    epoch BIGINT NOT NULL
);

CREATE INDEX document_owners_node ON document_owners (node_id);
