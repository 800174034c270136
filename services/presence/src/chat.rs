//! The room's chat: what a message may hold, and posting one (stored, then pushed to the
//! room's sessions here and on the other replicas).

use std::sync::atomic::Ordering;

use codesync_common::identity::Caller;
use codesync_common::rate_limit::retry_after_secs;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use codesync_proto::presence::v1 as pb;

use crate::PresenceGrpcService;

/// Chat messages replayed when someone joins.
pub const CHAT_HISTORY_ON_JOIN: u32 = 100;
/// The longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = codesync_common::limits::CHAT_MESSAGE_MAX_CHARS;

/// Trimmed text of 1 to [`MAX_CHAT_CHARS`] characters; line breaks and tabs
/// are kept, other control characters and direction overrides refused.
pub fn validate_chat_text(text: &str) -> ServiceResult<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ServiceError::invalid(ErrorCode::EmptyMessage, "a chat message needs some text"));
    }
    if text.chars().count() > MAX_CHAT_CHARS {
        return Err(ServiceError::too_large(
            ErrorCode::MessageTooLong,
            format!("chat messages are limited to {MAX_CHAT_CHARS} characters"),
        ));
    }
    let forbidden = text.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    });
    if forbidden {
        return Err(ServiceError::invalid(ErrorCode::InvalidMessage, "chat messages may not hold control characters"));
    }
    Ok(text.to_string())
}

impl PresenceGrpcService {
    pub(crate) async fn post_chat(&self, caller: &Caller, room_id: &str, text: &str) -> ServiceResult<pb::ChatMessage> {
        let text = validate_chat_text(text)?;
        if let Err(wait) = self.chat_limiter.try_acquire(&caller.user_id).await {
            return Err(ServiceError::RateLimited {
                message: "too many chat messages; wait a moment".into(),
                retry_after_secs: retry_after_secs(wait),
            });
        }
        let message = pb::ChatMessage {
            id: codesync_common::new_id(),
            room_id: room_id.to_string(),
            user_id: caller.user_id.clone(),
            username: caller.username.clone(),
            text,
            sent_at_ms: codesync_common::now_ms(),
        };
        self.store.insert_message(&message).await?;
        self.figures.chat_messages.fetch_add(1, Ordering::Relaxed);
        if let Some(room) = self.rooms_state().get(room_id) {
            room.publish(pb::room_server_event::Event::Chat(message.clone()));
        }
        self.share_event(room_id, pb::room_server_event::Event::Chat(message.clone()));
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn chat_text_is_validated() {
        assert_eq!(validate_chat_text("  hi there \n").unwrap(), "hi there");
        assert_eq!(validate_chat_text("line\nline\tcol").unwrap(), "line\nline\tcol");
        assert_eq!(validate_chat_text("   ").unwrap_err().code(), ErrorCode::EmptyMessage);
        assert_eq!(validate_chat_text(&"x".repeat(2001)).unwrap_err().code(), ErrorCode::MessageTooLong);
        assert!(validate_chat_text(&"é".repeat(2000)).is_ok(), "the limit counts characters, not bytes");
        assert_eq!(validate_chat_text("bell\u{7}").unwrap_err().code(), ErrorCode::InvalidMessage);
        assert_eq!(validate_chat_text("evil\u{202e}txt").unwrap_err().code(), ErrorCode::InvalidMessage);
    }
}
