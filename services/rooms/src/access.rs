//! The authorisation rules of rooms, in one place.

use codesync_common::identity::Caller;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};

use crate::Role;
use crate::store::RoomRecord;

/// A room the caller may read, with the caller's role in it.
#[derive(Debug)]
pub struct RoomAccess {
    room: RoomRecord,
    caller: Option<Caller>,
}

impl RoomAccess {
    /// Readable: a public room, or a private room the caller is a member of.
    /// Anything else is NOT_FOUND, exactly as if the room did not exist.
    pub fn evaluate(room: Option<RoomRecord>, caller: Option<Caller>) -> ServiceResult<Self> {
        let room = room.ok_or_else(room_not_found)?;
        if !room.is_public && room.caller_role.is_none() {
            return Err(room_not_found());
        }
        Ok(Self { room, caller })
    }

    pub fn room(&self) -> &RoomRecord {
        &self.room
    }

    pub fn role(&self) -> Option<Role> {
        self.room.caller_role
    }

    pub fn require_member(&self) -> ServiceResult<Role> {
        self.require_signed_in()?;
        self.role()
            .ok_or_else(|| ServiceError::forbidden(ErrorCode::NotAMember, "only members of this room may do this"))
    }

    pub fn require_write(&self) -> ServiceResult<Role> {
        let role = self.require_member()?;
        if !role.can_write() {
            return Err(ServiceError::forbidden(ErrorCode::ReadOnly, "viewers cannot change this room"));
        }
        Ok(role)
    }

    pub fn require_owner(&self) -> ServiceResult<()> {
        if self.require_member()? != Role::Owner {
            return Err(ServiceError::forbidden(ErrorCode::OwnerOnly, "only the room's owner may do this"));
        }
        Ok(())
    }

    fn require_signed_in(&self) -> ServiceResult<()> {
        match self.caller {
            Some(_) => Ok(()),
            None => Err(ServiceError::unauthenticated(
                ErrorCode::AuthenticationRequired,
                "sign in first: this request needs an access token",
            )),
        }
    }
}

fn room_not_found() -> ServiceError {
    ServiceError::not_found(ErrorCode::RoomNotFound, "no such room")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(is_public: bool, caller_role: Option<Role>) -> RoomRecord {
        RoomRecord {
            id: "r".into(),
            name: "n".into(),
            description: String::new(),
            is_public,
            owner_id: "o".into(),
            invite_code: "c".into(),
            created_at_ms: 0,
            updated_at_ms: 0,
            member_count: 1,
            caller_role,
        }
    }

    fn someone() -> Option<Caller> {
        Some(Caller { user_id: "u".into(), username: "u".into(), is_admin: false })
    }

    #[test]
    fn private_rooms_do_not_exist_for_outsiders() {
        assert_eq!(
            RoomAccess::evaluate(Some(room(false, None)), someone()).unwrap_err().code(),
            ErrorCode::RoomNotFound
        );
        assert_eq!(RoomAccess::evaluate(Some(room(false, None)), None).unwrap_err().code(), ErrorCode::RoomNotFound);
        assert_eq!(RoomAccess::evaluate(None, someone()).unwrap_err().code(), ErrorCode::RoomNotFound);
    }

    #[test]
    fn roles_gate_changes() {
        let viewer = RoomAccess::evaluate(Some(room(false, Some(Role::Viewer))), someone()).unwrap();
        assert_eq!(viewer.require_write().unwrap_err().code(), ErrorCode::ReadOnly);
        let outsider = RoomAccess::evaluate(Some(room(true, None)), someone()).unwrap();
        assert_eq!(outsider.require_write().unwrap_err().code(), ErrorCode::NotAMember);
        let anonymous = RoomAccess::evaluate(Some(room(true, None)), None).unwrap();
        assert_eq!(anonymous.require_write().unwrap_err().code(), ErrorCode::AuthenticationRequired);
        let editor = RoomAccess::evaluate(Some(room(true, Some(Role::Editor))), someone()).unwrap();
        assert!(editor.require_write().is_ok());
        assert_eq!(editor.require_owner().unwrap_err().code(), ErrorCode::OwnerOnly);
        let owner = RoomAccess::evaluate(Some(room(false, Some(Role::Owner))), someone()).unwrap();
        assert!(owner.require_owner().is_ok());
    }
}
