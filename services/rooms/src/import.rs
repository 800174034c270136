//! Many files at once (an uploaded project): every file checked before anything is written.

use std::collections::{HashMap, HashSet};

use codesync_common::bus::Staged;
use codesync_common::events::Kind;
use codesync_common::grpc::CallContext;
use codesync_common::identity::Caller;
use codesync_common::paths::{self, PathKey};
use codesync_common::{ErrorCode, ServiceError, ServiceResult, new_id, now_ms};
use codesync_proto::rooms::v1 as pb;

use crate::store::{FileRecord, UniqueWrite};
use crate::{MAX_FILES_PER_ROOM, RoomsGrpcService, file_exists, language, validation};

pub const CREATED: &str = "created";
pub const REPLACED: &str = "replaced";
pub const REFUSED: &str = "refused";

/// What becomes of one file of an import.
enum Plan {
    Create(FileRecord),
    Replace { file_id: String, path: String, content: String },
}

fn refused(path: &str, error: &ServiceError) -> pb::ImportedFile {
    pb::ImportedFile {
        path: path.to_string(),
        outcome: REFUSED.into(),
        error_code: error.code().as_str().to_string(),
        message: error.to_string(),
        ..Default::default()
    }
}

fn new_file(room_id: &str, path: &str, content: String, caller: &Caller, now_ms: i64) -> FileRecord {
    FileRecord {
        id: new_id(),
        room_id: room_id.to_string(),
        language: language::language_for_filename(path).to_string(),
        filename: path.to_string(),
        size_bytes: i64::try_from(content.len()).unwrap_or(i64::MAX),
        content: Some(content),
        created_by: caller.user_id.clone(),
        updated_by: caller.user_id.clone(),
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    }
}

impl RoomsGrpcService {
    /// Creates an import's new files in one transaction, with their `file_created` events.
    async fn create_imported(&self, creates: &[FileRecord], caller: &Caller) -> ServiceResult<()> {
        if creates.is_empty() {
            return Ok(());
        }
        let events = creates
            .iter()
            .map(|file| {
                let mut created = Self::file_event(Kind::FileCreated, file, caller);
                if let Kind::FileCreated(change) = &mut created.kind {
                    change.language = file.language.clone();
                }
                created
            })
            .collect();
        let mut staged = Staged::new(self.events.as_ref(), events);
        if let UniqueWrite::Taken = self.store.insert_files(creates, &mut staged).await? {
            return Err(file_exists());
        }
        staged.committed().await;
        Ok(())
    }

