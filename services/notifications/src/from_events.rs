//! What each event means for whom: a finished run for the user who ran it, a member joining for
//! the room's owner, a role change or removal for the member, a system notice for its user.
//! Events of other kinds mean nothing here; an event of a known kind without the fields it needs
//! is poisoned.

use codesync_common::consumer::HandleError;
use codesync_common::events::{Event, Kind, schema};
use codesync_proto::execution::v1::ExecutionStatus;
use codesync_proto::notifications::v1 as pb;
use codesync_proto::rooms::v1::Role;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Titles and messages are cut to these many characters.
const MAX_TITLE_CHARS: usize = 200;
const MAX_MESSAGE_CHARS: usize = 2000;

/// The notification `event` makes, if any.
pub fn notification_for(event: &Event) -> Result<Option<pb::Notification>, HandleError> {
    match &event.kind {
        Kind::ExecutionFinished(run) => execution_finished(event, run).map(Some),
        Kind::MemberJoined(change) => member_joined(event, change),
        Kind::MemberRoleChanged(change) | Kind::MemberRemoved(change) => membership_changed(event, change),
        Kind::SystemNotice(notice) => system_notice(event, notice).map(Some),
        _ => Ok(None),
    }
}

/// A field the event's kind cannot do without.
fn required<'a>(event: &Event, field: &str, value: &'a str) -> Result<&'a str, HandleError> {
    Some(value)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| HandleError::poisoned(format!("a {} event without '{field}'", event.kind_name())))
}

