//! Removing a deleted file's document, one workflow for every caller: the `DeleteDocument`
//! call, and this service's reaction to `file_deleted` and `room_deleted` on `room-events`,
//! so that a file deleted over REST or gRPC, on any replica, loses its document.

use std::time::Duration;

use codesync_common::consumer::HandleError;
use codesync_common::events::{Event, Kind};
use codesync_common::grpc::CallContext;
use codesync_common::{ErrorCode, ServiceError};
use codesync_proto::documents::v1 as pb;
use codesync_proto::rooms::v1 as rooms_pb;
use tokio::sync::oneshot;
use tonic::Status;

use crate::actor::Command;
use crate::{DocumentsGrpcService, forward};

/// How long the removal of one deleted file's document may take (it may be forwarded).
const PURGE_TIMEOUT: Duration = Duration::from_secs(30);

impl DocumentsGrpcService {
    /// Removes a deleted file's document (its live copy, log and snapshots), for a caller who
    /// could have deleted the file: the `DeleteDocument` call, and this service's own reaction to
    /// `file_deleted` and `room_deleted` (acting for whoever deleted them). "Not found" from an
    /// access check is not enough: a private room's live file is not found for outsiders too.
    pub(crate) async fn delete_document_of(
        &self,
        context: &CallContext,
        file_id: &str,
        forwarded: bool,
    ) -> Result<(), Status> {
        match self.check_file(context, file_id).await {
            Ok(_) => {
                return Err(ServiceError::FailedPrecondition {
                    code: ErrorCode::FileExists,
                    message: "delete the file through the rooms service first".into(),
                }
                .into());
            }
            Err(error) if error.is(ErrorCode::FileNotFound) => {}
            Err(error) => return Err(error.into()),
        }
        let check = context.request(rooms_pb::CheckDeletedFileRequest { file_id: file_id.to_string() });
        self.rooms
            .clone()
            .check_deleted_file(check)
            .await
            .map_err(|status| ServiceError::from_peer("rooms", status))?;
        // Where the document is open, its actor closes it and deletes it; elsewhere the rows go.
        if let Some(mailbox) = self.registry.mailbox_if_loaded(file_id) {
            let (reply, answer) = oneshot::channel();
            if mailbox.send(Command::Delete { reply }).await.is_ok() {
                answer.await.map_err(|_| ServiceError::Unavailable {
                    message: "the document was unloaded during deletion; try again".into(),
                })??;
                self.ownership.forget(file_id).await?;
                return Ok(());
            }
        }
        if !forwarded && let Some(owner) = self.ownership.live_owner_elsewhere(file_id).await? {
            let mut client = self.peers.client(&owner)?;
            let request = pb::DeleteDocumentRequest { file_id: file_id.to_string() };
            client.delete_document(forward::forwarded(context, request)).await?;
            return Ok(());
        }
        self.store.delete_document(file_id).await?;
        self.ownership.forget(file_id).await?;
        Ok(())
    }

    /// A room event that ends documents: a file deleted, or a room with its files. Each is
    /// removed as whoever deleted it, wherever it is open, whoever deleted it (REST or gRPC).
    pub(crate) async fn delete_documents_of_deleted(&self, event: &Event) -> Result<(), HandleError> {
        let (file_ids, by) = match &event.kind {
            Kind::FileDeleted(deleted) => (vec![deleted.file_id.clone()], &deleted.by),
            Kind::RoomDeleted(deleted) => (deleted.file_ids.clone(), &deleted.by),
            _ => return Ok(()),
        };
        if by.is_empty() {
            return Err(HandleError::poisoned(format!("a {} event without who deleted it", event.kind_name())));
        }
        for file_id in file_ids {
            let context = CallContext::acting_for(by).with_timeout(PURGE_TIMEOUT);
            match self.delete_document_of(&context, &file_id, false).await {
                Ok(()) => tracing::info!(file.id = %file_id, "removed a deleted file's document"),
                // Never a file here, or its room is gone with its rows: nothing to remove.
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    return Err(HandleError::poisoned(format!(
                        "the file {file_id} is not deleted: {}",
                        status.message()
                    )));
                }
                Err(status) => return Err(HandleError::transient(status.message())),
            }
        }
        Ok(())
    }
}
