//! The gRPC adapter: `codesync.history.v1.HistoryService` on the domain.

use std::time::Duration;

use codesync_common::grpc::CallContext;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use codesync_proto::history::v1 as pb;
use codesync_proto::history::v1::history_service_server::HistoryService;
use codesync_proto::rooms::v1 as rooms_pb;
use tonic::{Request, Response, Status};

use crate::delta;
use crate::{HistoryGrpcService, Inner, MAX_DIFF_BYTES, MAX_MESSAGE_CHARS, Making, Restoring};

#[tonic::async_trait]
impl HistoryService for HistoryGrpcService {
    async fn create_version(
        &self,
        request: Request<pb::CreateVersionRequest>,
    ) -> Result<Response<pb::Version>, Status> {
        let caller = self.inner.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let message = request.message.trim().to_string();
        if message.chars().count() > MAX_MESSAGE_CHARS {
            let text = format!("a save's message is at most {MAX_MESSAGE_CHARS} characters");
            return Err(ServiceError::invalid(ErrorCode::MessageTooLong, text).into());
        }
        let room_id = self.inner.require_writer(&context, &request.file_id).await?;
        let unsaved = self.inner.take_unsaved(&request.file_id).await?;
        let authors = Inner::authors_with(&caller.user_id, unsaved.as_ref());
        let making = Making { kind: pb::VersionKind::Save, message, authors, restore: None };
        let made = self.inner.make_version(&context, &request.file_id, &room_id, making).await;
        let version = match made {
            Ok(Some(version)) => version,
            Ok(None) => return Err(ServiceError::internal("a save made no version").into()),
            Err(error) => {
                self.inner.put_back_unsaved(unsaved, 0).await;
                return Err(error.into());
            }
        };
        Ok(Response::new(version))
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        self.inner.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        self.inner.check_file(&context, &request.file_id).await?;
        let versions = self.inner.store.list(&request.file_id, request.before_number, request.limit).await?;
        Ok(Response::new(pb::ListVersionsResponse { versions }))
    }

    async fn get_version(&self, request: Request<pb::GetVersionRequest>) -> Result<Response<pb::Version>, Status> {
        self.inner.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let version = self.readable_version(&context, &request.get_ref().version_id).await?;
        let content = self.inner.store.content(&version.file_id, version.number).await?;
        Ok(Response::new(pb::Version { content: Some(content), ..version }))
    }

    async fn diff_versions(
        &self,
        request: Request<pb::DiffVersionsRequest>,
    ) -> Result<Response<pb::DiffVersionsResponse>, Status> {
        self.inner.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let from = self.readable_version(&context, &request.from_version_id).await?;
        let to =
            self.inner.store.find(&request.to_version_id).await?.filter(|to| to.file_id == from.file_id).ok_or_else(
                || ServiceError::not_found(ErrorCode::VersionNotFound, "no such version of the same file"),
            )?;
        let old = self.inner.store.content(&from.file_id, from.number).await?;
        let new = self.inner.store.content(&to.file_id, to.number).await?;
        let headers = (format!("version {}", from.number), format!("version {}", to.number));
        let (change, unified_diff) = tokio::task::spawn_blocking(move || {
            let change = delta::change(&old, &new);
            let unified_diff = similar::TextDiff::configure()
                .deadline(std::time::Instant::now() + Duration::from_secs(2))
                .diff_lines(&old, &new)
                .unified_diff()
                .context_radius(3)
                .header(&headers.0, &headers.1)
                .to_string();
            (change, unified_diff)
        })
        .await
        .map_err(ServiceError::internal)?;
        if unified_diff.len() > MAX_DIFF_BYTES {
            return Err(ServiceError::too_large(ErrorCode::DiffTooLarge, "the diff is larger than 8 MiB").into());
        }
        Ok(Response::new(pb::DiffVersionsResponse {
            unified_diff,
            lines_added: change.lines_added,
            lines_removed: change.lines_removed,
        }))
    }

    async fn restore_version(
        &self,
        request: Request<pb::RestoreVersionRequest>,
    ) -> Result<Response<pb::Version>, Status> {
        let caller = self.inner.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let version = self.readable_version(&context, &request.version_id).await?;
        let room_id = self.inner.require_writer(&context, &version.file_id).await?;
        let content = self.inner.store.content(&version.file_id, version.number).await?;
        let unsaved = self.inner.take_unsaved(&version.file_id).await?;
        let unsaved_authors = unsaved.as_ref().map(|edits| edits.editors.clone()).unwrap_or_default();
        let making = Making {
            kind: pb::VersionKind::Restore,
            message: format!("Restored version {}", version.number),
            authors: vec![caller.user_id.clone()],
            restore: Some(Restoring { content, expected_head: request.expected_head, unsaved_authors }),
        };
        let made = self.inner.make_version(&context, &version.file_id, &room_id, making).await;
        let restored = match made {
            Ok(Some(restored)) => restored,
            Ok(None) => return Err(ServiceError::internal("a restore made no version").into()),
            Err(error) => {
                self.inner.put_back_unsaved(unsaved, 0).await;
                return Err(error.into());
            }
        };
        Ok(Response::new(restored))
    }

    async fn list_room_events(
        &self,
        request: Request<pb::ListRoomEventsRequest>,
    ) -> Result<Response<pb::ListRoomEventsResponse>, Status> {
        // Only members read the log, so a caller must say who they are first.
        self.inner.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.inner.tokens);
        let request = request.into_inner();
        let access = self.inner.check_room(&context, &request.room_id).await?;
        // A public room is readable by all, its log (who joined, who ran what) only by members.
        if access.role == rooms_pb::Role::Unspecified as i32 {
            return Err(
                ServiceError::forbidden(ErrorCode::MembersOnly, "only the room's members see its event log").into()
            );
        }
        let events = self
            .inner
            .store
            .list_room_events(&access.room_id, request.before_ms, &request.before_id, request.limit)
            .await?;
        Ok(Response::new(pb::ListRoomEventsResponse { events }))
    }
}

impl HistoryGrpcService {
    /// A version whose file the caller may read; NOT_FOUND otherwise, whatever the reason.
    async fn readable_version(&self, context: &CallContext, version_id: &str) -> ServiceResult<pb::Version> {
        let not_found = || ServiceError::not_found(ErrorCode::VersionNotFound, "no such version");
        if !codesync_common::is_valid_id(version_id) {
            return Err(not_found());
        }
        let version = self.inner.store.find(version_id).await?.ok_or_else(not_found)?;
        match self.inner.check_file(context, &version.file_id).await {
            Ok(_) => Ok(version),
            Err(error) if error.is(ErrorCode::FileNotFound) => Err(not_found()),
            Err(error) => Err(error),
        }
    }
}
