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
    #[error("unknown content type {0}")]
    UnknownContent(u8),
    #[error("values nest deeper than {MAX_ANY_DEPTH} levels")]
    TooDeep,
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

    fn skip(&mut self, count: usize) -> Result<(), ProtocolError> {
        if count > self.remaining() {
            return Err(ProtocolError::UnexpectedEnd);
        }
        self.position += count;
        Ok(())
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
        reader.read_var_uint()?;
        reader.read_var_uint()?;
    }
    reader.finish()
}

/// How deeply lib0 `Any` values (arrays and maps in embedded content) may
/// nest. yrs decodes them recursively, so without a bound a 1 MiB message of
/// nested arrays would overflow the stack and abort the process.
pub const MAX_ANY_DEPTH: usize = 32;

/// Walks a Yjs v1 update without building it, and refuses it if any count it
/// declares exceeds what its remaining bytes can hold, if `Any` values nest
/// deeper than [`MAX_ANY_DEPTH`], or if it is malformed. yrs reserves memory
/// for declared counts before reading the elements, and recurses into `Any`
/// values, so only updates that pass this walk are handed to it (the fuzz
/// target found both).
pub fn check_update(payload: &[u8]) -> Result<(), ProtocolError> {
    let mut reader = Reader::new(payload);
    let clients = reader.read_count(3)?;
    for _ in 0..clients {
        let blocks = reader.read_var_uint()?;
        reader.read_var_uint()?; // client
        reader.read_var_uint()?; // clock
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
        reader.read_var_uint()?;
        let ranges = reader.read_count(2)?;
        for _ in 0..ranges {
            reader.read_var_uint()?;
            reader.read_var_uint()?;
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
        reader.read_var_uint()?;
        reader.read_var_uint()?;
    }
    if info & HAS_RIGHT_ORIGIN != 0 {
        reader.read_var_uint()?;
        reader.read_var_uint()?;
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        // The parent: a root type's name, or the id of the item that holds it.
        if reader.read_var_uint()? == 1 {
            reader.read_var_string()?;
        } else {
            reader.read_var_uint()?;
            reader.read_var_uint()?;
        }
        if info & HAS_PARENT_SUB != 0 {
            reader.read_var_string()?;
        }
    }
    match info & 0x0f {
        1 => {
            reader.read_var_uint()?; // deleted length
        }
        2 => {
            // JSON: the count is one less than the strings that follow.
            let strings = reader.read_count(1)?;
            for _ in 0..=strings {
                reader.read_var_string()?;
            }
        }
        3 => {
            reader.read_var_bytes()?;
        }
        4 | 5 => {
            reader.read_var_string()?;
        }
        6 => {
            reader.read_var_string()?;
            reader.read_var_string()?;
        }
        7 => match reader.read_u8()? {
            3 => {
                reader.read_var_string()?; // an XML element's name
            }
            0..=6 | 9 | 15 => {}
            other => return Err(ProtocolError::UnknownContent(other)),
        },
        8 => {
            let values = reader.read_count(1)?;
            for _ in 0..values {
                skip_any(reader, 0)?;
            }
        }
        9 => {
            reader.read_var_string()?; // a subdocument's guid
            skip_any(reader, 0)?;
        }
        other => return Err(ProtocolError::UnknownContent(other)),
    }
    Ok(())
}

fn skip_any(reader: &mut Reader<'_>, depth: usize) -> Result<(), ProtocolError> {
    if depth >= MAX_ANY_DEPTH {
        return Err(ProtocolError::TooDeep);
    }
    match reader.read_u8()? {
        127 | 126 | 121 | 120 => {}
        125 => {
            reader.read_var_uint()?; // a signed varint skips like an unsigned one
        }
        124 => reader.skip(4)?,
        123 | 122 => reader.skip(8)?,
        119 => {
            reader.read_var_string()?;
        }
        118 => {
            let entries = reader.read_count(2)?;
            for _ in 0..entries {
                reader.read_var_string()?;
                skip_any(reader, depth + 1)?;
            }
        }
        117 => {
            let items = reader.read_count(1)?;
            for _ in 0..items {
                skip_any(reader, depth + 1)?;
            }
        }
        116 => {
            reader.read_var_bytes()?;
        }
        other => return Err(ProtocolError::UnknownContent(other)),
    }
    Ok(())
}

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
        // The second find: a later client declaring ~1.3 billion structs.
        assert!(check_update(&[2, 0, 91, 0, 163, 220, 254, 249, 0, 0, 0, 1, 112, 1, 0]).is_err());
    }

    #[test]
    fn real_updates_pass_and_deep_nesting_does_not() {
        use yrs::{Any, Array, Doc, Map, ReadTxn, Text, Transact};
        let doc = Doc::new();
        let text = doc.get_or_insert_text("content");
        let array = doc.get_or_insert_array("array");
        let map = doc.get_or_insert_map("map");
        {
            let mut transaction = doc.transact_mut();
            text.insert(&mut transaction, 0, "héllo 😀 world");
            text.remove_range(&mut transaction, 0, 1);
            array.insert(&mut transaction, 0, Any::from(vec![Any::from(1.5), Any::Null, Any::from("x")]));
            map.insert(&mut transaction, "key", Any::from(42));
            map.insert(&mut transaction, "flag", true);
        }
        let update = doc.transact().encode_state_as_update_v1(&yrs::StateVector::default());
        assert_eq!(check_update(&update), Ok(()));

        let mut nested = Any::from(1);
        for _ in 0..MAX_ANY_DEPTH + 2 {
            nested = Any::from(vec![nested]);
        }
        let deep = Doc::new();
        let deep_array = deep.get_or_insert_array("array");
        deep_array.insert(&mut deep.transact_mut(), 0, nested);
        let update = deep.transact().encode_state_as_update_v1(&yrs::StateVector::default());
        assert_eq!(check_update(&update), Err(ProtocolError::TooDeep));
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
