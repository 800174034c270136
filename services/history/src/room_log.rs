//! The room event log and the edits waiting for a checkpoint: what the consumer group
//! `history` does with each event of its topics.

use codesync_common::consumer::HandleError;
use codesync_common::events::{
    COLLABORATION_ACTIVITY, COLLABORATION_EVENTS, EXECUTION_EVENTS, EXECUTION_FINISHED, Event, ROOM_EVENTS,
};
use codesync_proto::history::v1 as pb;

use crate::Inner;

impl Inner {
    /// One event of the group's topics: an entry of a room's log, or edits to remember.
    pub(crate) async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        match (event.topic.as_str(), event.kind.as_str()) {
            (COLLABORATION_EVENTS, COLLABORATION_ACTIVITY) => self.remember_edits(event).await,
            (ROOM_EVENTS, _) => self.log_room_event(event, "by").await,
            (EXECUTION_EVENTS, EXECUTION_FINISHED)
                if event.payload["room_id"].as_str().is_some_and(|id| !id.is_empty()) =>
            {
                self.log_room_event(event, "user_id").await
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn log_room_event(&self, event: &Event, who_field: &str) -> Result<(), HandleError> {
        let room_id = event.payload["room_id"]
            .as_str()
            .filter(|room_id| !room_id.is_empty())
            .ok_or_else(|| HandleError::poisoned(format!("a {} event without room_id", event.kind)))?;
        let entry = pb::RoomEvent {
            id: event.id.clone(),
            room_id: room_id.to_string(),
            event_type: event.kind.clone(),
            user_id: event.payload[who_field].as_str().unwrap_or_default().to_string(),
            metadata_json: event.payload.to_string(),
            created_at_ms: event.occurred_at_ms,
        };
        self.store.insert_room_event(&entry).await.map_err(HandleError::transient)
    }

    /// Edits worth a checkpoint: stored before the event is acknowledged, so that they are
    /// remembered across restarts and by whichever replica takes the checkpoint.
    pub(crate) async fn remember_edits(&self, event: &Event) -> Result<(), HandleError> {
        let Some(file_id) = event.payload["file_id"].as_str() else { return Ok(()) };
        let editors: Vec<String> = event.payload["editors"]
            .as_array()
            .map(|editors| editors.iter().filter_map(|editor| editor.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        // Joins and awareness alone change nothing worth a version.
        if event.payload["updates"].as_u64().unwrap_or(0) == 0 || editors.is_empty() {
            return Ok(());
        }
        // When the edits were made (the window's end), not when the event arrived: a backlog
        // read after an outage does not postpone its checkpoints.
        let seen_ms = event.occurred_at_ms;
        self.store.add_pending(file_id, seen_ms, seen_ms, &editors, 0).await.map_err(HandleError::transient)
    }
}
