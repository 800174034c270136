//! One room's presence on this replica: its sessions (a tab each), what each shows the
//! others, and the room's event channel that every session of it listens to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codesync_proto::presence::v1 as pb;
use tokio::sync::{Notify, broadcast};

use crate::shared::SessionView;

/// A typing indicator that is not renewed goes out after this long.
pub(crate) const TYPING_TIMEOUT: Duration = Duration::from_secs(6);
/// Events queued for one room before slow sessions start missing them.
const ROOM_EVENT_BUFFER: usize = 256;
/// Colours for users without one, assigned by user id so everyone sees the same.
const PALETTE: [&str; 12] = [
    "#e06c75", "#61afef", "#98c379", "#e5c07b", "#c678dd", "#56b6c2", "#d19a66", "#be5046", "#7f9cf5", "#f472b6",
    "#34d399", "#fbbf24",
];

pub fn colour_for(user_id: &str) -> &'static str {
    // FNV-1a: stable across processes and versions, unlike the std hasher.
    let hash = user_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

pub(crate) struct Session {
    pub(crate) user_id: String,
    pub(crate) username: String,
    pub(crate) file_id: String,
    pub(crate) typing_until: Option<Instant>,
    pub(crate) last_seen_ms: i64,
    /// Notified when the user is removed from the room: the session ends.
    pub(crate) removed: Arc<Notify>,
}

/// What a change to one session means for the rest of the room.
pub(crate) enum Publish {
    Nothing,
    Snapshot,
    Event(pb::room_server_event::Event),
}

pub(crate) struct RoomPresence {
    pub(crate) sessions: HashMap<u64, Session>,
    pub(crate) events: broadcast::Sender<pb::RoomServerEvent>,
    /// The room's sessions on the other replicas (with Redis), as last read.
    pub(crate) others: Vec<SessionView>,
}

impl Session {
    pub(crate) fn view(&self) -> SessionView {
        let typing_until_ms = self.typing_until.map_or(0, |until| {
            let left = until.saturating_duration_since(Instant::now());
            codesync_common::now_ms() + i64::try_from(left.as_millis()).unwrap_or(0)
        });
        SessionView {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            file_id: self.file_id.clone(),
            typing_until_ms,
            last_seen_ms: self.last_seen_ms,
            written_ms: 0,
        }
    }
}

impl RoomPresence {
    pub(crate) fn new() -> Self {
        Self { sessions: HashMap::new(), events: broadcast::channel(ROOM_EVENT_BUFFER).0, others: Vec::new() }
    }

    pub(crate) fn views(&self) -> Vec<(u64, SessionView)> {
        self.sessions.iter().map(|(id, session)| (*id, session.view())).collect()
    }

    /// One entry per user, here and on the other replicas: a user with several tabs shows
    /// once, on the file of the tab used last, typing if any tab is.
    pub(crate) fn snapshot(&self) -> Vec<pb::OnlineUser> {
        let mut users: HashMap<String, pb::OnlineUser> = HashMap::new();
        let now_ms = codesync_common::now_ms();
        let here = self.sessions.values().map(Session::view);
        for session in here.chain(self.others.iter().cloned()) {
            let typing = session.typing_until_ms > now_ms;
            let entry = users.entry(session.user_id.clone()).or_insert_with(|| pb::OnlineUser {
                user_id: session.user_id.clone(),
                username: session.username.clone(),
                color: colour_for(&session.user_id).to_string(),
                file_id: session.file_id.clone(),
                typing,
                last_seen_ms: session.last_seen_ms,
            });
            entry.typing |= typing;
            if session.last_seen_ms > entry.last_seen_ms {
                entry.last_seen_ms = session.last_seen_ms;
                entry.file_id = session.file_id.clone();
            }
        }
        let mut users: Vec<pb::OnlineUser> = users.into_values().collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        users
    }

    pub(crate) fn publish(&self, event: pb::room_server_event::Event) {
        // No receivers is fine: nobody is listening.
        let _ = self.events.send(pb::RoomServerEvent { event: Some(event) });
    }

    pub(crate) fn publish_snapshot(&self) {
        self.publish(pb::room_server_event::Event::Presence(pb::PresenceSnapshot { users: self.snapshot() }));
    }
}

pub(crate) fn typing_event(session: &Session, typing: bool) -> pb::room_server_event::Event {
    pb::room_server_event::Event::Typing(pb::TypingEvent {
        user_id: session.user_id.clone(),
        username: session.username.clone(),
        file_id: session.file_id.clone(),
        typing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_per_user() {
        assert_eq!(colour_for("user-1"), colour_for("user-1"));
        assert!(PALETTE.contains(&colour_for("anyone")));
        // The web app computes the same colours (frontend/src/collab/protocol.ts, colourForUser);
        // its unit test asserts these same pairs.
        assert_eq!(colour_for("alice"), "#fbbf24");
        assert_eq!(colour_for("0197c1d2-aaaa-7bbb-8ccc-123456789abc"), "#56b6c2");
    }
}
