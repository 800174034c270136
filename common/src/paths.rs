//! A room file's path (`src/app/main.py`): the one rule that the rooms service enforces, an
//! uploaded archive is checked against, and a run lays its files out by.
//!
//! A path is relative, `/`-separated, in Unicode NFC (so that a name typed on macOS, which
//! decomposes accents, and one typed elsewhere are the same file). Each segment is a file name as
//! file systems accept it everywhere. Paths are case-sensitive, but two paths of one room may not
//! differ only in case ([`PathKey`]): the project must unpack on a case-insensitive disk too.
//! For the same reason no part may end with a dot (Windows drops it), and, so that two names
//! that look the same are the same, no path may hold an invisible character. Windows' device
//! names (`CON`, `nul.txt`) are allowed: they are ordinary names everywhere else.
//! Folders are implicit: a folder exists while a file lies under it, and a path cannot be both a
//! file and a folder.

use unicode_normalization::UnicodeNormalization;

use crate::error::{ErrorCode, ServiceError};
use crate::limits::{FILE_PATH_MAX_BYTES, FILE_PATH_MAX_DEPTH, FILENAME_MAX_BYTES};
use crate::validate::has_forbidden_characters;

/// Characters that some file system refuses in a name (Windows' list without the separators).
const RESERVED: [char; 7] = ['<', '>', ':', '"', '|', '?', '*'];

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the file name must not be empty")]
    Empty,
    #[error("the path must be at most {FILE_PATH_MAX_BYTES} bytes long")]
    TooLong,
    #[error("the path may have at most {FILE_PATH_MAX_DEPTH} parts (folders and the file)")]
    TooDeep,
    #[error("the path must be relative: it must not start with '/'")]
    Absolute,
    #[error("the path must not contain '\\'; folders are separated by '/'")]
    Backslash,
    #[error("the path must not have an empty part ('//' or a '/' at either end)")]
    EmptySegment,
    #[error("the path must not have a '.' or '..' part")]
    DotSegment,
    #[error("each part of the path must be at most {FILENAME_MAX_BYTES} bytes long")]
    SegmentTooLong,
    #[error("the file name must not contain any of < > : \" | ? *")]
    Reserved,
    #[error("the file name must not contain control characters")]
    Control,
    #[error("no part of the path may start or end with a space")]
    Space,
    #[error("no part of the path may end with a '.'")]
    TrailingDot,
    #[error("the path must not contain invisible characters (zero-width spaces and joiners, direction marks, fillers)")]
    Invisible,
}

/// Characters that show nothing, or as a blank: a name holding one looks like another name. The
/// Basic Multilingual Plane's only, so that the API document's pattern ([`INVISIBLE_CLASS`]) says
/// exactly the same (a pattern without Unicode mode cannot name the tags, U+E0000 on).
fn is_invisible(character: char) -> bool {
    matches!(character,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}')
}

/// [`is_invisible`] as the body of a character class.
const INVISIBLE_CLASS: &str = r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8";

impl PathError {
    pub fn into_service_error(self) -> ServiceError {
        ServiceError::invalid(ErrorCode::InvalidFilename, self.to_string())
    }
}

impl From<PathError> for ServiceError {
    fn from(error: PathError) -> Self {
        error.into_service_error()
    }
}

/// The normal form of `value` as a room file's path, or why it is not one.
pub fn normalise(value: &str) -> Result<String, PathError> {
    if value.is_empty() {
        return Err(PathError::Empty);
    }
    let path: String = value.nfc().collect();
    if path.len() > FILE_PATH_MAX_BYTES {
        return Err(PathError::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    if has_forbidden_characters(&path) {
        return Err(PathError::Control);
    }
    if path.contains(RESERVED) {
        return Err(PathError::Reserved);
    }
    if path.chars().any(is_invisible) {
        return Err(PathError::Invisible);
    }
    let mut depth = 0;
    for segment in path.split('/') {
        depth += 1;
        if segment.is_empty() {
            return Err(PathError::EmptySegment);
        }
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        if segment.len() > FILENAME_MAX_BYTES {
            return Err(PathError::SegmentTooLong);
        }
        if segment.trim() != segment {
            return Err(PathError::Space);
        }
        if segment.ends_with('.') {
            return Err(PathError::TrailingDot);
        }
    }
    if depth > FILE_PATH_MAX_DEPTH {
        return Err(PathError::TooDeep);
    }
    Ok(path)
}

/// The last part of a path: the file's own name.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The folders a path lies in, outermost first: `a/b/c.py` is in `a` and `a/b`.
pub fn folders(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(index, _)| &path[..index])
}

/// Whether `path` lies in `folder` (at any depth).
pub fn is_inside(path: &str, folder: &str) -> bool {
    path.len() > folder.len() && path.starts_with(folder) && path.as_bytes()[folder.len()] == b'/'
}

/// A path as the room's uniqueness sees it: paths with equal keys may not both exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathKey(String);

impl PathKey {
    /// Upper case, then lower: close to Unicode case folding, which `to_lowercase` alone is not
    /// (`ſ` and `s`, `ς` and `σ`, `µ` and `μ` are one letter to a case-insensitive disk).
    pub fn of(path: &str) -> Self {
        Self(path.to_uppercase().to_lowercase())
    }
}

/// How a new path clashes with a room's existing paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clash {
    /// The same path, or one differing only in case.
    SameName(String),
    /// The new path would make an existing file a folder, or lie inside an existing file.
    FileAndFolder(String),
    /// A folder of the new path is a folder of the room's in other case (`Dir/x` and `dir/y`).
    FolderCase(String),
}