    pub(crate) async fn import_files(
        &self,
        caller: Caller,
        context: &CallContext,
        request: pb::ImportFilesRequest,
    ) -> ServiceResult<pb::ImportFilesResponse> {
        let access = self.room_access(&request.room_id, Some(&caller)).await?;
        access.require_write()?;
        let room_id = access.room().id.clone();
        if request.files.is_empty() {
            return Err(ServiceError::invalid(ErrorCode::NoFiles, "name at least one file"));
        }
        if request.files.len() > MAX_FILES_PER_ROOM as usize {
            return Err(ServiceError::too_large(
                ErrorCode::TooManyFiles,
                format!("a room may hold at most {MAX_FILES_PER_ROOM} files"),
            ));
        }
        // The same bound as an uploaded archive's, for a direct caller who sends files as they are.
        use codesync_common::limits::ARCHIVE_MAX_EXPANDED_BYTES;
        if request.files.iter().map(|file| file.content.len() as u64).sum::<u64>() > ARCHIVE_MAX_EXPANDED_BYTES {
            return Err(ServiceError::too_large(
                ErrorCode::ArchiveTooLarge,
                format!("the files come to more than {} MiB", ARCHIVE_MAX_EXPANDED_BYTES / (1024 * 1024)),
            ));
        }
        let _turn = self.expensive_turn(Some(&caller), context).await?;
        let existing = self.store.list_files(&room_id).await?;
        let by_key: HashMap<PathKey, &FileRecord> =
            existing.iter().map(|file| (PathKey::of(&file.filename), file)).collect();
        let mut report = Vec::with_capacity(request.files.len());
        let mut plans = Vec::with_capacity(request.files.len());
        let mut seen = HashSet::new();
        let mut new_paths: Vec<String> = Vec::new();
        let now_ms = now_ms();
        for file in request.files {
            let checked = validation::filename(&file.path).and_then(|path| {
                validation::file_content(&file.content)?;
                Ok(path)
            });
            let path = match checked {
                Ok(path) => path,
                Err(error) => {
                    report.push(refused(&file.path, &error));
                    continue;
                }
            };
            let key = PathKey::of(&path);
            if !seen.insert(key.clone()) {
                let twice = ServiceError::already_exists(
                    ErrorCode::FileExists,
                    "the same path (or one differing only in case) comes twice",
                );
                report.push(refused(&path, &twice));
                continue;
            }
            match by_key.get(&key) {
                Some(current) if current.filename == path => {
                    report.push(pb::ImportedFile {
                        path: path.clone(),
                        outcome: REPLACED.into(),
                        file_id: current.id.clone(),
                        ..Default::default()
                    });
                    plans.push(Plan::Replace { file_id: current.id.clone(), path, content: file.content });
                }
                Some(current) => {
                    report.push(refused(&path, &paths::Clash::SameName(current.filename.clone()).into_service_error()));
                }
                None => {
                    let others =
                        existing.iter().map(|file| file.filename.as_str()).chain(new_paths.iter().map(String::as_str));
                    if let Some(clash) = paths::clash(&path, others) {
                        report.push(refused(&path, &clash.into_service_error()));
                        continue;
                    }
                    new_paths.push(path.clone());
                    let record = new_file(&room_id, &path, file.content, &caller, now_ms);
                    report.push(pb::ImportedFile {
                        path,
                        outcome: CREATED.into(),
                        file_id: record.id.clone(),
                        ..Default::default()
                    });
                    plans.push(Plan::Create(record));
                }
            }
        }
        if report.iter().any(|file| file.outcome == REFUSED) {
            return Ok(pb::ImportFilesResponse { files: report, written: false });
        }
        if existing.len() + new_paths.len() > MAX_FILES_PER_ROOM as usize {
            return Err(crate::too_many_files(existing.len(), new_paths.len()));
        }
        let (creates, replaces): (Vec<Plan>, Vec<Plan>) =
            plans.into_iter().partition(|plan| matches!(plan, Plan::Create(_)));
        let creates: Vec<FileRecord> = creates
            .into_iter()
            .filter_map(|plan| if let Plan::Create(file) = plan { Some(file) } else { None })
            .collect();
        self.create_imported(&creates, &caller).await?;
        // Replacing the live text is idempotent: a failure part-way is retried whole.
        for plan in replaces {
            let Plan::Replace { file_id, path, content } = plan else { continue };
            let update = pb::UpdateFileRequest { file_id, filename: None, content: Some(content.clone()) };
            match self.update_file(caller.clone(), context, update).await {
                Ok(_) => {}
                // Deleted since the import was checked: the project's file comes back at its
                // path, so that the answer stays "every file written", never a part of them.
                Err(error) if error.is(ErrorCode::FileNotFound) => {
                    let file = new_file(&room_id, &path, content, &caller, codesync_common::now_ms());
                    self.create_imported(std::slice::from_ref(&file), &caller).await?;
                    if let Some(entry) = report.iter_mut().find(|entry| entry.path == path) {
                        (entry.outcome, entry.file_id) = (CREATED.into(), file.id);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        tracing::info!(room.id = %room_id, created = creates.len(), files = report.len(), "imported files");
        Ok(pb::ImportFilesResponse { files: report, written: true })
    }
}
