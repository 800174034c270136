//! What each event means for whom: a finished run for the user who ran it, a member joining for
//! the room's owner, a role change or removal for the member, a system notice for its user.
//! Events of other kinds mean nothing here; an event of a known kind without the fields it needs
//! is poisoned.

use codesync_common::consumer::HandleError;
use codesync_common::events::{
    EXECUTION_EVENTS, EXECUTION_FINISHED, Event, MEMBER_JOINED, MEMBER_REMOVED, MEMBER_ROLE_CHANGED,
    NOTIFICATION_EVENTS, ROOM_EVENTS, SYSTEM_NOTICE,
};
use codesync_proto::notifications::v1 as pb;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Titles and messages are cut to these many characters.
const MAX_TITLE_CHARS: usize = 200;
const MAX_MESSAGE_CHARS: usize = 2000;

/// The notification `event` makes, if any.
pub fn notification_for(event: &Event) -> Result<Option<pb::Notification>, HandleError> {
    match (event.topic.as_str(), event.kind.as_str()) {
        (EXECUTION_EVENTS, EXECUTION_FINISHED) => execution_finished(event).map(Some),
        (ROOM_EVENTS, MEMBER_JOINED) => member_joined(event),
        (ROOM_EVENTS, MEMBER_ROLE_CHANGED | MEMBER_REMOVED) => membership_changed(event),
        (NOTIFICATION_EVENTS, SYSTEM_NOTICE) => system_notice(event).map(Some),
        _ => Ok(None),
    }
}

fn text<'a>(event: &'a Event, field: &str) -> Result<&'a str, HandleError> {
    event.payload[field]
        .as_str()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| HandleError::poisoned(format!("a {} event without '{field}'", event.kind)))
}

fn optional_text<'a>(event: &'a Event, field: &str) -> &'a str {
    event.payload[field].as_str().unwrap_or_default()
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

fn execution_finished(event: &Event) -> Result<pb::Notification, HandleError> {
    let user_id = text(event, "user_id")?;
    let language = text(event, "language")?;
    let status = text(event, "status")?;
    let exit_code = event.payload["exit_code"].as_i64().unwrap_or(-1);
    let wall_time_ms = event.payload["wall_time_ms"].as_i64().unwrap_or(0);
    let (title, message) = match status {
        "ok" => (format!("Your {language} run finished"), format!("Exit code 0 in {wall_time_ms} ms.")),
        "compile_error" => (
            format!("Your {language} program did not compile"),
            "The compiler's message is in the run panel.".to_string(),
        ),
        "runtime_error" => {
            (format!("Your {language} run failed"), format!("Exit code {exit_code} after {wall_time_ms} ms."))
        }
        "time_limit" => (
            format!("Your {language} run took too long"),
            format!("Stopped at the time limit after {wall_time_ms} ms."),
        ),
        "memory_limit" => {
            (format!("Your {language} run used too much memory"), "Stopped at the memory limit.".to_string())
        }
        "output_limit" => (format!("Your {language} run printed too much"), "Stopped at the output limit.".to_string()),
        _ => (format!("Your {language} run could not finish"), "The server could not run it; try again.".to_string()),
    };
    let metadata = json!({
        "execution_id": optional_text(event, "execution_id"),
        "room_id": optional_text(event, "room_id"),
        "file_id": optional_text(event, "file_id"),
        "language": language,
        "status": status,
        "exit_code": exit_code,
        "wall_time_ms": wall_time_ms,
    });
    Ok(notification(event, user_id, pb::NotificationType::Execution, title, message, metadata))
}

/// Someone joined with the room's invite code: its owner hears of it.
fn member_joined(event: &Event) -> Result<Option<pb::Notification>, HandleError> {
    let room_id = text(event, "room_id")?;
    let user_id = text(event, "user_id")?;
    let owner_id = optional_text(event, "owner_id");
    if owner_id.is_empty() || owner_id == user_id {
        return Ok(None);
    }
    let room_name = optional_text(event, "room_name");
    let username = optional_text(event, "by_username");
    let who = if username.is_empty() { "Someone" } else { username };
    let title = format!("{who} joined {room_name}");
    let message = format!("{who} joined your room {room_name} with its invite code.");
    let metadata = json!({"room_id": room_id, "room_name": room_name, "user_id": user_id, "username": username});
    Ok(Some(notification(event, owner_id, pb::NotificationType::Invite, title, message, metadata)))
}

