//! Folders: implicit in the files' paths, moved or deleted with everything in them.

use codesync_common::bus::Staged;
use codesync_common::events::Kind;
use codesync_common::identity::Caller;
use codesync_common::paths;
use codesync_common::{ErrorCode, ServiceError, ServiceResult, now_ms};
use codesync_proto::rooms::v1 as pb;

use crate::messages::file_message;
use crate::store::{FileRecord, Rename, UniqueWrite};
use crate::{RoomsGrpcService, file_exists, language, validation};

impl RoomsGrpcService {
    /// The files in the folder `path` of a room the caller may change.
    async fn folder_files(
        &self,
        caller: &Caller,
        room_id: &str,
        path: &str,
    ) -> ServiceResult<(String, Vec<FileRecord>)> {
        let access = self.room_access(room_id, Some(caller)).await?;
        access.require_write()?;
        let folder = validation::filename(path)?;
        let files: Vec<FileRecord> = self
            .store
            .list_files(&access.room().id)
            .await?
            .into_iter()
            .filter(|file| paths::is_inside(&file.filename, &folder))
            .collect();
        if files.is_empty() {
            return Err(ServiceError::not_found(
                ErrorCode::FileNotFound,
                format!("no file lies in the folder {folder:?}"),
            ));
        }
        Ok((folder, files))
    }

    pub(crate) async fn move_folder(
        &self,
        caller: Caller,
        request: pb::MoveFolderRequest,
    ) -> ServiceResult<pb::MoveFolderResponse> {
        let (from, files) = self.folder_files(&caller, &request.room_id, &request.from).await?;
        let to = validation::filename(&request.to)?;
        if to == from {
            return Ok(pb::MoveFolderResponse { files: files.into_iter().map(file_message).collect() });
        }
        if paths::is_inside(&to, &from) {
            return Err(ServiceError::invalid(ErrorCode::InvalidFilename, "a folder cannot move into itself"));
        }
        let mut renames = Vec::with_capacity(files.len());
        for file in &files {
            let moved = validation::filename(&format!("{to}{}", &file.filename[from.len()..]))?;
            let language = language::language_for_filename(&moved).to_string();
            renames.push(Rename { file_id: file.id.clone(), from: file.filename.clone(), to: moved, language });
        }
        let events = files
            .iter()
            .zip(&renames)
            .map(|(file, rename)| {
                let mut renamed = Self::file_event(Kind::FileRenamed, file, &caller);
                if let Kind::FileRenamed(change) = &mut renamed.kind {
                    change.old_filename = std::mem::replace(&mut change.filename, rename.to.clone());
                }
                renamed
            })
            .collect();
        let room_id = files[0].room_id.clone();
        let now_ms = now_ms();
        let mut staged = Staged::new(self.events.as_ref(), events);
        if let UniqueWrite::Taken =
            self.store.rename_files(&room_id, &renames, &caller.user_id, now_ms, &mut staged).await?
        {
            return Err(file_exists());
        }
        staged.committed().await;
        tracing::info!(room.id = %room_id, files = renames.len(), "moved a folder");
        let moved = files
            .into_iter()
            .zip(renames)
            .map(|(mut file, rename)| {
                file.filename = rename.to;
                file.language = rename.language;
                file.updated_by = caller.user_id.clone();
                file.updated_at_ms = now_ms;
                file_message(file)
            })
            .collect();
        Ok(pb::MoveFolderResponse { files: moved })
    }

    /// Each file as DeleteFile deletes it (its own record and `file_deleted`), one after the
    /// other: a failure part-way leaves the rest in place, and a retry finishes the job.
    pub(crate) async fn delete_folder(
        &self,
        caller: Caller,
        request: pb::DeleteFolderRequest,
    ) -> ServiceResult<pb::DeleteFolderResponse> {
        let (_, files) = self.folder_files(&caller, &request.room_id, &request.path).await?;
        let mut deleted_file_ids = Vec::with_capacity(files.len());
        for file in files {
            let mut staged = self.staged(Self::file_event(Kind::FileDeleted, &file, &caller));
            self.store.delete_file(&file, &caller.user_id, now_ms(), &mut staged).await?;
            staged.committed().await;
            deleted_file_ids.push(file.id);
        }
        tracing::info!(room.id = %request.room_id, files = deleted_file_ids.len(), "deleted a folder");
        Ok(pb::DeleteFolderResponse { deleted_file_ids })
    }
}
