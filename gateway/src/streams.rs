//! How many long-lived connections (WebSockets, event streams) one user holds: each takes a slot
//! for as long as it is open, and one past `max_streams_per_user` is refused with 429. (Per
//! address, every connection counts against `max_connections_per_address`: see `server`.)

use codesync_common::ErrorCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::error::ApiError;

#[derive(Debug, Default)]
pub struct StreamSlots {
    limit: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One open stream's slot, given back when it drops.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    user_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

impl codesync_common::metrics::Source for StreamSlots {
    fn readings(&self) -> Vec<codesync_common::metrics::Reading> {
        use codesync_common::metrics::Reading;
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        vec![
            Reading::gauge(
                "gateway_streams_open",
                "WebSockets (/ws/files, /ws/rooms) and event streams open at this gateway",
                open.values().sum::<usize>() as f64,
            ),
            Reading::gauge("gateway_stream_users", "Users holding a WebSocket or event stream here", open.len() as f64),
        ]
    }
}

impl StreamSlots {
    /// The slots, reported at `/metrics` for as long as they live.
    pub fn new(limit: usize) -> Arc<Self> {
        let slots = Arc::new(Self { limit: limit.max(1), open: Mutex::default() });
        codesync_common::metrics::register(slots.clone());
        slots
    }

    /// A slot for one more stream of `user_id`, or 429 saying why.
    pub fn take(self: &Arc<Self>, user_id: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(user_id.to_string()).or_insert(0);
        if *count >= self.limit {
            let mut error = codesync_common::error::HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyConnections,
                format!("you have {} connections open, as many as one person may: close some tabs", self.limit),
            );
            error.retry_after_secs = Some(5);
            return Err(ApiError(error));
        }
        *count += 1;
        Ok(StreamSlot { slots: self.clone(), user_id: user_id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_limit_and_gets_slots_back() {
        let slots = StreamSlots::new(2);
        let first = slots.take("ada").unwrap();
        let _second = slots.take("ada").unwrap();
        assert_eq!(slots.take("ada").err().unwrap().0.code, ErrorCode::TooManyConnections);
        assert!(slots.take("bob").is_ok(), "another user has slots of their own");
        drop(first);
        assert!(slots.take("ada").is_ok());
    }
}
