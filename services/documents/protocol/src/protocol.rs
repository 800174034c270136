//! The y-websocket / y-protocols wire format: lib0 variable-length integers
//! and byte arrays, the sync, awareness, auth and query-awareness messages,
//! and CodeSync's opt-in acknowledgement message.
//!
//! Decoding never panics and never allocates more than the input holds: every
//! length is checked against what is left before anything is read.

/// Top-level message types of y-protocols.
pub const MESSAGE_SYNC: u64 = 0;
pub const MESSAGE_AWARENESS: u64 = 1;
pub const MESSAGE_AUTH: u64 = 2;
pub const MESSAGE_QUERY_AWARENESS: u64 = 3;
/// CodeSync's acknowledgement: `varUint(100) varUint(n)`, "the first n of your
/// updates on this connection are durable". Sent only to clients that asked
/// for it, because stock y-websocket clients log unknown message types as errors.
pub const MESSAGE_SAVED: u64 = 100;

/// Sub-types of a sync message.
pub const SYNC_STEP_1: u64 = 0;
pub const SYNC_STEP_2: u64 = 1;
pub const SYNC_UPDATE: u64 = 2;

/// The auth sub-type that y-websocket clients report as "permission denied".
const AUTH_PERMISSION_DENIED: u64 = 0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the message ended early")]
    UnexpectedEnd,
    #[error("a variable-length integer is longer than 64 bits")]
    IntegerOverflow,
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
    #[error("a string is not valid UTF-8")]
    InvalidUtf8,
    #[error("a client id is longer than 53 bits")]
    ClientIdTooLarge,
    #[error("the update changes something other than the file's text ('content')")]
    NotText,
}

/// One decoded client message. Payloads borrow from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A state vector (v1 encoding): "send me what I am missing".
    SyncStep1(&'a [u8]),
    /// A Yjs update (v1) answering a step 1.
    SyncStep2(&'a [u8]),
    /// A Yjs update (v1).
    Update(&'a [u8]),
    /// An awareness update (see [`AwarenessEntry`]).
    Awareness(&'a [u8]),
    /// Clients may send auth messages; servers ignore them.
    Auth,
    QueryAwareness,
}

/// Reads lib0 encodings from a byte slice.
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub fn read_var_uint(&mut self) -> Result<u64, ProtocolError> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = *self.bytes.get(self.position).ok_or(ProtocolError::UnexpectedEnd)?;
            self.position += 1;
            let bits = u64::from(byte & 0x7f);
            if shift >= 64 || (shift > 0 && bits >> (64 - shift) != 0) {
                return Err(ProtocolError::IntegerOverflow);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    pub fn read_u8(&mut self) -> Result<u8, ProtocolError> {
        let byte = *self.bytes.get(self.position).ok_or(ProtocolError::UnexpectedEnd)?;
        self.position += 1;
        Ok(byte)
    }

    /// A Yjs client id: 53 bits at most (they are JavaScript numbers). yrs
    /// asserts this in debug builds and silently truncates in release ones.
    pub fn read_client_id(&mut self) -> Result<u64, ProtocolError> {
        let client_id = self.read_var_uint()?;
        if client_id >= 1 << 53 {
            return Err(ProtocolError::ClientIdTooLarge);
        }
        Ok(client_id)
    }

    /// A clock: 32 bits in yrs.
    pub fn read_clock(&mut self) -> Result<u32, ProtocolError> {
        u32::try_from(self.read_var_uint()?).map_err(|_| ProtocolError::IntegerOverflow)
    }

    /// A count of elements that take at least `min_bytes_each` bytes: one
    /// that the remaining bytes cannot hold is refused before anything trusts it.
    pub fn read_count(&mut self, min_bytes_each: usize) -> Result<u64, ProtocolError> {
        let count = self.read_var_uint()?;
        if count > (self.remaining() / min_bytes_each.max(1)) as u64 {
            return Err(ProtocolError::UnexpectedEnd);
        }
        Ok(count)
    }

    pub fn read_var_bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let length = self.read_var_uint()?;
        let length = usize::try_from(length).map_err(|_| ProtocolError::UnexpectedEnd)?;
        if length > self.remaining() {
            return Err(ProtocolError::UnexpectedEnd);
        }
        let start = self.position;
        self.position += length;
        Ok(&self.bytes[start..self.position])
    }

    pub fn read_var_string(&mut self) -> Result<&'a str, ProtocolError> {
        std::str::from_utf8(self.read_var_bytes()?).map_err(|_| ProtocolError::InvalidUtf8)
    }

    fn finish(&self) -> Result<(), ProtocolError> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(ProtocolError::TrailingBytes(trailing)),
        }
    }
}

