//! Making versions: access checks through rooms, the live text from documents, the authors,
//! and the numbered, delta-encoded version stored with its `version_created` event.

use std::collections::HashMap;
use std::sync::Arc;

use codesync_common::bus::Staged;
use codesync_common::events::{Event, Kind, schema};
use codesync_common::grpc::CallContext;
use codesync_common::{ErrorCode, ServiceError, ServiceResult, new_id, now_ms};
use codesync_proto::auth::v1::GetUserProfilesRequest;
use codesync_proto::documents::v1::{GetDocumentRequest, ReplaceTextRequest};
use codesync_proto::history::v1 as pb;
use codesync_proto::rooms::v1 as rooms_pb;

use crate::store::{Inserted, NewVersion};

use crate::store;
use crate::{Inner, Making, NUMBER_ATTEMPTS, locked};

impl Inner {
    pub(crate) fn file_lock(&self, file_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = locked(&self.file_locks);
        // Locks nobody holds or waits for go, so the map does not grow with every file ever saved.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(file_id.to_string()).or_default().clone()
    }

    pub(crate) async fn check_file(
        &self,
        context: &CallContext,
        file_id: &str,
    ) -> ServiceResult<rooms_pb::CheckAccessResponse> {
        codesync_common::access::check_file(&self.rooms, context, file_id).await
    }

    pub(crate) async fn check_room(
        &self,
        context: &CallContext,
        room_id: &str,
    ) -> ServiceResult<rooms_pb::CheckAccessResponse> {
        codesync_common::access::check_room(&self.rooms, context, room_id).await
    }

    pub(crate) async fn require_writer(&self, context: &CallContext, file_id: &str) -> ServiceResult<String> {
        let access = self.check_file(context, file_id).await?;
        if !access.can_write {
            return Err(ServiceError::forbidden(ErrorCode::ReadOnly, "viewers cannot save or restore versions"));
        }
        Ok(access.room_id)
    }

    pub(crate) async fn usernames(&self, context: &CallContext, user_ids: &[String]) -> HashMap<String, String> {
        let request = context.request(GetUserProfilesRequest { user_ids: user_ids.to_vec() });
        match self.auth.clone().get_user_profiles(request).await {
            Ok(response) => {
                response.into_inner().profiles.into_iter().map(|profile| (profile.id, profile.username)).collect()
            }
            Err(status) => {
                tracing::warn!(error = %status, "usernames of a version's authors are unknown");
                HashMap::new()
            }
        }
    }

    /// Records the file's content as a new version; for a restore, first keeps the edits made
    /// since the newest version as a checkpoint, then makes the old content current through the
    /// documents service and records that. `None` when a checkpoint finds nothing new since the
    /// newest version.
    pub(crate) async fn make_version(
        &self,
        context: &CallContext,
        file_id: &str,
        room_id: &str,
        making: Making,
    ) -> ServiceResult<Option<pb::Version>> {
        let lock = self.file_lock(file_id);
        let _one_at_a_time = lock.lock().await;
        let Some(restoring) = making.restore else {
            let text = self.live_text(context, file_id).await?;
            let authors = self.authors(context, &making.authors).await;
            let skip_unchanged = making.kind == pb::VersionKind::Checkpoint;
            return self.record(file_id, room_id, making.kind, &making.message, &authors, text, skip_unchanged).await;
        };
        let head_number = self.store.head(file_id).await?.map_or(0, |head| head.number);
        if let Some(expected) = restoring.expected_head
            && expected != head_number
        {
            return Err(ServiceError::conflict(
                ErrorCode::StaleHead,
                format!("the newest version is {head_number}, not {expected}: reload the history and try again"),
            ));
        }
        // Edits nobody saved yet would be undone without a trace: they become a version first.
        let live = self.live_text(context, file_id).await?;
        let kept_by = if restoring.unsaved_authors.is_empty() { &making.authors } else { &restoring.unsaved_authors };
        let kept_authors = self.authors(context, kept_by).await;
        let kept = "Kept before a restore";
        self.record(file_id, room_id, pb::VersionKind::Checkpoint, kept, &kept_authors, live, true).await?;
        let request = ReplaceTextRequest { file_id: file_id.to_string(), text: restoring.content };
        let replaced = self.documents.clone().replace_text(context.request(request)).await;
        let text = replaced.map_err(|status| ServiceError::from_peer("documents", status))?.into_inner().text;
        let authors = self.authors(context, &making.authors).await;
        self.record(file_id, room_id, pb::VersionKind::Restore, &making.message, &authors, text, false).await
    }

