//! The server's copy of one document's awareness (who is here, their name,
//! colour, cursor and selection), with the rules a hostile client cannot
//! bend: a client id belongs to the connection that first announced it, the
//! `user.id` and `user.name` of every state are the authenticated user's, and
//! states that are not renewed are swept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::protocol::AwarenessEntry;

/// y-protocols clients renew their state every 15 s; one missed renewal is tolerated.
pub const AWARENESS_TIMEOUT: Duration = Duration::from_secs(30);
/// A state larger than this is dropped: a cursor and a name need far less.
pub const MAX_STATE_BYTES: usize = 16 * 1024;
/// How many client ids one connection may announce (one per open tab is normal).
pub const MAX_CLIENT_IDS_PER_CONNECTION: usize = 8;

pub type ConnectionId = u64;

#[derive(Debug)]
struct ClientState {
    connection: ConnectionId,
    user_id: String,
    clock: u64,
    /// `None` once the client said it left; kept so that an old clock cannot revive it.
    state_json: Option<String>,
    renewed_at: Instant,
}

/// Who is behind a connection, as its token says.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub username: String,
}

#[derive(Debug, Default)]
pub struct DocumentAwareness {
    clients: HashMap<u64, ClientState>,
}

impl DocumentAwareness {
    /// Applies a connection's awareness entries and returns the accepted ones,
    /// rewritten, to relay to the other connections.
    pub fn apply(
        &mut self,
        connection: ConnectionId,
        identity: &Identity,
        entries: Vec<AwarenessEntry>,
        now: Instant,
    ) -> Vec<AwarenessEntry> {
        let mut accepted = Vec::new();
        for entry in entries {
            // The same user may take a client id over: a reconnecting tab keeps its id,
            // and its new connection can speak before the old one's end is seen.
            let owned_elsewhere = self
                .clients
                .get(&entry.client_id)
                .is_some_and(|client| client.connection != connection && client.user_id != identity.user_id);
            if owned_elsewhere {
                continue;
            }
            let is_new = !self.clients.contains_key(&entry.client_id);
            if is_new && self.client_ids_of(connection) >= MAX_CLIENT_IDS_PER_CONNECTION {
                continue;
            }
            let state_json = if entry.state_json == "null" {
                None
            } else {
                match rewrite_state(&entry.state_json, identity) {
                    Some(state_json) => Some(state_json),
                    None => continue,
                }
            };
            if let Some(existing) = self.clients.get(&entry.client_id) {
                let newer = entry.clock > existing.clock
                    || (entry.clock == existing.clock && state_json.is_none() && existing.state_json.is_some());
                if !newer {
                    continue;
                }
            }
            let relayed = AwarenessEntry {
                client_id: entry.client_id,
                clock: entry.clock,
                state_json: state_json.clone().unwrap_or_else(|| "null".to_string()),
            };
            self.clients.insert(
                entry.client_id,
                ClientState {
                    connection,
                    user_id: identity.user_id.clone(),
                    clock: entry.clock,
                    state_json,
                    renewed_at: now,
                },
            );
            accepted.push(relayed);
        }
        accepted
    }

    fn client_ids_of(&self, connection: ConnectionId) -> usize {
        self.clients.values().filter(|client| client.connection == connection).count()
    }

    /// Every present state, for a newcomer or a query.
    pub fn present_states(&self) -> Vec<AwarenessEntry> {
        self.clients
            .iter()
            .filter_map(|(client_id, client)| {
                client.state_json.as_ref().map(|state_json| AwarenessEntry {
                    client_id: *client_id,
                    clock: client.clock,
                    state_json: state_json.clone(),
                })
            })
            .collect()
    }