impl Clash {
    pub fn into_service_error(self) -> ServiceError {
        match self {
            Self::SameName(existing) => ServiceError::already_exists(
                ErrorCode::FileExists,
                format!("a file named {existing:?} already exists in the room (names may not differ only in case)"),
            ),
            Self::FileAndFolder(existing) => ServiceError::conflict(
                ErrorCode::PathConflict,
                format!("{existing:?} would be both a file and a folder"),
            ),
            Self::FolderCase(existing) => ServiceError::already_exists(
                ErrorCode::FileExists,
                format!("a folder named {existing:?} already exists in the room (names may not differ only in case)"),
            ),
        }
    }
}

/// The first clash of `path` with `existing` (the room's other paths), if any.
pub fn clash<'a>(path: &str, existing: impl IntoIterator<Item = &'a str>) -> Option<Clash> {
    let key = PathKey::of(path);
    let folder_keys: Vec<PathKey> = folders(path).map(PathKey::of).collect();
    for other in existing {
        let other_key = PathKey::of(other);
        if other_key == key {
            return Some(Clash::SameName(other.to_string()));
        }
        if folder_keys.contains(&other_key) || is_inside(&other_key.0, &key.0) {
            return Some(Clash::FileAndFolder(other.to_string()));
        }
        // Folders are prefixes: the one at each depth is compared with its peer.
        for (mine, theirs) in folders(path).zip(folders(other)) {
            if mine != theirs {
                if PathKey::of(mine) == PathKey::of(theirs) {
                    return Some(Clash::FolderCase(theirs.to_string()));
                }
                break;
            }
        }
    }
    None
}

