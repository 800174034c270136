//! The limits clients meet, defined once: the services enforce them and the API document
//! states them.

/// Usernames: this many characters of ASCII letters, digits, `_`, `-` and `.`.
pub const USERNAME_MIN_CHARS: usize = 3;
pub const USERNAME_MAX_CHARS: usize = 32;
pub const EMAIL_MAX_CHARS: usize = 254;
/// The part of an email address before its `@`.
pub const EMAIL_LOCAL_MAX_CHARS: usize = 64;
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 1024;

pub const ROOM_NAME_MAX_CHARS: usize = 100;
pub const ROOM_DESCRIPTION_MAX_CHARS: usize = 2000;
/// File names: a file system's limit, in bytes of UTF-8.
pub const FILENAME_MAX_BYTES: usize = 255;
/// A file's path in its room (`src/app/main.py`): at most this many bytes of UTF-8, and at most
/// this many parts (folders and the file's own name).
pub const FILE_PATH_MAX_BYTES: usize = 1024;
pub const FILE_PATH_MAX_DEPTH: usize = 16;
/// A file's text, in bytes of UTF-8.
pub const FILE_MAX_BYTES: usize = 1024 * 1024;

/// Search across a room's files: the query in characters, and the matches one answer holds.
pub const SEARCH_QUERY_MAX_CHARS: usize = 500;
pub const SEARCH_DEFAULT_RESULTS: u32 = 200;
pub const SEARCH_MAX_RESULTS: u32 = 1000;

/// A project as a zip archive: the upload's size, its entries, what they expand to together,
/// and how far one entry may expand (a zip bomb expands thousands of times).
pub const ARCHIVE_MAX_BYTES: usize = 16 * 1024 * 1024;
pub const ARCHIVE_MAX_ENTRIES: usize = 1000;
pub const ARCHIVE_MAX_EXPANDED_BYTES: u64 = 64 * 1024 * 1024;
pub const ARCHIVE_MAX_RATIO: u64 = 100;
/// A rooms service message: an imported project's files (up to what an archive may expand to,
/// with their paths) travel in one, and so do a room's listings (tonic's default is 4 MiB).
pub const ROOMS_MESSAGE_MAX_BYTES: usize = ARCHIVE_MAX_EXPANDED_BYTES as usize + 8 * 1024 * 1024;

/// A saved version's message, trimmed.
pub const VERSION_MESSAGE_MAX_CHARS: usize = 500;

/// A run: at most this many files, together at most `RUN_SOURCE_MAX_BYTES`.
pub const RUN_MAX_FILES: usize = 100;
pub const RUN_SOURCE_MAX_BYTES: usize = 1024 * 1024;
pub const RUN_STDIN_MAX_BYTES: usize = 1024 * 1024;

pub const NOTICE_TITLE_MAX_CHARS: usize = 200;
pub const NOTICE_MESSAGE_MAX_CHARS: usize = 2000;
/// Notifications marked read in one request.
pub const MARK_READ_MAX_IDS: usize = 500;

pub const CHAT_MESSAGE_MAX_CHARS: usize = 2000;

/// The assistant's inputs: a prompt in characters, inline code in bytes.
pub const PROMPT_MAX_CHARS: usize = 16_000;
pub const ASSISTANT_CODE_MAX_BYTES: usize = 1024 * 1024;

/// The largest gRPC message a signed-in caller or a CodeSync process may send to an RPC (tonic's
/// default), unless its service declares more (a project import, a document's update) when it
/// is wired up (`grpc::admission::MessageLimits`).
pub const GRPC_MESSAGE_MAX_BYTES: usize = 4 * 1024 * 1024;
/// The largest gRPC message an anonymous caller may send to any RPC: signing up or in, and
/// reading public rooms, need no more. Checked from the message's prefix, before it is read.
pub const ANONYMOUS_GRPC_MESSAGE_MAX_BYTES: usize = 64 * 1024;