    /// Forgets a connection's clients and returns the removals to relay.
    pub fn remove_connection(&mut self, connection: ConnectionId) -> Vec<AwarenessEntry> {
        let client_ids: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, client)| client.connection == connection)
            .map(|(client_id, _)| *client_id)
            .collect();
        let mut removals = Vec::new();
        for client_id in client_ids {
            if let Some(client) = self.clients.remove(&client_id)
                && client.state_json.is_some()
            {
                removals.push(AwarenessEntry { client_id, clock: client.clock + 1, state_json: "null".to_string() });
            }
        }
        removals
    }

    /// Removes states not renewed within [`AWARENESS_TIMEOUT`] and returns the removals to relay.
    pub fn sweep(&mut self, now: Instant) -> Vec<AwarenessEntry> {
        let mut removals = Vec::new();
        for (client_id, client) in &mut self.clients {
            if client.state_json.is_some() && now.duration_since(client.renewed_at) >= AWARENESS_TIMEOUT {
                client.state_json = None;
                client.clock += 1;
                removals.push(AwarenessEntry { client_id: *client_id, clock: client.clock, state_json: "null".into() });
            }
        }
        removals
    }

    pub fn is_empty(&self) -> bool {
        self.clients.values().all(|client| client.state_json.is_none())
    }
}

/// The state with `user.id` and `user.name` set to the caller's; `None` if it is
/// not a JSON object or is too large.
fn rewrite_state(state_json: &str, identity: &Identity) -> Option<String> {
    if state_json.len() > MAX_STATE_BYTES {
        return None;
    }
    let mut state: serde_json::Value = serde_json::from_str(state_json).ok()?;
    let object = state.as_object_mut()?;
    let user = object.entry("user").or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !user.is_object() {
        *user = serde_json::Value::Object(Default::default());
    }
    if let Some(user) = user.as_object_mut() {
        user.insert("id".into(), serde_json::Value::String(identity.user_id.clone()));
        user.insert("name".into(), serde_json::Value::String(identity.username.clone()));
    }
    serde_json::to_string(&state).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity { user_id: "u-alice".into(), username: "alice".into() }
    }

    fn entry(client_id: u64, clock: u64, state_json: &str) -> AwarenessEntry {
        AwarenessEntry { client_id, clock, state_json: state_json.into() }
    }

    #[test]
    fn identity_is_the_callers_whatever_the_client_claims() {
        let mut awareness = DocumentAwareness::default();
        let accepted = awareness.apply(
            1,
            &alice(),
            vec![entry(10, 1, r##"{"user":{"id":"u-bob","name":"bob","color":"#f00"},"cursor":null}"##)],
            Instant::now(),
        );
        let state: serde_json::Value = serde_json::from_str(&accepted[0].state_json).unwrap();
        assert_eq!(state["user"]["id"], "u-alice");
        assert_eq!(state["user"]["name"], "alice");
        assert_eq!(state["user"]["color"], "#f00");
    }

    #[test]
    fn another_connection_cannot_take_over_a_client_id() {
        let mut awareness = DocumentAwareness::default();
        let now = Instant::now();
        let mallory = Identity { user_id: "u-mallory".into(), username: "mallory".into() };
        assert_eq!(awareness.apply(1, &alice(), vec![entry(10, 1, "{}")], now).len(), 1);
        assert!(awareness.apply(2, &mallory, vec![entry(10, 5, "{}")], now).is_empty());
        assert_eq!(awareness.apply(3, &alice(), vec![entry(10, 5, "{}")], now).len(), 1, "alice reconnecting");
        assert!(awareness.apply(3, &alice(), vec![entry(10, 5, "{}")], now).is_empty(), "old clock");
        assert!(awareness.apply(3, &alice(), vec![entry(11, 1, "[1]")], now).is_empty(), "not an object");
    }

    #[test]
    fn disconnect_and_timeout_remove_states() {
        let mut awareness = DocumentAwareness::default();
        let start = Instant::now();
        awareness.apply(1, &alice(), vec![entry(10, 1, "{}")], start);
        awareness.apply(2, &alice(), vec![entry(20, 1, "{}")], start + Duration::from_secs(20));
        let removed = awareness.remove_connection(1);
        assert_eq!(removed, vec![entry(10, 2, "null")]);
        assert!(awareness.sweep(start + Duration::from_secs(40)).is_empty(), "renewed 20 s ago");
        assert_eq!(awareness.sweep(start + Duration::from_secs(51)), vec![entry(20, 2, "null")]);
        assert!(awareness.is_empty());
    }

    #[test]
    fn a_connection_cannot_flood_client_ids() {
        let mut awareness = DocumentAwareness::default();
        let entries = (0..100).map(|client_id| entry(client_id, 1, "{}")).collect();
        assert_eq!(awareness.apply(1, &alice(), entries, Instant::now()).len(), MAX_CLIENT_IDS_PER_CONNECTION);
    }
}
