//! A queue toward one slow consumer (a WebSocket, a gRPC stream) that is
//! bounded in bytes as well as in items, and never makes the producer wait:
//! when it is full, the producer learns so at once and cuts the consumer off.
//! Counting items alone is not enough once bursts are merged into few large
//! messages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::budget::{Holder, InflightBudget, Reservation};

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
    draw: Option<Arc<Draw>>,
}

pub struct BoundedReceiver<T> {
    items: mpsc::Receiver<T>,
    queued_bytes: Arc<AtomicUsize>,
    draw: Option<Arc<Draw>>,
}

/// A queue of at most `max_items` items and `max_bytes` bytes; one item
/// larger than `max_bytes` still passes when the queue is empty.
pub fn bounded<T: Weighed>(max_items: usize, max_bytes: usize) -> (BoundedSender<T>, BoundedReceiver<T>) {
    bounded_in(max_items, max_bytes, None)
}

/// Like [`bounded`], and what the queue holds is drawn from `share` (a byte budget shared by
/// many queues, in one holder's share), so that many slow readers together hold at most the
/// budget: a queue whose draw is refused counts as full, and its reader is cut off as too slow.
pub fn bounded_in<T: Weighed>(
    max_items: usize,
    max_bytes: usize,
    share: Option<(Arc<InflightBudget>, Holder)>,
) -> (BoundedSender<T>, BoundedReceiver<T>) {
    let (items, receiver) = mpsc::channel(max_items.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let draw = share.map(|(budget, holder)| Arc::new(Draw { budget, holder, granted: Mutex::default() }));
    (
        BoundedSender { items, queued_bytes: queued_bytes.clone(), max_bytes, draw: draw.clone() },
        BoundedReceiver { items: receiver, queued_bytes, draw },
    )
}

/// What a queue holds of a shared budget, in granules of [`GRANULE`] bytes: most queues hold
/// little, and touch the budget (a lock shared by the process) only when they cross a granule.
struct Draw {
    budget: Arc<InflightBudget>,
    holder: Holder,
    granted: Mutex<Vec<Reservation>>,
}

/// The unit in which a queue draws on a shared budget.
pub const GRANULE: usize = 64 * 1024;

impl Draw {
    /// Makes sure `bytes` are granted; false when the budget refuses.
    fn cover(&self, bytes: usize) -> bool {
        let mut granted = self.granted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut held: usize = granted.iter().map(Reservation::bytes).sum();
        while held < bytes {
            let more = (bytes - held).div_ceil(GRANULE) * GRANULE;
            match self.budget.try_reserve(&self.holder, more) {
                Ok(reservation) => {
                    held += reservation.bytes();
                    granted.push(reservation);
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Gives back what `bytes` no longer need, keeping a granule to spare.
    fn trim(&self, bytes: usize) {
        let mut granted = self.granted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut held: usize = granted.iter().map(Reservation::bytes).sum();
        while let Some(last) = granted.last() {
            if held - last.bytes() < bytes + GRANULE {
                break;
            }
            held -= last.bytes();
            granted.pop();
        }
    }
}

impl<T: Weighed> BoundedSender<T> {
    pub fn try_send(&self, item: T) -> Result<(), SendProblem> {
        let weight = item.weight();
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(weight) > self.max_bytes {
            return Err(if self.items.is_closed() { SendProblem::Closed } else { SendProblem::Full });
        }
        if let Some(draw) = &self.draw
            && !draw.cover(queued.saturating_add(weight))
        {
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
        let left = self.queued_bytes.fetch_sub(item.weight(), Ordering::AcqRel).saturating_sub(item.weight());
        if let Some(draw) = &self.draw {
            draw.trim(left);
        }
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
    async fn queues_drawing_on_one_budget_hold_at_most_their_holder_s_share() {
        use crate::budget::InflightLimits;
        let limits = InflightLimits {
            total: 4 * GRANULE,
            per_caller: 2 * GRANULE,
            anonymous_per_address: 0,
            anonymous_total: 0,
        };
        let budget = InflightBudget::new("test-outbound", limits);
        let ada = || Some((budget.clone(), Holder::User("ada".into())));
        let (first, mut first_reader) = bounded_in::<Bytes>(100, 1 << 20, ada());
        let (second, _second_reader) = bounded_in::<Bytes>(100, 1 << 20, ada());
        first.try_send(Bytes::from(vec![0; GRANULE])).unwrap();
        second.try_send(Bytes::from(vec![0; GRANULE])).unwrap();
        assert_eq!(second.try_send(Bytes::from(vec![0; 10])), Err(SendProblem::Full), "ada's share is spent");
        let (other, _other_reader) =
            bounded_in::<Bytes>(100, 1 << 20, Some((budget.clone(), Holder::User("bob".into()))));
        other.try_send(Bytes::from(vec![0; 10])).unwrap();
        assert_eq!(budget.in_use(), 3 * GRANULE);
        first_reader.recv().await.unwrap();
        assert_eq!(budget.in_use(), 3 * GRANULE, "a read queue keeps one granule to spare");
        drop((first, first_reader));
        assert_eq!(budget.in_use(), 2 * GRANULE, "a queue that is gone gives back what it held");
        second.try_send(Bytes::from(vec![0; 10])).unwrap_or_else(|_| panic!("ada has room again"));
    }

    #[tokio::test]
    async fn one_oversized_item_passes_an_empty_queue() {
        let (sender, mut receiver) = bounded::<Bytes>(3, 10);
        sender.try_send(Bytes::from(vec![0; 100])).unwrap();
        assert_eq!(receiver.recv().await.unwrap().len(), 100);
    }
}