/// Decodes one client frame. y-websocket sends exactly one message per frame;
/// anything after it is refused rather than silently ignored.
pub fn decode_message(frame: &[u8]) -> Result<Message<'_>, ProtocolError> {
    let mut reader = Reader::new(frame);
    let message = match reader.read_var_uint()? {
        MESSAGE_SYNC => {
            let sync_type = reader.read_var_uint()?;
            let payload = reader.read_var_bytes()?;
            match sync_type {
                SYNC_STEP_1 => Message::SyncStep1(payload),
                SYNC_STEP_2 => Message::SyncStep2(payload),
                SYNC_UPDATE => Message::Update(payload),
                other => return Err(ProtocolError::UnknownSyncType(other)),
            }
        }
        MESSAGE_AWARENESS => Message::Awareness(reader.read_var_bytes()?),
        MESSAGE_AUTH => {
            // Whatever a client says here carries no authority; skip it whole.
            return Ok(Message::Auth);
        }
        MESSAGE_QUERY_AWARENESS => Message::QueryAwareness,
        other => return Err(ProtocolError::UnknownMessageType(other)),
    };
    reader.finish()?;
    Ok(message)
}

/// Refuses a state vector whose declared entry count exceeds what its bytes
/// can hold. yrs reserves memory for the declared count before reading
/// entries, so seven bytes could otherwise make the server touch hundreds of
/// megabytes (found by the fuzz target).
pub fn check_state_vector(payload: &[u8]) -> Result<(), ProtocolError> {
    let mut reader = Reader::new(payload);
    // Each entry is a client id and a clock: two bytes at least.
    let entries = reader.read_count(2)?;
    for _ in 0..entries {
        reader.read_client_id()?;
        reader.read_clock()?;
    }
    reader.finish()
}

/// Walks a Yjs v1 update without building it, and refuses it unless it is
/// well-formed and changes nothing but the file's text:
///
/// - every count it declares must fit in the bytes that follow (yrs reserves
///   memory for declared counts before reading the elements);
/// - client ids fit in 53 bits and clocks in 32 (yrs asserts the first);
/// - items hold text or deletions only, in the root type named `content`:
///   no nested types, maps, arrays, embedded values or subdocuments.
///
/// A file's document is one `Y.Text` named `content` (SPEC §2), so nothing a
/// real editor sends is lost; everything else would only reach code paths of
/// yrs that the service does not need, and the fuzz target found a
/// use-after-free in yrs through nested types.
pub fn check_update(payload: &[u8]) -> Result<(), ProtocolError> {
    let mut reader = Reader::new(payload);
    let clients = reader.read_count(3)?;
    for _ in 0..clients {
        let blocks = reader.read_var_uint()?;
        reader.read_client_id()?;
        reader.read_clock()?;
        if blocks > reader.remaining() as u64 {
            return Err(ProtocolError::UnexpectedEnd);
        }
        for _ in 0..blocks {
            skip_block(&mut reader)?;
        }
    }
    // The delete set: clients, each with ranges of (clock, length).
    let delete_clients = reader.read_count(2)?;
    for _ in 0..delete_clients {
        reader.read_client_id()?;
        let ranges = reader.read_count(2)?;
        for _ in 0..ranges {
            reader.read_clock()?;
            reader.read_clock()?;
        }
    }
    Ok(())
}

const BLOCK_GC: u8 = 0;
const BLOCK_SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0x80;
const HAS_RIGHT_ORIGIN: u8 = 0x40;
const HAS_PARENT_SUB: u8 = 0x20;

fn skip_block(reader: &mut Reader<'_>) -> Result<(), ProtocolError> {
    let info = reader.read_u8()?;
    if info == BLOCK_GC || info == BLOCK_SKIP {
        reader.read_var_uint()?;
        return Ok(());
    }
    if info & HAS_ORIGIN != 0 {
        reader.read_client_id()?;
        reader.read_clock()?;
    }
    if info & HAS_RIGHT_ORIGIN != 0 {
        reader.read_client_id()?;
        reader.read_clock()?;
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        // Without neighbours an item names its parent: it must be the root text.
        if reader.read_var_uint()? != 1 || reader.read_var_string()? != TEXT_ROOT {
            return Err(ProtocolError::NotText);
        }
        if info & HAS_PARENT_SUB != 0 {
            return Err(ProtocolError::NotText);
        }
    }
    match info & 0x0f {
        CONTENT_DELETED => {
            reader.read_var_uint()?;
        }
        CONTENT_STRING => {
            reader.read_var_string()?;
        }
        _ => return Err(ProtocolError::NotText),
    }
    Ok(())
}

