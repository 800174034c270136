//! A Yjs client for tests: a `yrs` document synchronised with the server over
//! `/ws/files/{id}` in the y-websocket wire format, as a browser's
//! `WebsocketProvider` would (sync step 1 on connect, step 2 in answer,
//! updates, awareness). Offline edits are kept and sent on reconnect.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use codesync_documents::protocol::{self, Message};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update};

/// What the server sent besides document updates.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub permission_denied: Vec<String>,
    pub saved: u64,
    /// Awareness states by client id (JSON), `None` once removed.
    pub awareness: std::collections::HashMap<u64, Option<String>>,
    pub close: Option<(u16, String)>,
    pub synced: bool,
}

pub struct YjsClient {
    pub doc: Doc,
    pub text: TextRef,
    url: String,
    outgoing: Option<mpsc::UnboundedSender<tungstenite::Message>>,
    pub received: Arc<Mutex<Received>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Updates made while offline are in `doc`; nothing else needs keeping.
    pub updates_sent: u64,
}

pub fn new_doc() -> Doc {
    Doc::with_options(Options { offset_kind: OffsetKind::Utf16, ..Options::default() })
}

impl YjsClient {
    pub fn new(url: String) -> Self {
        let doc = new_doc();
        let text = doc.get_or_insert_text("content");
        Self { doc, text, url, outgoing: None, received: Arc::default(), task: None, updates_sent: 0 }
    }

