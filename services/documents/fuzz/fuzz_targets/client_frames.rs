//! Feeds arbitrary client frames through what the documents service does
//! with them: the y-protocols decoder, state vectors, update decoding and
//! application to a document, and the awareness rules. The service contains
//! panics of the CRDT library (`catch_unwind`, then a reload from the log);
//! this target checks that our own code never panics and that a document
//! survives whatever it is fed.
#![no_main]

use std::panic::AssertUnwindSafe;
use std::sync::Once;
use std::time::Instant;

use codesync_documents_protocol::awareness::{DocumentAwareness, Identity};
use codesync_documents_protocol::protocol::{self, Message};
use libfuzzer_sys::fuzz_target;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Transact, Update};

static QUIET_PANICS: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // Panics inside yrs are caught below, as the service catches them; the
    // fuzzer's own hook would turn them into crashes of this target.
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let doc = Doc::new();
    let text = doc.get_or_insert_text("content");
    let mut awareness = DocumentAwareness::default();
    let identity = Identity { user_id: "fuzz".into(), username: "fuzz".into() };
    // The input is a sequence of frames, each prefixed by a one-byte length.
    let mut rest = data;
    while let Some((&length, tail)) = rest.split_first() {
        let length = usize::from(length).min(tail.len());
        let (frame, remaining) = tail.split_at(length);
        rest = remaining;
        match protocol::decode_message(frame) {
            Ok(Message::SyncStep1(state_vector)) => {
                if protocol::check_state_vector(state_vector).is_err() {
                    continue;
                }
                if let Ok(state_vector) = StateVector::decode_v1(state_vector) {
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| doc.transact().encode_diff_v1(&state_vector)));
                }
            }
            Ok(Message::SyncStep2(update) | Message::Update(update)) => {
                if protocol::check_update(update).is_err() {
                    continue;
                }
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    if let Ok(update) = Update::decode_v1(update) {
                        let _ = doc.transact_mut().apply_update(update);
                    }
                }));
            }
            Ok(Message::Awareness(payload)) => {
                if let Ok(entries) = protocol::decode_awareness(payload, 64) {
                    for entry in awareness.apply(1, &identity, entries, Instant::now()) {
                        assert!(entry.state_json == "null" || entry.state_json.contains("\"fuzz\""));
                    }
                }
            }
            Ok(Message::QueryAwareness | Message::Auth) | Err(_) => {}
        }
    }
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| text.get_string(&doc.transact())));
});