/// The one shared type of a file's document.
const TEXT_ROOT: &str = "content";
const CONTENT_DELETED: u8 = 1;
const CONTENT_STRING: u8 = 4;

pub fn write_var_uint(buffer: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buffer.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buffer.push(value as u8);
}

pub fn write_var_bytes(buffer: &mut Vec<u8>, bytes: &[u8]) {
    write_var_uint(buffer, bytes.len() as u64);
    buffer.extend_from_slice(bytes);
}

fn sync_message(sync_type: u64, payload: &[u8]) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(payload.len() + 8);
    write_var_uint(&mut buffer, MESSAGE_SYNC);
    write_var_uint(&mut buffer, sync_type);
    write_var_bytes(&mut buffer, payload);
    buffer
}

pub fn encode_sync_step_1(state_vector: &[u8]) -> Vec<u8> {
    sync_message(SYNC_STEP_1, state_vector)
}

pub fn encode_sync_step_2(update: &[u8]) -> Vec<u8> {
    sync_message(SYNC_STEP_2, update)
}

pub fn encode_update(update: &[u8]) -> Vec<u8> {
    sync_message(SYNC_UPDATE, update)
}

pub fn encode_awareness(awareness_update: &[u8]) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(awareness_update.len() + 6);
    write_var_uint(&mut buffer, MESSAGE_AWARENESS);
    write_var_bytes(&mut buffer, awareness_update);
    buffer
}

/// The y-protocols auth message that stock clients log as "permission denied".
pub fn encode_permission_denied(reason: &str) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(reason.len() + 4);
    write_var_uint(&mut buffer, MESSAGE_AUTH);
    write_var_uint(&mut buffer, AUTH_PERMISSION_DENIED);
    write_var_bytes(&mut buffer, reason.as_bytes());
    buffer
}

pub fn encode_saved(durable_update_count: u64) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(8);
    write_var_uint(&mut buffer, MESSAGE_SAVED);
    write_var_uint(&mut buffer, durable_update_count);
    buffer
}

/// One client's state in an awareness update; `state_json` is `"null"` when the
/// client went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessEntry {
    pub client_id: u64,
    pub clock: u64,
    pub state_json: String,
}

/// Decodes an awareness update, refusing more than `max_entries` entries.
pub fn decode_awareness(payload: &[u8], max_entries: usize) -> Result<Vec<AwarenessEntry>, ProtocolError> {
    let mut reader = Reader::new(payload);
    let count = reader.read_var_uint()?;
    // Each entry takes at least three bytes, so a count beyond that is a lie.
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > reader.remaining() / 3 || count > max_entries {
        return Err(ProtocolError::UnexpectedEnd);
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let client_id = reader.read_var_uint()?;
        let clock = reader.read_var_uint()?;
        let state_json = reader.read_var_string()?.to_string();
        entries.push(AwarenessEntry { client_id, clock, state_json });
    }
    reader.finish()?;
    Ok(entries)
}

