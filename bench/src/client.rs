//! A load-generating Yjs client: a WebSocket speaking the y-websocket
//! protocol, or Hocuspocus's framing of it (the document name before every
//! message, and an auth message first). It does not keep a document of what
//! it receives: it decodes each update's state vector, which is all a
//! latency measurement needs, so that hundreds of clients fit beside the
//! server on one machine.

use std::time::Duration;

use anyhow::Context;
use codesync_documents::protocol::{self, Message, Reader};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// How a server frames y-protocols messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One message per frame, the document named by the URL (y-websocket, CodeSync).
    YWebsocket,
    /// Every message prefixed with the document name; an auth message first (Hocuspocus).
    Hocuspocus,
}

/// What a client hears from the server.
pub enum Heard {
    /// The server's answer to our sync step 1: we are in sync.
    Synced,
    /// An update's state vector: the highest clock seen per client id.
    Update(StateVector),
}

pub struct Client {
    pub doc: Doc,
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    pub heard: mpsc::UnboundedReceiver<Heard>,
    framing: Framing,
    document_name: String,
}

const MESSAGE_AUTH: u64 = 2;

impl Client {
    /// Connects, sends sync step 1, and answers the server's step 1 from `doc`.
    pub async fn connect(url: &str, framing: Framing, document_name: &str, doc: Doc) -> anyhow::Result<Self> {
        let (socket, _) =
            tokio_tungstenite::connect_async(url).await.with_context(|| format!("cannot connect to {url}"))?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let (heard_sender, heard) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(frame) = queue.recv().await {
                if sink.feed(tungstenite::Message::Binary(frame.into())).await.is_err() {
                    return;
                }
                // Batch what is already queued into one flush.
                while let Ok(frame) = queue.try_recv() {
                    if sink.feed(tungstenite::Message::Binary(frame.into())).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let client = Self {
            doc: doc.clone(),
            outgoing: outgoing.clone(),
            heard,
            framing,
            document_name: document_name.to_string(),
        };
        let name = document_name.to_string();
        tokio::spawn(async move {
            // A connection that ends closes `heard`; the phases notice and report it.
            while let Some(Ok(message)) = stream.next().await {
                let tungstenite::Message::Binary(frame) = message else { continue };
                let payload = match framing {
                    Framing::YWebsocket => &frame[..],
                    Framing::Hocuspocus => {
                        let mut reader = Reader::new(&frame);
                        if reader.read_var_string().is_err() {
                            continue;
                        }
                        &frame[frame.len() - reader.remaining()..]
                    }
                };
                match protocol::decode_message(payload) {
                    Ok(Message::SyncStep1(state_vector)) => {
                        let Ok(state_vector) = StateVector::decode_v1(state_vector) else { continue };
                        let diff = doc.transact().encode_diff_v1(&state_vector);
                        let reply = frame_for(framing, &name, protocol::encode_sync_step_2(&diff));
                        let _ = outgoing.send(reply);
                    }
                    Ok(Message::SyncStep2(update)) => {
                        if let Ok(update) = Update::decode_v1(update) {
                            let _ = heard_sender.send(Heard::Update(upper_clocks(&update)));
                        }
                        let _ = heard_sender.send(Heard::Synced);
                    }
                    Ok(Message::Update(update)) => {
                        if let Ok(update) = Update::decode_v1(update) {
                            let _ = heard_sender.send(Heard::Update(upper_clocks(&update)));
                        }
                    }
                    _ => {}
                }
            }
        });
        if framing == Framing::Hocuspocus {
            // Auth (type 2), token sub-type 0, and a token the open server does not check.
            let mut auth = Vec::new();
            protocol::write_var_uint(&mut auth, MESSAGE_AUTH);
            protocol::write_var_uint(&mut auth, 0);
            protocol::write_var_bytes(&mut auth, b"bench");
            client.send_message(auth);
        }
        let step1 = protocol::encode_sync_step_1(&client.doc.transact().state_vector().encode_v1());
        client.send_message(step1);
        Ok(client)
    }

    fn send_message(&self, message: Vec<u8>) {
        let _ = self.outgoing.send(frame_for(self.framing, &self.document_name, message));
    }

    pub fn send_update(&self, update: &[u8]) {
        self.send_message(protocol::encode_update(update));
    }

    /// Waits for the server's sync step 2, passing over anything else.
    pub async fn synced(&mut self, timeout: Duration) -> anyhow::Result<()> {
        tokio::time::timeout(timeout, async {
            loop {
                match self.heard.recv().await {
                    Some(Heard::Synced) => return Ok(()),
                    Some(Heard::Update(_)) => {}
                    None => anyhow::bail!("the server closed the connection before syncing"),
                }
            }
        })
        .await
        .context("no sync step 2 from the server in time")?
    }
}

/// The end of the highest block per client in an update. (`Update::state_vector`
/// counts only blocks that start at clock 0, which a relayed edit seldom does.)
fn upper_clocks(update: &Update) -> StateVector {
    let mut clocks = StateVector::default();
    for (client, ranges) in update.insertions(true).iter() {
        if let Some(end) = ranges.iter().map(|range| range.end).max() {
            clocks.set_max(*client, end);
        }
    }
    clocks
}

fn frame_for(framing: Framing, document_name: &str, message: Vec<u8>) -> Vec<u8> {
    match framing {
        Framing::YWebsocket => message,
        Framing::Hocuspocus => {
            let mut frame = Vec::with_capacity(message.len() + document_name.len() + 4);
            protocol::write_var_bytes(&mut frame, document_name.as_bytes());
            frame.extend_from_slice(&message);
            frame
        }
    }
}
