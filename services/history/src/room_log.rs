//! The room event log and the edits waiting for a checkpoint: what the consumer group
//! `history` does with each event of its topics.

use codesync_common::consumer::HandleError;
use codesync_common::events::{Event, Kind, ROOM_EVENTS, schema};
use codesync_proto::history::v1 as pb;

use crate::Inner;

impl Inner {
    /// One event of the group's topics: an entry of a room's log, or edits to remember.
    pub(crate) async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        match &event.kind {
            Kind::Activity(activity) => self.remember_edits(event, activity).await,
            // Everything on room-events is part of its room's story.
            _ if event.topic() == ROOM_EVENTS => self.log_room_event(event).await,
            // A run in a room is part of the room's story; one outside a room is nobody's.
            Kind::ExecutionFinished(run) if !run.room_id.is_empty() => self.log_room_event(event).await,
            _ => Ok(()),
        }
    }

    pub(crate) async fn log_room_event(&self, event: &Event) -> Result<(), HandleError> {
        let room_id = event
            .room_id()
            .ok_or_else(|| HandleError::poisoned(format!("a {} event without room_id", event.kind_name())))?;
        let entry = pb::RoomEvent {
            id: event.id.clone(),
            room_id: room_id.to_string(),
            event_type: event.kind_name().to_string(),
            user_id: event.actor().unwrap_or_default().to_string(),
            metadata_json: event.details().to_string(),
            created_at_ms: event.occurred_at_ms,
        };
        self.store.insert_room_event(&entry).await.map_err(HandleError::transient)
    }

    /// Edits worth a checkpoint: stored before the event is acknowledged, so that they are
    /// remembered across restarts and by whichever replica takes the checkpoint.
    pub(crate) async fn remember_edits(&self, event: &Event, activity: &schema::Activity) -> Result<(), HandleError> {
        let (file_id, editors) = (&activity.file_id, &activity.editors);
        // Joins and awareness alone change nothing worth a version.
        if file_id.is_empty() || activity.updates == 0 || editors.is_empty() {
            return Ok(());
        }
        // When the edits were made (the window's end), not when the event arrived: a backlog
        // read after an outage does not postpone its checkpoints.
        let seen_ms = event.occurred_at_ms;
        self.store.add_pending(file_id, seen_ms, seen_ms, editors, 0).await.map_err(HandleError::transient)
    }
}
