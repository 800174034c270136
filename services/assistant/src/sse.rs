//! Server-sent events as the providers send them: lines ending in LF, CRLF or CR, `event:` and
//! `data:` fields (several `data:` lines join with LF), comments, and blank lines that end an
//! event. Bytes arrive cut anywhere, also inside a UTF-8 sequence or between CR and LF.

/// One event: its name (`message` when none was given) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// The largest event kept; a provider sending more without a blank line is broken.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    /// The last byte taken was a CR: an LF right after it ends nothing more.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    size: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an event of the provider's stream is larger than {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseDecoder {
    /// Takes the next bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
        let mut events = Vec::new();
        for &byte in bytes {
            if self.after_cr && byte == b'\n' {
                self.after_cr = false;
                continue;
            }
            self.after_cr = byte == b'\r';
            if byte == b'\n' || byte == b'\r' {
                let line = std::mem::take(&mut self.pending);
                if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                    events.push(event);
                }
                continue;
            }
            self.pending.push(byte);
            self.size += 1;
            if self.size > MAX_EVENT_BYTES {
                return Err(EventTooLarge);
            }
        }
        Ok(events)
    }

    /// What is left when the stream ends: an event without its final blank line still counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.pending);
        if !line.is_empty() {
            let _ = self.line(&String::from_utf8_lossy(&line));
        }
        self.line("")
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            self.size = 0;
            let data = self.data.take()?;
            let event = self.event.take().unwrap_or_else(|| "message".to_string());
            return Some(SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent { event: name.into(), data: data.into() }
    }

    #[test]
    fn events_are_read_whatever_the_line_endings_and_cuts() {
        let stream =
            "event: ping\r\ndata: {}\r\n\r\n: a comment\r\ndata: one\r\ndata: two\r\n\r\ndata: {\"t\":\"é\"}\n\n";
        let bytes = stream.as_bytes();
        // Every cut, one byte at a time included, gives the same events.
        for cut in 0..bytes.len() {
            let mut decoder = SseDecoder::default();
            let mut events = decoder.push(&bytes[..cut]).unwrap();
            events.extend(decoder.push(&bytes[cut..]).unwrap());
            assert_eq!(
                events,
                [event("ping", "{}"), event("message", "one\ntwo"), event("message", "{\"t\":\"é\"}")],
                "cut at {cut}"
            );
        }
        let mut decoder = SseDecoder::default();
        let events: Vec<SseEvent> = bytes.iter().flat_map(|byte| decoder.push(&[*byte]).unwrap()).collect();
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn a_last_event_without_a_blank_line_counts_and_a_huge_one_is_refused() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b"data: [DONE]").unwrap().is_empty());
        assert_eq!(decoder.finish(), Some(event("message", "[DONE]")));
        let mut decoder = SseDecoder::default();
        assert_eq!(decoder.push(&vec![b'x'; MAX_EVENT_BYTES + 1]), Err(EventTooLarge));
    }
}