    pub(crate) async fn live_text(&self, context: &CallContext, file_id: &str) -> ServiceResult<String> {
        let request = GetDocumentRequest { file_id: file_id.to_string(), include_state: false };
        let document = self.documents.clone().get_document(context.request(request)).await;
        Ok(document.map_err(|status| ServiceError::from_peer("documents", status))?.into_inner().text)
    }

    pub(crate) async fn authors(&self, context: &CallContext, user_ids: &[String]) -> Vec<pb::Author> {
        let names = self.usernames(context, user_ids).await;
        user_ids
            .iter()
            .map(|id| pb::Author { id: id.clone(), username: names.get(id).cloned().unwrap_or_default() })
            .collect()
    }

    /// Stores `text` as the file's next version, taking the number after the newest (the next
    /// one again if another process takes it first). With `skip_unchanged`, nothing is stored
    /// when the newest version holds `text` already.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record(
        &self,
        file_id: &str,
        room_id: &str,
        kind: pb::VersionKind,
        message: &str,
        authors: &[pb::Author],
        text: String,
        skip_unchanged: bool,
    ) -> ServiceResult<Option<pb::Version>> {
        let text = Arc::new(text);
        for _ in 0..NUMBER_ATTEMPTS {
            let head = self.store.head(file_id).await?;
            let previous = match &head {
                Some(head) => self.store.content(file_id, head.number).await?,
                None => String::new(),
            };
            if skip_unchanged && head.is_some() && previous == *text {
                return Ok(None);
            }
            let number = head.as_ref().map_or(0, |head| head.number) + 1;
            // A line diff of large files takes a while: off the async threads.
            let next = text.clone();
            let encoded = tokio::task::spawn_blocking(move || store::encode(number, &previous, &next))
                .await
                .map_err(ServiceError::internal)?;
            let version = pb::Version {
                id: new_id(),
                file_id: file_id.to_string(),
                room_id: room_id.to_string(),
                number,
                author_id: authors.first().map(|author| author.id.clone()).unwrap_or_default(),
                author_username: authors.first().map(|author| author.username.clone()).unwrap_or_default(),
                kind: kind.into(),
                message: message.to_string(),
                lines_added: encoded.lines_added,
                lines_removed: encoded.lines_removed,
                content: None,
                created_at_ms: now_ms(),
                authors: authors.to_vec(),
                size_bytes: i64::try_from(text.len()).unwrap_or(i64::MAX),
            };
            let new_version = NewVersion { version: &version, encoding: encoded.encoding, body: encoded.body };
            let mut staged = Staged::new(self.events.as_ref(), vec![version_created(&version)]);
            match self.store.insert(new_version, &mut staged).await? {
                Inserted::Done => {
                    staged.committed().await;
                    self.figures.made(&version);
                    return Ok(Some(version));
                }
                // Another process made this number meanwhile: the next one is ours.
                Inserted::NumberTaken => {
                    tracing::debug!(file.id = %file_id, number, "a version number was taken meanwhile; taking the next");
                }
            }
        }
        Err(ServiceError::Unavailable { message: "too many versions are being made at once; try again".into() })
    }
}

/// `version_created` on `room-events`, for the room's log and its readers.
pub(crate) fn version_created(version: &pb::Version) -> Event {
    let created = schema::VersionCreated {
        room_id: version.room_id.clone(),
        file_id: version.file_id.clone(),
        version_id: version.id.clone(),
        number: version.number,
        kind: version.kind,
        by: version.author_id.clone(),
        by_username: version.author_username.clone(),
        lines_added: version.lines_added,
        lines_removed: version.lines_removed,
    };
    Event::new(&version.room_id, Kind::VersionCreated(created))
}
