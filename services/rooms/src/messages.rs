//! The store's records as the gRPC contract's messages.

use codesync_proto::rooms::v1 as pb;

use crate::Role;
use crate::store::{FileRecord, MemberRecord, RoomRecord};

pub(crate) fn room_message(room: &RoomRecord) -> pb::Room {
    // The invite code admits editors, so only those who may already edit see it.
    let invite_code = room.caller_role.filter(|role| role.can_write()).map(|_| room.invite_code.clone());
    pb::Room {
        id: room.id.clone(),
        name: room.name.clone(),
        description: room.description.clone(),
        is_public: room.is_public,
        owner_id: room.owner_id.clone(),
        invite_code,
        my_role: room.caller_role.map_or(pb::Role::Unspecified, Role::to_proto).into(),
        member_count: room.member_count,
        created_at_ms: room.created_at_ms,
        updated_at_ms: room.updated_at_ms,
    }
}

pub(crate) fn member_message(member: MemberRecord, username: String) -> pb::Member {
    pb::Member {
        room_id: member.room_id,
        user_id: member.user_id,
        username,
        role: member.role.to_proto().into(),
        joined_at_ms: member.joined_at_ms,
    }
}

pub(crate) fn file_message(file: FileRecord) -> pb::File {
    pb::File {
        id: file.id,
        room_id: file.room_id,
        filename: file.filename,
        language: file.language,
        content: file.content,
        size_bytes: file.size_bytes,
        created_by: file.created_by,
        updated_by: file.updated_by,
        created_at_ms: file.created_at_ms,
        updated_at_ms: file.updated_at_ms,
    }
}