/// A notification id from the event and the recipient: an event delivered twice makes the same
/// notification, which the store keeps once. Shaped as a UUID, like every other id.
fn id_for(event: &Event, user_id: &str) -> String {
    let digest = Sha256::digest(format!("{}/{user_id}", event.id).as_bytes());
    let hex: String = digest.iter().take(16).map(|byte| format!("{byte:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn notification(
    event: &Event,
    user_id: &str,
    kind: pb::NotificationType,
    title: String,
    message: String,
    metadata: Value,
) -> pb::Notification {
    pb::Notification {
        id: id_for(event, user_id),
        user_id: user_id.to_string(),
        r#type: kind.into(),
        title: title.chars().take(MAX_TITLE_CHARS).collect(),
        message: message.chars().take(MAX_MESSAGE_CHARS).collect(),
        metadata_json: metadata.to_string(),
        read: false,
        created_at_ms: event.occurred_at_ms,
    }
}

fn execution_finished(event: &Event, run: &schema::ExecutionFinished) -> Result<pb::Notification, HandleError> {
    let user_id = required(event, "user_id", &run.user_id)?;
    let language = required(event, "language", &run.language)?;
    let status = ExecutionStatus::try_from(run.status)
        .ok()
        .filter(|status| *status != ExecutionStatus::Unspecified)
        .ok_or_else(|| HandleError::poisoned("an execution_finished event without its status"))?;
    let (exit_code, wall_time_ms) = (run.exit_code, run.wall_time_ms);
    let (title, message) = match status {
        ExecutionStatus::Ok => (format!("Your {language} run finished"), format!("Exit code 0 in {wall_time_ms} ms.")),
        ExecutionStatus::CompileError => (
            format!("Your {language} program did not compile"),
            "The compiler's message is in the run panel.".to_string(),
        ),
        ExecutionStatus::RuntimeError => {
            (format!("Your {language} run failed"), format!("Exit code {exit_code} after {wall_time_ms} ms."))
        }
        ExecutionStatus::TimeLimit => (
            format!("Your {language} run took too long"),
            format!("Stopped at the time limit after {wall_time_ms} ms."),
        ),
        ExecutionStatus::MemoryLimit => {
            (format!("Your {language} run used too much memory"), "Stopped at the memory limit.".to_string())
        }
        ExecutionStatus::OutputLimit => {
            (format!("Your {language} run printed too much"), "Stopped at the output limit.".to_string())
        }
        ExecutionStatus::InternalError | ExecutionStatus::Unspecified => {
            (format!("Your {language} run could not finish"), "The server could not run it; try again.".to_string())
        }
    };
    let metadata = json!({
        "execution_id": run.execution_id,
        "room_id": run.room_id,
        "file_id": run.file_id,
        "language": language,
        "status": status.api_name(),
        "exit_code": exit_code,
        "wall_time_ms": wall_time_ms,
    });
    Ok(notification(event, user_id, pb::NotificationType::Execution, title, message, metadata))
}

/// Someone joined with the room's invite code: its owner hears of it.
fn member_joined(event: &Event, change: &schema::MemberChange) -> Result<Option<pb::Notification>, HandleError> {
    let room_id = required(event, "room_id", &change.room_id)?;
    let user_id = required(event, "user_id", &change.user_id)?;
    let owner_id = change.owner_id.as_str();
    if owner_id.is_empty() || owner_id == user_id {
        return Ok(None);
    }
    let (room_name, username) = (&change.room_name, change.by_username.as_str());
    let who = if username.is_empty() { "Someone" } else { username };
    let title = format!("{who} joined {room_name}");
    let message = format!("{who} joined your room {room_name} with its invite code.");
    let metadata = json!({"room_id": room_id, "room_name": room_name, "user_id": user_id, "username": username});
    Ok(Some(notification(event, owner_id, pb::NotificationType::Invite, title, message, metadata)))
}

/// The owner changed a member's role or removed them: the member hears of it (not of their own
/// leaving).
fn membership_changed(event: &Event, change: &schema::MemberChange) -> Result<Option<pb::Notification>, HandleError> {
    let room_id = required(event, "room_id", &change.room_id)?;
    let user_id = required(event, "user_id", &change.user_id)?;
    if change.by == user_id {
        return Ok(None);
    }
    let room_name = &change.room_name;
    let role = match &event.kind {
        Kind::MemberRemoved(_) => None,
        _ => Some(
            Role::of(change.role)
                .name()
                .ok_or_else(|| HandleError::poisoned("a member_role_changed event without the new role"))?,
        ),
    };
    let (title, message) = match role {
        Some(role) => {
            (format!("You are now {role} in {room_name}"), format!("The owner of {room_name} made you {role}."))
        }
        None => (
            format!("You were removed from {room_name}"),
            format!("The owner of {room_name} removed you from the room."),
        ),
    };
    let metadata = json!({"room_id": room_id, "room_name": room_name, "role": role});
    Ok(Some(notification(event, user_id, pb::NotificationType::Room, title, message, metadata)))
}

fn system_notice(event: &Event, notice: &schema::SystemNotice) -> Result<pb::Notification, HandleError> {
    let user_id = required(event, "user_id", &notice.user_id)?;
    let title = required(event, "title", &notice.title)?.to_string();
    Ok(notification(event, user_id, pb::NotificationType::System, title, notice.message.clone(), json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(user_id: &str, language: &str, status: ExecutionStatus) -> Event {
        let run = schema::ExecutionFinished {
            user_id: user_id.into(),
            language: language.into(),
            status: status.into(),
            wall_time_ms: 41,
            room_id: "room-1".into(),
            ..Default::default()
        };
        Event::new("room-1", Kind::ExecutionFinished(run))
    }

    fn member(kind: fn(schema::MemberChange) -> Kind, role: Role, by: &str) -> Event {
        let change = schema::MemberChange {
            room_id: "r".into(),
            room_name: "Pairing".into(),
            owner_id: "olga".into(),
            user_id: "bob".into(),
            role: role.into(),
            by: by.into(),
            by_username: by.into(),
        };
        Event::new("r", kind(change))
    }

    #[test]
    fn a_finished_run_notifies_who_ran_it() {
        let event = finished("ada", "python", ExecutionStatus::Ok);
        let made = notification_for(&event).unwrap().unwrap();
        assert_eq!((made.user_id.as_str(), made.r#type), ("ada", pb::NotificationType::Execution as i32));
        assert_eq!((made.title.as_str(), made.message.as_str()), ("Your python run finished", "Exit code 0 in 41 ms."));
        let metadata: Value = serde_json::from_str(&made.metadata_json).unwrap();
        assert_eq!((metadata["language"].as_str(), metadata["exit_code"].as_i64()), (Some("python"), Some(0)));
        assert_eq!(metadata["status"], "ok");
        assert_eq!(made.id, notification_for(&event).unwrap().unwrap().id, "the same event, the same id");
        assert!(codesync_common::is_valid_id(&made.id));
    }

    #[test]
    fn membership_events_notify_the_owner_or_the_member() {
        let made = notification_for(&member(Kind::MemberJoined, Role::Editor, "bob")).unwrap().unwrap();
        assert_eq!((made.user_id.as_str(), made.title.as_str()), ("olga", "bob joined Pairing"));
        let made = notification_for(&member(Kind::MemberRoleChanged, Role::Viewer, "olga")).unwrap().unwrap();
        assert_eq!((made.user_id.as_str(), made.title.as_str()), ("bob", "You are now viewer in Pairing"));
        let left = member(Kind::MemberRemoved, Role::Unspecified, "bob");
        assert!(notification_for(&left).unwrap().is_none(), "leaving by oneself notifies nobody");
        let removed = notification_for(&member(Kind::MemberRemoved, Role::Unspecified, "olga")).unwrap().unwrap();
        assert_eq!(removed.title, "You were removed from Pairing");
        assert_eq!(serde_json::from_str::<Value>(&removed.metadata_json).unwrap()["role"], Value::Null);
    }

    #[test]
    fn events_without_their_fields_are_poisoned_and_others_ignored() {
        let poisoned = finished("", "python", ExecutionStatus::Ok);
        assert!(matches!(notification_for(&poisoned), Err(HandleError::Poisoned(_))));
        let poisoned = finished("ada", "python", ExecutionStatus::Unspecified);
        assert!(matches!(notification_for(&poisoned), Err(HandleError::Poisoned(_))));
        let roleless = member(Kind::MemberRoleChanged, Role::Unspecified, "olga");
        assert!(matches!(notification_for(&roleless), Err(HandleError::Poisoned(_))));
        let unrelated = Event::new("k", Kind::FileCreated(schema::FileChange::default()));
        assert!(notification_for(&unrelated).unwrap().is_none());
        let notice =
            schema::SystemNotice { user_id: "u".into(), title: "Maintenance at 10:00".into(), message: String::new() };
        let notice = Event::new("u", Kind::SystemNotice(notice));
        assert_eq!(notification_for(&notice).unwrap().unwrap().r#type, pb::NotificationType::System as i32);
    }
}