/// The owner changed a member's role or removed them: the member hears of it (not of their own
/// leaving).
fn membership_changed(event: &Event) -> Result<Option<pb::Notification>, HandleError> {
    let room_id = text(event, "room_id")?;
    let user_id = text(event, "user_id")?;
    if optional_text(event, "by") == user_id {
        return Ok(None);
    }
    let room_name = optional_text(event, "room_name");
    let role = event.payload["role"].as_str();
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

fn system_notice(event: &Event) -> Result<pb::Notification, HandleError> {
    let user_id = text(event, "user_id")?;
    let title = text(event, "title")?.to_string();
    let message = optional_text(event, "message").to_string();
    Ok(notification(event, user_id, pb::NotificationType::System, title, message, json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_notifies_who_ran_it() {
        let event = Event::new(
            EXECUTION_EVENTS,
            EXECUTION_FINISHED,
            "room-1",
            json!({"user_id": "ada", "language": "python", "status": "ok", "exit_code": 0, "wall_time_ms": 41, "room_id": "room-1"}),
        );
        let made = notification_for(&event).unwrap().unwrap();
        assert_eq!((made.user_id.as_str(), made.r#type), ("ada", pb::NotificationType::Execution as i32));
        assert_eq!((made.title.as_str(), made.message.as_str()), ("Your python run finished", "Exit code 0 in 41 ms."));
        let metadata: Value = serde_json::from_str(&made.metadata_json).unwrap();
        assert_eq!((metadata["language"].as_str(), metadata["exit_code"].as_i64()), (Some("python"), Some(0)));
        assert_eq!(made.id, notification_for(&event).unwrap().unwrap().id, "the same event, the same id");
        assert!(codesync_common::is_valid_id(&made.id));
    }

    #[test]
    fn membership_events_notify_the_owner_or_the_member() {
        let joined = Event::new(
            ROOM_EVENTS,
            MEMBER_JOINED,
            "r",
            json!({"room_id": "r", "room_name": "Pairing", "owner_id": "olga", "user_id": "bob", "by": "bob", "by_username": "bob"}),
        );
        let made = notification_for(&joined).unwrap().unwrap();
        assert_eq!((made.user_id.as_str(), made.title.as_str()), ("olga", "bob joined Pairing"));
        let demoted = Event::new(
            ROOM_EVENTS,
            MEMBER_ROLE_CHANGED,
            "r",
            json!({"room_id": "r", "room_name": "Pairing", "user_id": "bob", "role": "viewer", "by": "olga"}),
        );
        let made = notification_for(&demoted).unwrap().unwrap();
        assert_eq!((made.user_id.as_str(), made.title.as_str()), ("bob", "You are now viewer in Pairing"));
        let left = Event::new(
            ROOM_EVENTS,
            MEMBER_REMOVED,
            "r",
            json!({"room_id": "r", "user_id": "bob", "role": null, "by": "bob"}),
        );
        assert!(notification_for(&left).unwrap().is_none(), "leaving by oneself notifies nobody");
    }

    #[test]
    fn events_without_their_fields_are_poisoned_and_others_ignored() {
        let poisoned = Event::new(EXECUTION_EVENTS, EXECUTION_FINISHED, "k", json!({"language": "python"}));
        assert!(matches!(notification_for(&poisoned), Err(HandleError::Poisoned(_))));
        let unrelated = Event::new(ROOM_EVENTS, "file_created", "k", json!({}));
        assert!(notification_for(&unrelated).unwrap().is_none());
        let notice = Event::new(
            NOTIFICATION_EVENTS,
            SYSTEM_NOTICE,
            "u",
            json!({"user_id": "u", "title": "Maintenance at 10:00"}),
        );
        assert_eq!(notification_for(&notice).unwrap().unwrap().r#type, pb::NotificationType::System as i32);
    }
}
