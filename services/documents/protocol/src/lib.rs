//! What the documents service reads from a client before any of it reaches a document: the
//! y-websocket / y-protocols wire format ([`protocol`]) and what one connection may say in
//! awareness ([`awareness`]). Kept apart from the service so that the fuzz target
//! (`services/documents/fuzz`) builds this, yrs and nothing else.
#![forbid(unsafe_code)]

pub mod awareness;
pub mod protocol;
