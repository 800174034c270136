//! What rooms announces on `room-events`: the events of its writes, as the schema of
//! `proto/codesync/events/v1` has them, staged with the write that makes them.

use codesync_common::bus::Staged;
use codesync_common::events::{Event, Kind, schema};
use codesync_common::identity::Caller;
use codesync_proto::rooms::v1 as pb;

use crate::store::{FileRecord, RoomRecord};
use crate::{Role, RoomsGrpcService};

impl RoomsGrpcService {
    /// A member joined, changed role or left: `room-events`, keyed by room, with
    /// the user and the new role (none once removed), the room's name and owner, and who did it.
    pub(crate) fn membership_event(
        kind: fn(schema::MemberChange) -> Kind,
        room: &RoomRecord,
        user_id: &str,
        role: Option<Role>,
        by: &Caller,
    ) -> Event {
        let change = schema::MemberChange {
            room_id: room.id.clone(),
            room_name: room.name.clone(),
            owner_id: room.owner_id.clone(),
            user_id: user_id.to_string(),
            role: role.map_or(pb::Role::Unspecified, Role::to_proto).into(),
            by: by.user_id.clone(),
            by_username: by.username.clone(),
        };
        Event::new(&room.id, kind(change))
    }

    /// Something happened to a room: `room-events`, keyed by room, for the room's event log,
    /// notifications and analytics.
    pub(crate) fn room_event(kind: fn(schema::RoomChange) -> Kind, change: schema::RoomChange, by: &Caller) -> Event {
        let change = schema::RoomChange { by: by.user_id.clone(), by_username: by.username.clone(), ..change };
        Event::new(&change.room_id.clone(), kind(change))
    }

    /// Something happened to a file: `room-events`, keyed by its room.
    pub(crate) fn file_event(kind: fn(schema::FileChange) -> Kind, file: &FileRecord, by: &Caller) -> Event {
        let change = schema::FileChange {
            room_id: file.room_id.clone(),
            file_id: file.id.clone(),
            filename: file.filename.clone(),
            by: by.user_id.clone(),
            by_username: by.username.clone(),
            ..Default::default()
        };
        Event::new(&file.room_id, kind(change))
    }

    /// The events a write announces, stored with it (see [`Staged`]).
    pub(crate) fn staged(&self, event: Event) -> Staged<'_> {
        Staged::new(self.events.as_ref(), vec![event])
    }
}
