//! `/api/rooms/{room_id}/archive`: a room's project in and out as a zip archive.
//!
//! The zip format is the gateway's business; what goes into the room is the rooms service's
//! `ImportFiles`, which checks every path and size again for any caller. An archive is read
//! whole before anything is written: one hostile entry (a path that climbs out, an absolute path,
//! a symlink, a zip bomb, a binary file) refuses the upload, with a report of every entry.

use std::io::{Cursor, Read, Write};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use codesync_common::ErrorCode;
use codesync_common::limits::{
    ARCHIVE_MAX_BYTES, ARCHIVE_MAX_ENTRIES, ARCHIVE_MAX_EXPANDED_BYTES, ARCHIVE_MAX_RATIO, FILE_MAX_BYTES,
};
use codesync_common::paths;
use codesync_proto::documents::v1::GetDocumentRequest;
use codesync_proto::rooms::v1 as pb;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, MaybeSignedIn, SignedIn};

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new().routes(routes!(download, upload))
}

/// Documents fetched at once for a download.
const FETCH_CONCURRENCY: usize = 4;
/// An entry smaller than this is not judged by its compression ratio.
const RATIO_FLOOR_BYTES: u64 = 64 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveEntryBody {
    /// The entry's name in the archive, or its path in the room once normalised.
    pub path: String,
    /// `created`, `replaced`, `skipped` (folders, macOS metadata), `accepted` (checked, not
    /// written because another entry was refused) or `refused`.
    pub outcome: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file_id: String,
    /// Why it was refused: `invalid_filename`, `symlink`, `binary_file`, `file_too_large`,
    /// `suspicious_compression`, `file_exists`, `path_conflict`, `invalid_archive`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error_code: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveReportBody {
    /// Whether the files were written (all of them) or not (none).
    pub written: bool,
    pub files: Vec<ArchiveEntryBody>,
}

/// One entry of an uploaded archive, once read.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    File { path: String, content: String },
    Skipped { name: String },
    Refused { name: String, code: ErrorCode, message: String },
}

/// Why a whole archive was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ArchiveError {
    NotAZip(String),
    TooManyEntries(usize),
    ExpandsTooFar,
    /// Expands more than [`ARCHIVE_MAX_RATIO`] times its own size, in entries each small enough.
    CompressesTooWell,
}

impl From<ArchiveError> for ApiError {
    fn from(error: ArchiveError) -> Self {
        match error {
            ArchiveError::NotAZip(reason) => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidArchive,
                format!("the body is not a zip archive that can be read: {reason}"),
            ),
            ArchiveError::TooManyEntries(count) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooManyFiles,
                format!("the archive holds {count} entries; at most {ARCHIVE_MAX_ENTRIES}"),
            ),
            ArchiveError::ExpandsTooFar => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::ArchiveTooLarge,
                format!("the archive's files come to more than {} MiB", ARCHIVE_MAX_EXPANDED_BYTES / (1024 * 1024)),
            ),
            ArchiveError::CompressesTooWell => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::SuspiciousCompression,
                format!(
                    "the archive expands more than {ARCHIVE_MAX_RATIO} times its size; refused as a possible zip bomb"
                ),
            ),
        }
    }
}

fn refused(name: &str, code: ErrorCode, message: impl Into<String>) -> Entry {
    Entry::Refused { name: name.to_string(), code, message: message.into() }
}

