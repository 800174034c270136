//! Automatic versions: the files whose editing paused (or went on too long without one)
//! get a checkpoint, taken by one replica, made as one of the file's editors.

use std::time::Duration;

use codesync_common::grpc::CallContext;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use codesync_proto::history::v1 as pb;

use crate::store::PendingCheckpoint;

use crate::{CHECKPOINT_RETRY, Inner, Making};

impl Inner {
    /// Editors of the file not yet in a version, taken for a version that includes their edits.
    pub(crate) async fn take_unsaved(&self, file_id: &str) -> ServiceResult<Option<PendingCheckpoint>> {
        for _ in 0..5 {
            let Some(pending) = self.store.pending(file_id).await? else { return Ok(None) };
            if self.store.take_pending(&pending).await? {
                return Ok(Some(pending));
            }
        }
        Ok(None)
    }

    /// Edits taken for a version that was not made after all: still waiting for one.
    pub(crate) async fn put_back_unsaved(&self, pending: Option<PendingCheckpoint>, retry_at_ms: i64) {
        let Some(pending) = pending else { return };
        let put_back = self
            .store
            .add_pending(&pending.file_id, pending.first_seen_ms, pending.last_seen_ms, &pending.editors, retry_at_ms)
            .await;
        if let Err(error) = put_back {
            tracing::warn!(file.id = %pending.file_id, %error, "edits waiting for a checkpoint could not be put back");
        }
    }

    /// Who a save or restore by `caller` is by: the caller, then the file's unsaved editors.
    pub(crate) fn authors_with(caller: &str, unsaved: Option<&PendingCheckpoint>) -> Vec<String> {
        let mut authors = vec![caller.to_string()];
        authors.extend(unsaved.into_iter().flat_map(|edits| edits.editors.iter()).filter(|id| *id != caller).cloned());
        authors
    }

    /// Checkpoints of the files whose editing paused, or went on too long without one. Each is
    /// taken by one replica (the row as it was read), and put back to wait if it fails.
    pub(crate) async fn checkpoint_due_files(&self) {
        let millis = |duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let now_ms = codesync_common::now_ms();
        let idle_ms = millis(self.config.checkpoint_after_idle);
        let interval_ms = millis(self.config.checkpoint_at_most_every);
        let due = match self.store.due_pending(now_ms, idle_ms, interval_ms).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "cannot read the pending checkpoints");
                return;
            }
        };
        for pending in due {
            match self.store.take_pending(&pending).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(file.id = %pending.file_id, %error, "cannot take a pending checkpoint");
                    continue;
                }
            }
            let file_id = pending.file_id.clone();
            match self.checkpoint(&file_id, pending.editors.clone()).await {
                Ok(Some(version)) => {
                    tracing::info!(file.id = %file_id, number = version.number, "took a checkpoint");
                }
                Ok(None) => {}
                // The file is gone, or none of its editors may read it any more: nothing to keep.
                Err(error)
                    if [ErrorCode::FileNotFound, ErrorCode::RoomNotFound].into_iter().any(|code| error.is(code)) => {}
                Err(error) => {
                    tracing::warn!(file.id = %file_id, %error, "a checkpoint failed; trying again later");
                    self.figures.failed_checkpoints.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let retry_at_ms = codesync_common::now_ms() + millis(CHECKPOINT_RETRY);
                    self.put_back_unsaved(Some(pending), retry_at_ms).await;
                }
            }
        }
    }

    /// A checkpoint reads and records the file as one of its editors would: this service acts for
    /// that editor (with its service credential; it signs no user's token), so it never reads what
    /// its authors could not. The editors are tried in turn: one may have left the room since.
    pub(crate) async fn checkpoint(&self, file_id: &str, authors: Vec<String>) -> ServiceResult<Option<pb::Version>> {
        let mut refusal = ServiceError::not_found(ErrorCode::FileNotFound, "no such file");
        for editor in &authors {
            let context = CallContext::acting_for(editor);
            // The room as the rooms service knows it now (a file never moves, but it may be gone).
            let room_id = match self.check_file(&context, file_id).await {
                Ok(access) => access.room_id,
                Err(error)
                    if [ErrorCode::FileNotFound, ErrorCode::RoomNotFound].into_iter().any(|code| error.is(code)) =>
                {
                    refusal = error;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let making = Making { kind: pb::VersionKind::Checkpoint, message: String::new(), authors, restore: None };
            return self.make_version(&context, file_id, &room_id, making).await;
        }
        Err(refusal)
    }
}

pub(crate) async fn take_checkpoints(inner: std::sync::Weak<Inner>) {
    let every = {
        let Some(inner) = inner.upgrade() else { return };
        (inner.config.checkpoint_after_idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.checkpoint_due_files().await;
    }
}