/// The pattern of a room file's path for the API document: `/`-separated parts, each a name as
/// [`normalise`] accepts it. Lengths are in bytes, which a pattern cannot count.
pub fn path_pattern() -> String {
    use crate::validate::{FORBIDDEN_CLASS, WHITESPACE_CLASS};
    let refused = format!(r#"{FORBIDDEN_CLASS}{INVISIBLE_CLASS}/\\<>:"|?*"#);
    let edge = format!("[^{WHITESPACE_CLASS}{refused}]");
    let edge_not_dot = format!("[^{WHITESPACE_CLASS}{refused}.]");
    // A part's limit is in bytes; the pattern counts characters, as close as a pattern can say it.
    // No part ends with a dot, so "." and ".." are out too.
    let segment = format!(
        r"(?:{edge_not_dot}|{edge}{edge_not_dot}|{edge}[^{refused}]{{1,{}}}{edge_not_dot})",
        FILENAME_MAX_BYTES - 2
    );
    format!(r"^{segment}(?:/{segment}){{0,{}}}$", FILE_PATH_MAX_DEPTH - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_are_accepted_and_their_normal_form() {
        for good in [
            "main.py",
            "src/app/main.py",
            "src/app/__init__.py",
            ".github/workflows/ci.yml",
            "données/été.txt",
            "a b/c d.txt",
            "Makefile",
        ] {
            assert_eq!(normalise(good).as_deref(), Ok(good), "{good:?}");
        }
        // Decomposed (macOS) and composed accents are one name.
        assert_eq!(normalise("e\u{301}te\u{301}.txt").as_deref(), Ok("\u{e9}t\u{e9}.txt"));
        let deep = vec!["d"; FILE_PATH_MAX_DEPTH].join("/");
        assert!(normalise(&deep).is_ok());
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let deep = vec!["d"; FILE_PATH_MAX_DEPTH + 1].join("/");
        let long = format!("{}/x", vec!["x".repeat(200); 6].join("/"));
        let cases: [(&str, PathError); 22] = [
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("../etc/passwd", PathError::DotSegment),
            ("src/../../x", PathError::DotSegment),
            ("./main.py", PathError::DotSegment),
            ("src/.", PathError::DotSegment),
            ("src//main.py", PathError::EmptySegment),
            ("src/", PathError::EmptySegment),
            ("src\\main.py", PathError::Backslash),
            ("c:/windows", PathError::Reserved),
            ("a\nb", PathError::Control),
            ("evil\u{202E}yp.exe", PathError::Control),
            ("src/ lead.py", PathError::Space),
            ("ma\u{200C}in.py", PathError::Invisible),
            ("soft\u{AD}hyphen.py", PathError::Invisible),
            ("\u{3164}/x.py", PathError::Invisible),
            ("tdot.", PathError::TrailingDot),
            ("src./x.py", PathError::TrailingDot),
            ("trail /x.py", PathError::Space),
            (deep.as_str(), PathError::TooDeep),
            (long.as_str(), PathError::TooLong),
            ("x".repeat(256).leak(), PathError::SegmentTooLong),
        ];
        for (bad, reason) in cases {
            assert_eq!(normalise(bad), Err(reason.clone()), "{bad:?}");
            assert_eq!(reason.into_service_error().code(), ErrorCode::InvalidFilename);
        }
    }

    #[test]
    fn clashes_by_case_and_between_files_and_folders() {
        let room = ["src/app/main.py", "README.md", "docs"];
        assert_eq!(clash("src/app/util.py", room), None);
        assert_eq!(clash("readme.MD", room), Some(Clash::SameName("README.md".into())));
        // Letters one to a case-insensitive disk, though `to_lowercase` keeps them apart.
        for (one, other) in [("µ.txt", "μ.txt"), ("ς.txt", "σ.txt"), ("ſun.txt", "sun.txt"), ("ΑΣ/x", "ασ/x")]
        {
            assert!(clash(one, [other]).is_some(), "{one} and {other}");
        }
        assert_eq!(clash("src/app", room), Some(Clash::FileAndFolder("src/app/main.py".into())));
        assert_eq!(clash("SRC", room), Some(Clash::FileAndFolder("src/app/main.py".into())));
        assert_eq!(clash("docs/index.md", room), Some(Clash::FileAndFolder("docs".into())));
        assert_eq!(clash("docs2/index.md", room), None);
        assert_eq!(clash("Src/app/other.py", room), Some(Clash::FolderCase("src".into())));
        assert_eq!(clash("src/APP/other.py", room), Some(Clash::FolderCase("src/app".into())));
        assert_eq!(clash("src/lib/other.py", room), None);
        assert_eq!(clash("src/app/main.py/x", room), Some(Clash::FileAndFolder("src/app/main.py".into())));
        assert_eq!(Clash::FileAndFolder("docs".into()).into_service_error().code(), ErrorCode::PathConflict);
        assert_eq!(Clash::SameName("a".into()).into_service_error().code(), ErrorCode::FileExists);
        assert_eq!(Clash::FolderCase("a".into()).into_service_error().code(), ErrorCode::FileExists);
    }

    #[test]
    fn folders_and_names() {
        assert_eq!(folders("a/b/c.py").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(folders("c.py").count(), 0);
        assert_eq!(base_name("a/b/c.py"), "c.py");
        assert!(is_inside("a/b/c.py", "a"));
        assert!(!is_inside("ab/c.py", "a"));
        assert!(!is_inside("a", "a"));
    }

    #[test]
    fn the_pattern_agrees_with_the_rule() {
        let pattern = regex::RegexBuilder::new(&path_pattern()).size_limit(1 << 28).build().unwrap();
        for good in ["main.py", "src/app/main.py", ".env", "a b/c", "données/été.txt"] {
            assert!(pattern.is_match(good), "{good:?}");
        }
        for bad in
            ["", "/x", "a//b", "a/", "../x", "a/./b", "a\\b", " a/b", "a/b ", "a:b", "a./b", "x.", "ma\u{200C}in"]
        {
            assert!(!pattern.is_match(bad), "{bad:?}");
        }
    }
}
