//! The rules for room names, descriptions, file names and file contents.

use codesync_common::ErrorCode;
use codesync_common::ServiceError;
use codesync_common::validate::{multi_line, single_line};

use crate::MAX_FILE_BYTES;

pub use codesync_common::limits::{ROOM_DESCRIPTION_MAX_CHARS, ROOM_NAME_MAX_CHARS};

pub fn room_name(value: &str) -> Result<String, ServiceError> {
    single_line("the room name", value, ROOM_NAME_MAX_CHARS, ErrorCode::InvalidRoomName)
}

pub fn room_description(value: &str) -> Result<String, ServiceError> {
    multi_line("the description", value, ROOM_DESCRIPTION_MAX_CHARS, ErrorCode::InvalidDescription)
}

/// A file's path in its room (`src/app/main.py`), in its normal form: the rules of
/// [`codesync_common::paths`].
pub fn filename(value: &str) -> Result<String, ServiceError> {
    Ok(codesync_common::paths::normalise(value)?)
}

pub fn file_content(value: &str) -> Result<(), ServiceError> {
    if value.len() > MAX_FILE_BYTES {
        return Err(ServiceError::too_large(
            ErrorCode::FileTooLarge,
            format!("a file may hold at most {MAX_FILE_BYTES} bytes"),
        ));
    }
    if value.contains('\u{0}') {
        return Err(ServiceError::invalid(ErrorCode::InvalidContent, "a file's text must not contain NUL characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames() {
        for good in [
            "main.py",
            "Makefile",
            ".env",
            "données été.txt",
            "日本語.md",
            "a b.c",
            "x".repeat(255).as_str(),
            "src/app/main.py",
        ] {
            assert!(filename(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "/a/b.py",
            "a//b.py",
            "..\\x",
            "../etc/passwd",
            "a\nb",
            "a\u{0}b",
            "a\tb",
            " lead",
            "trail ",
            "evil\u{202E}yp.exe",
            "con:1",
            "x".repeat(256).as_str(),
            "é".repeat(200).as_str(),
        ] {
            assert_eq!(filename(bad).unwrap_err().code(), ErrorCode::InvalidFilename, "{bad:?}");
        }
    }

    #[test]
    fn room_names_and_contents() {
        assert!(room_name("Team ✨").is_ok());
        assert!(room_name(&"x".repeat(10_000)).is_err());
        assert!(room_description("").is_ok());
        assert_eq!(file_content(&"x".repeat(MAX_FILE_BYTES + 1)).unwrap_err().code(), ErrorCode::FileTooLarge);
        assert!(file_content("print('hi')\n").is_ok());
    }
}