pub fn encode_awareness_entries<'a>(entries: impl ExactSizeIterator<Item = &'a AwarenessEntry>) -> Vec<u8> {
    let mut buffer = Vec::new();
    write_var_uint(&mut buffer, entries.len() as u64);
    for entry in entries {
        write_var_uint(&mut buffer, entry.client_id);
        write_var_uint(&mut buffer, entry.clock);
        write_var_bytes(&mut buffer, entry.state_json.as_bytes());
    }
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_uint_round_trips_at_the_edges() {
        for value in [0, 1, 127, 128, 255, 16_384, u64::from(u32::MAX), (1 << 53) - 1, u64::MAX] {
            let mut buffer = Vec::new();
            write_var_uint(&mut buffer, value);
            assert_eq!(Reader::new(&buffer).read_var_uint(), Ok(value), "value {value}");
        }
    }

    #[test]
    fn overlong_integers_and_lengths_are_refused() {
        let eleven_continuations = [0xffu8; 11];
        assert_eq!(Reader::new(&eleven_continuations).read_var_uint(), Err(ProtocolError::IntegerOverflow));
        // Sync update claiming 1000 bytes with 2 present.
        assert_eq!(decode_message(&[0, 2, 0xe8, 0x07, 1, 2]), Err(ProtocolError::UnexpectedEnd));
        assert_eq!(decode_message(&[]), Err(ProtocolError::UnexpectedEnd));
        assert_eq!(decode_message(&[9]), Err(ProtocolError::UnknownMessageType(9)));
        assert_eq!(decode_message(&[0, 7, 0]), Err(ProtocolError::UnknownSyncType(7)));
        assert_eq!(decode_message(&[3, 0]), Err(ProtocolError::TrailingBytes(1)));
    }

    #[test]
    fn messages_round_trip() {
        assert_eq!(decode_message(&encode_sync_step_1(&[1, 2])), Ok(Message::SyncStep1(&[1, 2])));
        assert_eq!(decode_message(&encode_sync_step_2(&[3])), Ok(Message::SyncStep2(&[3])));
        assert_eq!(decode_message(&encode_update(&[0, 0])), Ok(Message::Update(&[0, 0])));
        assert_eq!(decode_message(&encode_awareness(&[0])), Ok(Message::Awareness(&[0])));
        assert_eq!(decode_message(&[3]), Ok(Message::QueryAwareness));
        assert_eq!(decode_message(&encode_permission_denied("no")), Ok(Message::Auth));
    }

    #[test]
    fn counts_beyond_the_bytes_are_refused_before_yrs_sees_them() {
        // The fuzz target's find: a 4-byte state vector declaring ~266 million entries.
        assert!(check_state_vector(&[175, 128, 130, 127]).is_err());
        assert!(check_state_vector(&[1, 5, 7]).is_ok());
        assert!(check_state_vector(&[0]).is_ok());
        assert!(check_update(&[0xff, 0xff, 0xff, 0x0f, 0]).is_err());
        assert!(check_update(&[1, 0xff, 0xff, 0x7f, 1, 0]).is_err());
        assert!(check_update(&[0, 0]).is_ok());
        // The third: a client id beyond 53 bits, which yrs asserts against in debug builds.
        assert_eq!(
            check_state_vector(&[3, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 21, 112, 1, 0]),
            Err(ProtocolError::ClientIdTooLarge)
        );
        // The second find: a later client declaring ~1.3 billion structs.
        assert!(check_update(&[2, 0, 91, 0, 163, 220, 254, 249, 0, 0, 0, 1, 112, 1, 0]).is_err());
    }

    #[test]
    fn text_updates_pass_and_anything_else_does_not() {
        use yrs::{Any, Array, Doc, Map, ReadTxn, Text, Transact};
        let doc = Doc::new();
        let text = doc.get_or_insert_text("content");
        {
            let mut transaction = doc.transact_mut();
            text.insert(&mut transaction, 0, "héllo 😀 world");
            text.remove_range(&mut transaction, 0, 1);
            text.insert(&mut transaction, 3, "more");
        }
        let update = doc.transact().encode_state_as_update_v1(&yrs::StateVector::default());
        assert_eq!(check_update(&update), Ok(()));

        let other_text = Doc::new();
        other_text.get_or_insert_text("other").insert(&mut other_text.transact_mut(), 0, "x");
        let array = Doc::new();
        array.get_or_insert_array("content").insert(&mut array.transact_mut(), 0, Any::from(vec![Any::Null]));
        let map = Doc::new();
        map.get_or_insert_map("content").insert(&mut map.transact_mut(), "key", 42);
        for refused in [other_text, array, map] {
            let update = refused.transact().encode_state_as_update_v1(&yrs::StateVector::default());
            assert_eq!(check_update(&update), Err(ProtocolError::NotText));
        }
    }

    #[test]
    fn awareness_round_trips_and_refuses_lies() {
        let entries = vec![
            AwarenessEntry { client_id: 7, clock: 3, state_json: "{\"user\":{}}".into() },
            AwarenessEntry { client_id: 1 << 40, clock: 0, state_json: "null".into() },
        ];
        let encoded = encode_awareness_entries(entries.iter());
        assert_eq!(decode_awareness(&encoded, 16), Ok(entries));
        assert!(decode_awareness(&encoded, 1).is_err(), "more entries than allowed");
        assert!(decode_awareness(&[0xff, 0xff, 0xff, 0x0f], 16).is_err(), "a count far beyond the bytes");
        assert!(decode_awareness(&[1, 1, 1, 2, 0xff, 0xfe], 16).is_err(), "invalid UTF-8");
    }
}