/// Reads every entry of a zip archive, judging each; nothing is trusted that the archive says of
/// itself (sizes are enforced while reading, not taken from the headers).
pub fn read_archive(bytes: &[u8]) -> Result<Vec<Entry>, ArchiveError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|error| ArchiveError::NotAZip(error.to_string()))?;
    if archive.len() > ARCHIVE_MAX_ENTRIES {
        return Err(ArchiveError::TooManyEntries(archive.len()));
    }
    if listed_entries(bytes).is_some_and(|listed| listed != archive.len() as u64) {
        return Err(ArchiveError::NotAZip("it lists an entry's name more than once".into()));
    }
    let mut entries = Vec::with_capacity(archive.len());
    let mut expanded = 0_u64;
    for index in 0..archive.len() {
        let listed_name = archive.name_for_index(index).unwrap_or_default().to_string();
        let mut file = match archive.by_index(index) {
            Ok(file) => file,
            Err(error) => {
                let name = listed_name;
                entries.push(refused(&name, ErrorCode::InvalidArchive, format!("the entry cannot be read: {error}")));
                continue;
            }
        };
        let name = file.name().to_string();
        // Flagged UTF-8 but not: a name that would be stored other than it was sent.
        if name.contains('\u{FFFD}') && std::str::from_utf8(file.name_raw()).is_err() {
            entries.push(refused(&name, ErrorCode::InvalidFilename, "the entry's name is not valid UTF-8"));
            continue;
        }
        if file.is_symlink() {
            entries.push(refused(
                &name,
                ErrorCode::Symlink,
                "symbolic links are not files; the archive may hold files only",
            ));
            continue;
        }
        let trimmed = if file.is_dir() { name.trim_end_matches('/') } else { name.as_str() };
        let path = match paths::normalise(trimmed) {
            Ok(path) => path,
            Err(reason) => {
                entries.push(refused(&name, ErrorCode::InvalidFilename, reason.to_string()));
                continue;
            }
        };
        if file.is_dir() || path.starts_with("__MACOSX/") || paths::base_name(&path) == ".DS_Store" {
            entries.push(Entry::Skipped { name });
            continue;
        }
        let declared = file.size();
        if declared > FILE_MAX_BYTES as u64 {
            let message = format!("the file expands to {declared} bytes; a file may hold at most {FILE_MAX_BYTES}");
            entries.push(refused(&name, ErrorCode::FileTooLarge, message));
            continue;
        }
        // What the entry says it compresses to, at most the archive itself: the ratio below is of
        // the bytes actually read, which a lying header cannot shrink.
        let compressed = file.compressed_size().clamp(1, bytes.len() as u64);
        let mut content = Vec::new();
        let read = (&mut file).take(FILE_MAX_BYTES as u64 + 1).read_to_end(&mut content);
        if let Err(error) = read {
            entries.push(refused(&name, ErrorCode::InvalidArchive, format!("the entry cannot be read: {error}")));
            continue;
        }
        if content.len() > FILE_MAX_BYTES {
            entries.push(refused(
                &name,
                ErrorCode::FileTooLarge,
                format!("a file may hold at most {FILE_MAX_BYTES} bytes"),
            ));
            continue;
        }
        let size = content.len() as u64;
        if size > RATIO_FLOOR_BYTES && size / compressed > ARCHIVE_MAX_RATIO {
            let message =
                format!("the file expands more than {ARCHIVE_MAX_RATIO} times; refused as a possible zip bomb");
            entries.push(refused(&name, ErrorCode::SuspiciousCompression, message));
            continue;
        }
        expanded += size;
        // The whole archive too: many entries each under the floor still expand at most so far.
        if expanded > ARCHIVE_MAX_EXPANDED_BYTES {
            return Err(ArchiveError::ExpandsTooFar);
        }
        if expanded > (bytes.len() as u64 * ARCHIVE_MAX_RATIO).max(FILE_MAX_BYTES as u64) {
            return Err(ArchiveError::CompressesTooWell);
        }
        match String::from_utf8(content) {
            Ok(text) if !text.contains('\0') => entries.push(Entry::File { path, content: text }),
            _ => entries.push(refused(
                &name,
                ErrorCode::BinaryFile,
                "a binary file (not UTF-8 text); rooms hold text files",
            )),
        }
    }
    Ok(entries)
}

/// How many entries the archive's end record says its central directory lists, where it can be
/// read. The zip reader keys entries by name: a name listed twice comes out once, the last copy
/// winning, and the report would not show the other.
fn listed_entries(bytes: &[u8]) -> Option<u64> {
    const END: &[u8] = b"PK\x05\x06";
    let search_from = bytes.len().saturating_sub(22 + usize::from(u16::MAX));
    let at = search_from + bytes[search_from..].windows(4).rposition(|window| window == END)?;
    let total = u16::from_le_bytes(bytes.get(at + 10..at + 12)?.try_into().ok()?);
    if total != u16::MAX {
        return Some(u64::from(total));
    }
    // Zip64: the locator just before the end record says where the zip64 end record is.
    let locator = at.checked_sub(20)?;
    if bytes.get(locator..locator + 4)? != b"PK\x06\x07" {
        return None;
    }
    let record = usize::try_from(u64::from_le_bytes(bytes.get(locator + 8..locator + 16)?.try_into().ok()?)).ok()?;
    if bytes.get(record..record.checked_add(4)?)? != b"PK\x06\x06" {
        return None;
    }
    Some(u64::from_le_bytes(bytes.get(record.checked_add(32)?..record.checked_add(40)?)?.try_into().ok()?))
}

