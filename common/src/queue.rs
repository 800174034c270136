//! A queue toward one slow consumer (a WebSocket, a gRPC stream) that is
//! bounded in bytes as well as in items, and never makes the producer wait:
//! when it is full, the producer learns so at once and cuts the consumer off.
//! Counting items alone is not enough once bursts are merged into few large
//! messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// How many bytes an item counts for.
pub trait Weighed {
    fn weight(&self) -> usize;
}

impl Weighed for bytes::Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendProblem {
    /// The consumer is too slow: the queue holds its limit.
    Full,
    /// The consumer is gone.
    Closed,
}

pub struct BoundedSender<T> {
    items: mpsc::Sender<T>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

pub struct BoundedReceiver<T> {
    items: mpsc::Receiver<T>,
    queued_bytes: Arc<AtomicUsize>,
}

/// A queue of at most `max_items` items and `max_bytes` bytes; one item
/// larger than `max_bytes` still passes when the queue is empty.
pub fn bounded<T: Weighed>(max_items: usize, max_bytes: usize) -> (BoundedSender<T>, BoundedReceiver<T>) {
    let (items, receiver) = mpsc::channel(max_items.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        BoundedSender { items, queued_bytes: queued_bytes.clone(), max_bytes },
        BoundedReceiver { items: receiver, queued_bytes },
    )
}

impl<T: Weighed> BoundedSender<T> {
    pub fn try_send(&self, item: T) -> Result<(), SendProblem> {
        let weight = item.weight();
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(weight) > self.max_bytes {
            return Err(if self.items.is_closed() { SendProblem::Closed } else { SendProblem::Full });
        }
        self.items.try_send(item).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => SendProblem::Full,
            mpsc::error::TrySendError::Closed(_) => SendProblem::Closed,
        })?;
        self.queued_bytes.fetch_add(weight, Ordering::AcqRel);
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.items.is_closed()
    }
}

impl<T: Weighed> BoundedReceiver<T> {
    pub async fn recv(&mut self) -> Option<T> {
        let item = self.items.recv().await?;
        self.queued_bytes.fetch_sub(item.weight(), Ordering::AcqRel);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[tokio::test]
    async fn bytes_and_items_both_bound_the_queue() {
        let (sender, mut receiver) = bounded::<Bytes>(3, 10);
        sender.try_send(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(sender.try_send(Bytes::from_static(b"12345")), Err(SendProblem::Full), "11 bytes > 10");
        sender.try_send(Bytes::from_static(b"1234")).unwrap();
        assert_eq!(receiver.recv().await.unwrap().len(), 6);
        sender.try_send(Bytes::from_static(b"1")).unwrap();
        sender.try_send(Bytes::from_static(b"1")).unwrap();
        assert_eq!(sender.try_send(Bytes::from_static(b"1")), Err(SendProblem::Full), "three items");
        drop(receiver);
        assert_eq!(sender.try_send(Bytes::from_static(b"1")), Err(SendProblem::Closed));
    }

    #[tokio::test]
    async fn one_oversized_item_passes_an_empty_queue() {
        let (sender, mut receiver) = bounded::<Bytes>(3, 10);
        sender.try_send(Bytes::from(vec![0; 100])).unwrap();
        assert_eq!(receiver.recv().await.unwrap().len(), 100);
    }
}
