//! Large y-protocols messages cross a gRPC stream as pieces of at most
//! [`MESSAGE_PIECE_BYTES`].
//!
//! Why: tonic keeps each stream's encode and decode buffers at the size of the
//! largest message they ever held, for as long as the stream lives. A 100k-character
//! document is a 370 KB sync message; sent whole, it pins that much in four buffers
//! (two processes, two directions) of every connection that ever carried it.

use bytes::Bytes;

/// The largest piece of a message in one gRPC frame: one HTTP/2 DATA frame.
pub const MESSAGE_PIECE_BYTES: usize = 16 * 1024;

/// Splits a message into its pieces, in order; the last one is flagged `true`.
/// A message of at most [`MESSAGE_PIECE_BYTES`] is its own last piece, uncopied.
pub fn split(message: Bytes) -> impl Iterator<Item = (Bytes, bool)> {
    let mut rest = message;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        if rest.len() <= MESSAGE_PIECE_BYTES {
            done = true;
            return Some((std::mem::take(&mut rest), true));
        }
        Some((rest.split_to(MESSAGE_PIECE_BYTES), false))
    })
}

/// A message that would grow past the receiver's limit while being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTooLarge {
    pub limit: usize,
}

/// Joins the pieces of one message at a time, refusing to grow past `limit` bytes.
#[derive(Debug)]
pub struct Reassembly {
    pending: Vec<u8>,
    limit: usize,
}

impl Reassembly {
    pub fn new(limit: usize) -> Self {
        Self { pending: Vec::new(), limit }
    }

    /// Adds a leading piece of the message being reassembled.
    pub fn push_part(&mut self, part: &[u8]) -> Result<(), MessageTooLarge> {
        let needed = self.pending.len() + part.len();
        if needed > self.limit {
            self.pending = Vec::new();
            return Err(MessageTooLarge { limit: self.limit });
        }
        // Grown by doubling, but never past the limit: a message at the limit
        // costs the limit, not twice it.
        if needed > self.pending.capacity() {
            let capacity = (self.pending.capacity() * 2).max(needed).min(self.limit);
            self.pending.reserve_exact(capacity - self.pending.len());
        }
        self.pending.extend_from_slice(part);
        Ok(())
    }

    /// Adds the last piece and returns the whole message. The buffer goes with
    /// it, so nothing stays allocated between messages.
    pub fn finish(&mut self, last: Bytes) -> Result<Bytes, MessageTooLarge> {
        if self.pending.is_empty() {
            if last.len() > self.limit {
                return Err(MessageTooLarge { limit: self.limit });
            }
            return Ok(last);
        }
        self.push_part(&last)?;
        Ok(Bytes::from(std::mem::take(&mut self.pending)))
    }

    /// Whether a message has been started and not finished.
    pub fn is_partial(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(length: usize) -> Bytes {
        (0..length).map(|index| (index % 251) as u8).collect::<Vec<u8>>().into()
    }

    #[test]
    fn small_message_is_one_uncopied_piece() {
        let original = message(10);
        let pieces: Vec<_> = split(original.clone()).collect();
        assert_eq!(pieces, vec![(original, true)]);
    }

    #[test]
    fn empty_message_is_one_empty_piece() {
        let pieces: Vec<_> = split(Bytes::new()).collect();
        assert_eq!(pieces, vec![(Bytes::new(), true)]);
    }

    #[test]
    fn large_message_round_trips_through_bounded_pieces() {
        for length in [MESSAGE_PIECE_BYTES, MESSAGE_PIECE_BYTES + 1, 3 * MESSAGE_PIECE_BYTES, 376_759] {
            let original = message(length);
            let mut reassembly = Reassembly::new(1 << 20);
            let mut whole = None;
            let pieces: Vec<_> = split(original.clone()).collect();
            assert!(pieces.iter().all(|(piece, _)| piece.len() <= MESSAGE_PIECE_BYTES));
            assert_eq!(pieces.iter().filter(|(_, last)| *last).count(), 1);
            for (piece, last) in pieces {
                if last {
                    whole = Some(reassembly.finish(piece).expect("within the limit"));
                } else {
                    reassembly.push_part(&piece).expect("within the limit");
                }
            }
            assert_eq!(whole, Some(original), "length {length}");
            assert!(!reassembly.is_partial());
        }
    }

    #[test]
    fn reassembly_refuses_to_grow_past_its_limit() {
        let mut reassembly = Reassembly::new(20_000);
        reassembly.push_part(&message(16_384)).expect("within the limit");
        assert_eq!(reassembly.push_part(&message(16_384)), Err(MessageTooLarge { limit: 20_000 }));
        assert!(!reassembly.is_partial(), "a refused message leaves nothing behind");
        assert_eq!(reassembly.finish(message(20_001)), Err(MessageTooLarge { limit: 20_000 }));

        let mut reassembly = Reassembly::new(40_000);
        for _ in 0..2 {
            reassembly.push_part(&message(16_384)).expect("within the limit");
        }
        assert!(reassembly.pending.capacity() <= 40_000, "growth stops at the limit");
    }
}