/// A zip archive of `files` (path, text), deflated.
pub fn write_archive(files: &[(String, String)]) -> Result<Vec<u8>, zip::result::ZipError> {
    let mut archive = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (path, text) in files {
        archive.start_file(path.as_str(), options)?;
        archive.write_all(text.as_bytes())?;
    }
    Ok(archive.finish()?.into_inner())
}

/// A file name for the download, from the room's name: letters, digits, `-`, `_` and `.`.
fn download_name(room_name: &str) -> String {
    let name: String = room_name
        .chars()
        .map(|character| if character.is_ascii_alphanumeric() || "-_.".contains(character) { character } else { '-' })
        .collect();
    let name = name.trim_matches(|character| character == '-' || character == '.');
    if name.is_empty() { "project.zip".to_string() } else { format!("{name}.zip") }
}

/// The room's files as a zip archive, each with its live text (whoever may read the room).
#[utoipa::path(get, path = "/api/rooms/{room_id}/archive", tag = "files", security((), ("bearer" = [])), responses(
    (status = 200, description = "a zip archive of the room's files at their paths", content_type = "application/zip", body = Vec<u8>),
    (status = 404, description = "no such room, or a private room of others", body = ErrorBody),
    (status = 413, description = "the files come to more than 64 MiB (`archive_too_large`)", body = ErrorBody),
))]
async fn download(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiPath(room_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let room = state
        .clients
        .rooms()
        .get_room(visitor.context.request(pb::GetRoomRequest { room_id: room_id.clone() }))
        .await?
        .into_inner();
    let caller = visitor.caller.as_ref().map(|caller| caller.user_id.as_str());
    let key = codesync_common::budget::caller_key(caller, visitor.context.client_ip);
    let _turn = state
        .archives
        .take_waiting(&key, codesync_common::budget::EXPENSIVE_WAIT)
        .await
        .map_err(|refusal| ApiError::from(codesync_common::ServiceError::from(refusal)))?;
    let listed = state.clients.rooms().list_files(visitor.context.request(pb::ListFilesRequest { room_id })).await?;
    let documents = state.clients.documents();
    let context = &visitor.context;
    let texts: Vec<(String, Result<String, tonic::Status>)> = futures::stream::iter(listed.into_inner().files)
        .map(|file| {
            let mut documents = documents.clone();
            let request = context.request(GetDocumentRequest { file_id: file.id, include_state: false });
            async move { (file.filename, documents.get_document(request).await.map(|answer| answer.into_inner().text)) }
        })
        .buffered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut files = Vec::with_capacity(texts.len());
    let mut total = 0_u64;
    for (path, text) in texts {
        let text = match text {
            Ok(text) => text,
            // Deleted since it was listed.
            Err(status) if status.code() == tonic::Code::NotFound => continue,
            Err(status) => return Err(codesync_common::ServiceError::from_peer("documents", status).into()),
        };
        total += text.len() as u64;
        if total > ARCHIVE_MAX_EXPANDED_BYTES {
            return Err(ArchiveError::ExpandsTooFar.into());
        }
        files.push((path, text));
    }
    let archive = codesync_common::budget::off_the_workers("an archive", move || write_archive(&files))
        .await?
        .map_err(codesync_common::ServiceError::internal)?;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    let disposition = format!("attachment; filename=\"{}\"", download_name(&room.name));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok((headers, archive).into_response())
}

fn entry_body(entry: &Entry) -> ArchiveEntryBody {
    let (path, outcome, error_code, message) = match entry {
        Entry::File { path, .. } => (path.clone(), "accepted", String::new(), String::new()),
        Entry::Skipped { name } => (name.clone(), "skipped", String::new(), String::new()),
        Entry::Refused { name, code, message } => (name.clone(), "refused", code.as_str().to_string(), message.clone()),
    };
    ArchiveEntryBody { path, outcome: outcome.to_string(), file_id: String::new(), error_code, message }
}

fn report_refused(files: Vec<ArchiveEntryBody>) -> Response {
    let refused = files.iter().filter(|file| file.outcome == "refused").count();
    let body = serde_json::json!({
        "error": {
            "code": ErrorCode::ArchiveRefused,
            "message": format!("{refused} of the archive's entries were refused; nothing was written"),
        },
        "written": false,
        "files": files,
    });
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

/// Uploads a zip archive into the room (owner and editors): its files are created, or replace
/// the files at the same paths. Either every file is written or none is.
#[utoipa::path(post, path = "/api/rooms/{room_id}/archive", tag = "files", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/zip", description = "a zip archive of at most 16 MiB, at most 1000 entries of UTF-8 text files of at most 1 MiB each, 64 MiB in all"),
    responses(
    (status = 200, description = "every file written", body = ArchiveReportBody),
    (status = 400, description = "not a zip archive (`invalid_archive`)", body = ErrorBody),
    (status = 403, description = "a viewer or a non-member", body = ErrorBody),
    (status = 404, description = "no such room", body = ErrorBody),
    (status = 409, description = "the room would hold more than 1000 files (`too_many_files`)", body = ErrorBody),
    (status = 413, description = "over 16 MiB, over 1000 entries, expanding past 64 MiB or more than 100 times its size (`suspicious_compression`)", body = ErrorBody),
    (status = 415, description = "not `application/zip`", body = ErrorBody),
    (status = 422, description = "some entries refused, nothing written (`archive_refused`; `files` says why for each)", body = ArchiveReportBody),
))]
async fn upload(
    State(state): State<GatewayState>,
    user: SignedIn,
    ApiPath(room_id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !matches!(media_type.as_str(), "application/zip" | "application/x-zip-compressed" | "application/octet-stream") {
        let refused = ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the archive as application/zip",
        );
        return Ok(crate::body_limit::refuse_unread(body, refused.into_response()).await);
    }
    // Who may import is settled before the archive is read, let alone expanded: ImportFiles
    // checks the caller before it looks at the files, so asked with none it answers the
    // caller's refusal (the same as with files), or `no_files` for one who may.
    let probe = state
        .clients
        .rooms()
        .import_files(user.context.request(pb::ImportFilesRequest { room_id: room_id.clone(), files: Vec::new() }))
        .await;
    if let Err(status) = probe {
        let error = codesync_common::ServiceError::from_peer("rooms", status);
        if !error.is(ErrorCode::NoFiles) {
            return Ok(crate::body_limit::refuse_unread(body, ApiError::from(error).into_response()).await);
        }
    }
    // One archive at a time per user (or so many), read and expanded on a pool of its own.
    let key = codesync_common::budget::caller_key(Some(&user.session.caller.user_id), user.context.client_ip);
    let _turn = match state.archives.take_waiting(&key, codesync_common::budget::EXPENSIVE_WAIT).await {
        Ok(turn) => turn,
        Err(refusal) => {
            let refused = ApiError::from(codesync_common::ServiceError::from(refusal)).into_response();
            return Ok(crate::body_limit::refuse_unread(body, refused).await);
        }
    };
    let bytes = body
        .into_data_stream()
        .map_err(|_| ())
        .try_fold(Vec::new(), |mut bytes, chunk| async move {
            if bytes.len() + chunk.len() > ARCHIVE_MAX_BYTES {
                return Err(());
            }
            bytes.extend_from_slice(&chunk);
            Ok(bytes)
        })
        .await
        .map_err(|()| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("an archive may be at most {} MiB", ARCHIVE_MAX_BYTES / (1024 * 1024)),
            )
        })?;
    // What the archive may expand to is held until it is imported: reserved in the in-flight
    // budget, in the user's share, before it is expanded (the most the expansion rules allow:
    // 100 times the archive, at least 1 MiB, at most 64 MiB).
    let expanded = codesync_common::budget::Holder::User(user.session.caller.user_id.clone());
    let expands_to =
        (bytes.len() as u64).saturating_mul(ARCHIVE_MAX_RATIO).clamp(1024 * 1024, ARCHIVE_MAX_EXPANDED_BYTES);
    let _expanded = state
        .inflight
        .try_reserve(&expanded, usize::try_from(expands_to).unwrap_or(usize::MAX))
        .map_err(|refusal| ApiError::from(codesync_common::ServiceError::from(refusal)))?;
    let entries = codesync_common::budget::off_the_workers("an archive", move || read_archive(&bytes)).await??;
    if entries.iter().any(|entry| matches!(entry, Entry::Refused { .. })) {
        return Ok(report_refused(entries.iter().map(entry_body).collect()));
    }
    let skipped: Vec<ArchiveEntryBody> =
        entries.iter().filter(|entry| matches!(entry, Entry::Skipped { .. })).map(entry_body).collect();
    let files: Vec<pb::SourceFile> = entries
        .into_iter()
        .filter_map(|entry| match entry {
            Entry::File { path, content } => Some(pb::SourceFile { path, content }),
            _ => None,
        })
        .collect();
    if files.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::NoFiles, "the archive holds no files"));
    }
    let imported = state
        .clients
        .rooms()
        .import_files(user.context.request(pb::ImportFilesRequest { room_id, files }))
        .await?
        .into_inner();
    let mut report: Vec<ArchiveEntryBody> = imported
        .files
        .into_iter()
        .map(|file| ArchiveEntryBody {
            path: file.path,
            outcome: if imported.written || file.outcome == "refused" { file.outcome } else { "accepted".into() },
            file_id: if imported.written { file.file_id } else { String::new() },
            error_code: file.error_code,
            message: file.message,
        })
        .collect();
    report.extend(skipped);
    if !imported.written {
        return Ok(report_refused(report));
    }
    Ok(axum::Json(ArchiveReportBody { written: true, files: report }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut archive = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, content) in entries {
            archive.start_file(*name, options).unwrap();
            archive.write_all(content).unwrap();
        }
        archive.finish().unwrap().into_inner()
    }

    fn refusal(entries: &[Entry]) -> Vec<(&str, ErrorCode)> {
        entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Refused { name, code, .. } => Some((name.as_str(), *code)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_project_goes_out_and_comes_back_the_same() {
        let files = vec![
            ("src/app/__init__.py".to_string(), String::new()),
            ("src/app/main.py".to_string(), "print('héllo')\n".to_string()),
            ("README.md".to_string(), "# x\n".repeat(1000)),
        ];
        let entries = read_archive(&write_archive(&files).unwrap()).unwrap();
        let back: Vec<(String, String)> = entries
            .into_iter()
            .map(|entry| match entry {
                Entry::File { path, content } => (path, content),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(back, files);
    }

    #[test]
    fn hostile_entries_are_refused_each_with_its_reason() {
        let archive = zip_of(&[
            ("ok.py", b"x = 1\n"),
            ("../escape.py", b"x"),
            ("src/../../escape.py", b"x"),
            ("/etc/passwd", b"x"),
            ("a\\b.py", b"x"),
            ("image.png", b"\x89PNG\r\n\x1a\n\0\0\0"),
            ("nul.txt", b"a\0b"),
        ]);
        let entries = read_archive(&archive).unwrap();
        assert_eq!(
            refusal(&entries),
            [
                ("../escape.py", ErrorCode::InvalidFilename),
                ("src/../../escape.py", ErrorCode::InvalidFilename),
                ("/etc/passwd", ErrorCode::InvalidFilename),
                ("a\\b.py", ErrorCode::InvalidFilename),
                ("image.png", ErrorCode::BinaryFile),
                ("nul.txt", ErrorCode::BinaryFile),
            ]
        );
        assert_eq!(entries[0], Entry::File { path: "ok.py".into(), content: "x = 1\n".into() });
    }

    #[test]
    fn symlinks_are_refused() {
        let mut archive = zip::ZipWriter::new(Cursor::new(Vec::new()));
        archive.add_symlink("link", "/etc/passwd", zip::write::SimpleFileOptions::default()).unwrap();
        let bytes = archive.finish().unwrap().into_inner();
        assert_eq!(refusal(&read_archive(&bytes).unwrap()), [("link", ErrorCode::Symlink)]);
    }

    #[test]
    fn zip_bombs_and_floods_are_refused_before_they_expand() {
        let zeros = vec![b'0'; 50 * 1024 * 1024];
        let bomb = zip_of(&[("bomb.txt", &zeros)]);
        assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
        assert_eq!(refusal(&read_archive(&bomb).unwrap()), [("bomb.txt", ErrorCode::FileTooLarge)]);
        let dense = vec![b'a'; 512 * 1024];
        assert_eq!(
            refusal(&read_archive(&zip_of(&[("dense.txt", &dense)])).unwrap()),
            [("dense.txt", ErrorCode::SuspiciousCompression)]
        );
        // Headers that claim 100 bytes do not change what is read.
        let mut lying = zip_of(&[("dense.txt", &dense)]);
        for (signature, at) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
            let header = lying.windows(4).position(|window| window == signature).unwrap();
            lying[header + at..header + at + 4].copy_from_slice(&100_u32.to_le_bytes());
        }
        assert_eq!(refusal(&read_archive(&lying).unwrap()), [("dense.txt", ErrorCode::SuspiciousCompression)]);
        // Entries each under the floor still may not expand the archive more than the ratio.
        let small = vec![b'a'; 60 * 1024];
        let names: Vec<String> = (0..40).map(|index| format!("s{index}.txt")).collect();
        let many: Vec<(&str, &[u8])> = names.iter().map(|name| (name.as_str(), small.as_slice())).collect();
        assert_eq!(read_archive(&zip_of(&many)), Err(ArchiveError::CompressesTooWell));
        let names: Vec<String> = (0..ARCHIVE_MAX_ENTRIES + 1).map(|index| format!("f{index}.txt")).collect();
        let flood: Vec<(&str, &[u8])> = names.iter().map(|name| (name.as_str(), b"x".as_slice())).collect();
        assert_eq!(read_archive(&zip_of(&flood)), Err(ArchiveError::TooManyEntries(ARCHIVE_MAX_ENTRIES + 1)));
        assert!(matches!(read_archive(b"not a zip"), Err(ArchiveError::NotAZip(_))));
        // A name listed twice (forged: the writer refuses it) is not merged into one.
        let mut twice = zip_of(&[("d.txt", b"one"), ("e.txt", b"two")]);
        let mut at = 0;
        while let Some(found) = twice[at..].windows(5).position(|window| window == b"e.txt") {
            twice[at + found..at + found + 5].copy_from_slice(b"d.txt");
            at += found + 5;
        }
        assert!(
            matches!(read_archive(&twice), Err(ArchiveError::NotAZip(reason)) if reason.contains("more than once"))
        );
        assert_eq!(listed_entries(&zip_of(&[("a", b"1"), ("b", b"2"), ("c", b"3")])), Some(3));
    }

    #[test]
    fn folders_and_macos_metadata_are_skipped() {
        let mut archive = zip::ZipWriter::new(Cursor::new(Vec::new()));
        archive.add_directory("src/", zip::write::SimpleFileOptions::default()).unwrap();
        archive.start_file("src/a.py", zip::write::SimpleFileOptions::default()).unwrap();
        archive.write_all(b"a").unwrap();
        archive.start_file("__MACOSX/src/._a.py", zip::write::SimpleFileOptions::default()).unwrap();
        archive.write_all(b"\0\x05\x16\x07").unwrap();
        let entries = read_archive(&archive.finish().unwrap().into_inner()).unwrap();
        assert_eq!(
            entries,
            [
                Entry::Skipped { name: "src/".into() },
                Entry::File { path: "src/a.py".into(), content: "a".into() },
                Entry::Skipped { name: "__MACOSX/src/._a.py".into() },
            ]
        );
    }

    #[test]
    fn download_names_are_safe() {
        assert_eq!(download_name("My Project ✨"), "My-Project.zip");
        assert_eq!(download_name("../.."), "project.zip");
        assert_eq!(download_name("a\"b"), "a-b.zip");
    }
}
