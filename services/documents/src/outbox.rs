//! What goes out to one connection: y-protocols messages through a queue
//! bounded in messages and bytes, and, beside it, the reason the server
//! closes the connection. The reason has its own channel so that it arrives
//! even when the queue is full: that is exactly when a slow client is cut off.

use bytes::Bytes;
use codesync_common::queue::{self, BoundedReceiver, BoundedSender, SendProblem};
use futures::Stream;
use tokio::sync::oneshot;

/// The actor's end.
pub struct Outbox {
    messages: BoundedSender<Bytes>,
    closer: oneshot::Sender<tonic::Status>,
}

/// The connection's end.
pub struct Inbox {
    messages: BoundedReceiver<Bytes>,
    closer: oneshot::Receiver<tonic::Status>,
}

pub fn channel(max_messages: usize, max_bytes: usize) -> (Outbox, Inbox) {
    channel_in(max_messages, max_bytes, None)
}

/// Like [`channel`], the queue drawing on a shared budget in a user's share (see
/// [`queue::bounded_in`]).
pub fn channel_in(
    max_messages: usize,
    max_bytes: usize,
    share: Option<(std::sync::Arc<codesync_common::budget::InflightBudget>, codesync_common::budget::Holder)>,
) -> (Outbox, Inbox) {
    let (messages, message_receiver) = queue::bounded_in(max_messages, max_bytes, share);
    let (closer, closer_receiver) = oneshot::channel();
    (Outbox { messages, closer }, Inbox { messages: message_receiver, closer: closer_receiver })
}

impl Outbox {
    /// Queues a message without waiting: the document never waits for a connection.
    pub fn try_send(&self, message: Bytes) -> Result<(), SendProblem> {
        self.messages.try_send(message)
    }

    /// Ends the connection with `reason`, ahead of anything still queued.
    pub fn close(self, reason: tonic::Status) {
        let _ = self.closer.send(reason);
    }
}

impl Inbox {
    /// The first message, or why the connection was closed before it.
    pub async fn first(&mut self) -> Result<Bytes, tonic::Status> {
        tokio::select! {
            biased;
            reason = &mut self.closer => Err(reason.unwrap_or_else(|_| tonic::Status::unavailable("the document closed; try again"))),
            message = self.messages.recv() => message.ok_or_else(|| tonic::Status::unavailable("the document closed; try again")),
        }
    }

    /// The messages, ending with the close reason if there is one.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, tonic::Status>> {
        futures::stream::unfold(Some(self), |inbox| async move {
            let mut inbox = inbox?;
            tokio::select! {
                biased;
                reason = &mut inbox.closer, if !inbox.closer.is_terminated() => match reason {
                    Ok(reason) => Some((Err(reason), None)),
                    // Closed without a reason: whatever is queued still goes out.
                    Err(_) => inbox.messages.recv().await.map(|message| (Ok(message), Some(inbox))),
                },
                message = inbox.messages.recv() => message.map(|message| (Ok(message), Some(inbox))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_close_reason_overtakes_a_full_queue() {
        let (outbox, inbox) = channel(2, 1 << 20);
        outbox.try_send(Bytes::from_static(b"a")).unwrap();
        outbox.try_send(Bytes::from_static(b"b")).unwrap();
        assert_eq!(outbox.try_send(Bytes::from_static(b"c")), Err(SendProblem::Full));
        outbox.close(tonic::Status::resource_exhausted("too slow"));
        let items: Vec<_> = inbox.into_stream().collect().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap_err().code(), tonic::Code::ResourceExhausted);
    }

    #[tokio::test]
    async fn without_a_reason_the_queue_drains_and_ends() {
        let (outbox, inbox) = channel(4, 1 << 20);
        outbox.try_send(Bytes::from_static(b"a")).unwrap();
        outbox.try_send(Bytes::from_static(b"b")).unwrap();
        drop(outbox);
        let items: Vec<_> = inbox.into_stream().map(Result::unwrap).collect().await;
        assert_eq!(items, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    }
}