    /// Connects; an HTTP refusal comes back as its status code.
    pub async fn connect(&mut self) -> Result<(), u16> {
        let (socket, _) = match tokio_tungstenite::connect_async(self.url.as_str()).await {
            Ok(connected) => connected,
            Err(tungstenite::Error::Http(response)) => return Err(response.status().as_u16()),
            Err(error) => panic!("cannot connect to {}: {error}", self.url),
        };
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut outgoing_queue) = mpsc::unbounded_channel::<tungstenite::Message>();
        let step1 = protocol::encode_sync_step_1(&self.doc.transact().state_vector().encode_v1());
        outgoing.send(tungstenite::Message::Binary(step1.into())).expect("queue step 1");
        let doc = self.doc.clone();
        let received = self.received.clone();
        received.lock().unwrap().synced = false;
        self.task = Some(tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = outgoing_queue.recv() => match message {
                        Some(message) => if sink.send(message).await.is_err() { return },
                        None => { let _ = sink.close().await; return }
                    },
                    incoming = stream.next() => match incoming {
                        Some(Ok(tungstenite::Message::Binary(frame))) => {
                            if let Some(reply) = handle_frame(&doc, &received, &frame)
                                && sink.send(tungstenite::Message::Binary(reply.into())).await.is_err()
                            {
                                return;
                            }
                        }
                        Some(Ok(tungstenite::Message::Close(frame))) => {
                            let close = frame.map(|frame| (u16::from(frame.code), frame.reason.to_string()));
                            received.lock().unwrap().close = close.or(Some((1005, String::new())));
                            return;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            received.lock().unwrap().close.get_or_insert((1006, String::new()));
                            return;
                        }
                    },
                }
            }
        }));
        self.outgoing = Some(outgoing);
        Ok(())
    }

    pub async fn disconnect(&mut self) {
        self.outgoing = None;
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    pub fn is_connected(&self) -> bool {
        self.task.as_ref().is_some_and(|task| !task.is_finished())
    }

    pub fn send_raw(&self, frame: Vec<u8>) {
        if let Some(outgoing) = &self.outgoing {
            let _ = outgoing.send(tungstenite::Message::Binary(frame.into()));
        }
    }

    pub fn send_text_frame(&self, text: &str) {
        if let Some(outgoing) = &self.outgoing {
            let _ = outgoing.send(tungstenite::Message::Text(text.to_string().into()));
        }
    }

    fn edit(&mut self, change: impl FnOnce(&TextRef, &mut yrs::TransactionMut)) {
        let update = {
            let mut transaction = self.doc.transact_mut();
            change(&self.text, &mut transaction);
            transaction.encode_update_v1()
        };
        // Offline, the edit stays in the document and goes out with the next sync.
        if self.outgoing.is_some() {
            self.updates_sent += 1;
            self.send_raw(protocol::encode_update(&update));
        }
    }

    /// Inserts at a UTF-16 index, clamped to the text.
    pub fn insert(&mut self, index: u32, chunk: &str) {
        let chunk = chunk.to_string();
        self.edit(move |text, transaction| {
            let index = index.min(text.len(transaction));
            text.insert(transaction, index, &chunk);
        });
    }

    /// Inserts at a UTF-16 index of this copy, but holds the update back: an edit made
    /// concurrently with whatever reaches this copy before [`Self::send_update`] sends it.
    pub fn insert_unsent(&mut self, index: u32, chunk: &str) -> Vec<u8> {
        let mut transaction = self.doc.transact_mut();
        let index = index.min(self.text.len(&transaction));
        self.text.insert(&mut transaction, index, chunk);
        transaction.encode_update_v1()
    }

    pub fn send_update(&mut self, update: &[u8]) {
        self.updates_sent += 1;
        self.send_raw(protocol::encode_update(update));
    }

    /// Deletes up to `length` UTF-16 units at `index`, clamped to the text.
    pub fn delete(&mut self, index: u32, length: u32) {
        self.edit(move |text, transaction| {
            let total = text.len(transaction);
            let index = index.min(total);
            let length = length.min(total - index);
            if length > 0 {
                text.remove_range(transaction, index, length);
            }
        });
    }

    pub fn content(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    pub fn len(&self) -> u32 {
        self.text.len(&self.doc.transact())
    }

    pub fn set_awareness(&self, client_id: u64, clock: u64, state_json: &str) {
        let entry = protocol::AwarenessEntry { client_id, clock, state_json: state_json.to_string() };
        let payload = protocol::encode_awareness_entries(std::iter::once(&entry));
        self.send_raw(protocol::encode_awareness(&payload));
    }

    pub fn received(&self) -> Received {
        self.received.lock().unwrap().clone()
    }
}

/// Handles one server frame; returns the reply to send, if any.
fn handle_frame(doc: &Doc, received: &Mutex<Received>, frame: &[u8]) -> Option<Vec<u8>> {
    let mut reader = protocol::Reader::new(frame);
    if let Ok(protocol::MESSAGE_SAVED) = reader.read_var_uint() {
        if let Ok(count) = reader.read_var_uint() {
            received.lock().unwrap().saved = count;
        }
        return None;
    }
    if frame.first() == Some(&(protocol::MESSAGE_AUTH as u8)) {
        let mut reader = protocol::Reader::new(&frame[1..]);
        let _ = reader.read_var_uint();
        let reason = reader.read_var_string().unwrap_or_default().to_string();
        received.lock().unwrap().permission_denied.push(reason);
        return None;
    }
    match protocol::decode_message(frame).expect("the server sends well-formed messages") {
        Message::SyncStep1(state_vector) => {
            let state_vector = StateVector::decode_v1(state_vector).expect("state vector");
            let diff = doc.transact().encode_diff_v1(&state_vector);
            return Some(protocol::encode_sync_step_2(&diff));
        }
        Message::SyncStep2(update) | Message::Update(update) => {
            let update = Update::decode_v1(update).expect("update from the server");
            doc.transact_mut().apply_update(update).expect("apply the server's update");
            if matches!(protocol::decode_message(frame), Ok(Message::SyncStep2(_))) {
                received.lock().unwrap().synced = true;
            }
        }
        Message::Awareness(payload) => {
            let entries = protocol::decode_awareness(payload, 1000).expect("awareness from the server");
            let mut received = received.lock().unwrap();
            for entry in entries {
                let state = (entry.state_json != "null").then_some(entry.state_json);
                received.awareness.insert(entry.client_id, state);
            }
        }
        Message::QueryAwareness | Message::Auth => {}
    }
    None
}

/// Waits until `condition` holds, polling; panics with `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
