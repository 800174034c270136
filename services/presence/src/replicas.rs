//! Presence across replicas (with Redis): what this replica tells the others of its
//! sessions and events, and what it hears from them. The Redis side is in [`crate::shared`].

use crate::PresenceGrpcService;
use crate::shared::{self, Arrivals, SessionView};
use codesync_proto::presence::v1 as pb;

impl PresenceGrpcService {
    /// What the other replicas say: rooms to read again, events for the sessions here.
    pub(crate) async fn receive_from_other_replicas(self, arrivals: std::sync::Arc<Arrivals>) {
        loop {
            let (rooms, events) = arrivals.next().await;
            for (room_id, event) in events {
                if let Some(room) = self.rooms_state().get(&room_id) {
                    let _ = room.events.send(event);
                }
            }
            for room_id in rooms {
                self.read_others(&room_id).await;
            }
        }
    }

    /// Reads the room's sessions on the other replicas, and shows the room to its sessions here.
    pub(crate) async fn read_others(&self, room_id: &str) {
        let Some(shared) = &self.shared else { return };
        let others = shared.others(room_id).await;
        let mut rooms = self.rooms_state();
        if let Some(room) = rooms.get_mut(room_id) {
            room.others = others;
            room.publish_snapshot();
        }
    }

    /// Rewrites this replica's sessions every few seconds (the others drop sessions that are
    /// not), and reads the others' again, so that a replica that died leaves its rooms.
    pub(crate) async fn refresh_shared_presence(self) {
        let mut ticks = tokio::time::interval(shared::REFRESH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(shared) = self.shared.clone() else { return };
            let rooms: Vec<(String, Vec<(u64, SessionView)>)> =
                self.rooms_state().iter().map(|(room_id, room)| (room_id.clone(), room.views())).collect();
            for (room_id, views) in rooms {
                shared.write(&room_id, &views, &[]).await;
                let others = shared.others(&room_id).await;
                let mut rooms = self.rooms_state();
                if let Some(room) = rooms.get_mut(&room_id)
                    && room.others != others
                {
                    room.others = others;
                    room.publish_snapshot();
                }
            }
        }
    }

    /// Tells the other replicas what this one's sessions of the room are now.
    pub(crate) fn share_sessions(&self, room_id: &str, views: Vec<(u64, SessionView)>, gone: Vec<u64>) {
        let Some(shared) = self.shared.clone() else { return };
        let Some(turn) = shared.write_turn() else { return };
        let room_id = room_id.to_string();
        tokio::spawn(async move {
            shared.write(&room_id, &views, &gone).await;
            drop(turn);
        });
    }

    /// Passes an event of the room to its sessions on the other replicas.
    pub(crate) fn share_event(&self, room_id: &str, event: pb::room_server_event::Event) {
        let Some(shared) = self.shared.clone() else { return };
        let Some(turn) = shared.write_turn() else { return };
        let room_id = room_id.to_string();
        let event = pb::RoomServerEvent { event: Some(event) };
        tokio::spawn(async move {
            shared.broadcast(&room_id, &event).await;
            drop(turn);
        });
    }
}
