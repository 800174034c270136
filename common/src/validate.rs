//! Checks of user-supplied text shared by the services.

use crate::error::{ErrorCode, ServiceError};

/// Rejects text with control characters (newlines included) or Unicode
/// direction overrides, which can disguise a name in a listing.
pub fn has_forbidden_characters(text: &str) -> bool {
    text.chars().any(|character| {
        character.is_control()
            || matches!(character, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{FEFF}')
    })
}

/// A required single-line text of at most `max_chars` characters, trimmed.
pub fn single_line(field: &str, value: &str, max_chars: usize, code: ErrorCode) -> Result<String, ServiceError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ServiceError::invalid(code, format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ServiceError::invalid(code, format!("{field} must be at most {max_chars} characters")));
    }
    if has_forbidden_characters(trimmed) {
        return Err(ServiceError::invalid(code, format!("{field} must not contain control characters")));
    }
    Ok(trimmed.to_string())
}

/// An optional multi-line text of at most `max_chars` characters; tabs and
/// newlines are allowed, other control characters are not.
pub fn multi_line(field: &str, value: &str, max_chars: usize, code: ErrorCode) -> Result<String, ServiceError> {
    if value.chars().count() > max_chars {
        return Err(ServiceError::invalid(code, format!("{field} must be at most {max_chars} characters")));
    }
    let forbidden = value.chars().any(|character| character.is_control() && !matches!(character, '\n' | '\r' | '\t'));
    if forbidden {
        return Err(ServiceError::invalid(code, format!("{field} must not contain control characters")));
    }
    Ok(value.trim().to_string())
}

/// The characters [`has_forbidden_characters`] refuses, as the body of a regular expression's
/// character class (the syntax ECMAScript, JSON Schema and Python share): what the API document
/// says of the fields checked here.
pub const FORBIDDEN_CLASS: &str = r"\u0000-\u001f\u007f-\u009f\u200b\u202a-\u202e\u2066-\u2069\ufeff";

/// Unicode's white space, which `str::trim` removes, as the body of a character class.
pub const WHITESPACE_CLASS: &str = r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The control characters [`multi_line`] refuses (all but tab, newline and carriage return).
pub const MULTI_LINE_FORBIDDEN_CLASS: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";

/// A pattern for text that, once trimmed, is `min_chars` (0 or 1) to `max_chars` characters of
/// `inner` (a character class body; `None` for any character) and starts and ends with one that
/// is not white space. White space around it is allowed: it is trimmed.
pub fn trimmed_pattern(min_chars: usize, max_chars: usize, inner_forbidden: Option<&str>) -> String {
    let inner = inner_forbidden.map_or_else(|| r"[\s\S]".to_string(), |forbidden| format!("[^{forbidden}]"));
    let edge = format!("[^{WHITESPACE_CLASS}{}]", inner_forbidden.unwrap_or_default());
    let core = match max_chars {
        0 => String::new(),
        1 => edge.clone(),
        _ => format!("{edge}(?:{inner}{{0,{}}}{edge})?", max_chars - 2),
    };
    let core = if min_chars == 0 && !core.is_empty() { format!("(?:{core})?") } else { core };
    format!("^[{WHITESPACE_CLASS}]*{core}[{WHITESPACE_CLASS}]*$")
}

/// The pattern of what [`single_line`] accepts with `max_chars`.
pub fn single_line_pattern(max_chars: usize) -> String {
    trimmed_pattern(1, max_chars, Some(FORBIDDEN_CLASS))
}

/// The pattern of a username (see `limits`): ASCII letters, digits, `_`, `-` and `.`, starting
/// with a letter or digit.
pub fn username_pattern() -> String {
    use crate::limits::{USERNAME_MAX_CHARS, USERNAME_MIN_CHARS};
    format!("^[A-Za-z0-9][A-Za-z0-9_.-]{{{},{}}}$", USERNAME_MIN_CHARS - 1, USERNAME_MAX_CHARS - 1)
}

/// The pattern of an email address as auth accepts it: `local@domain` without white space,
/// control characters or `<>(),;"\`; the local part of at most `EMAIL_LOCAL_MAX_CHARS`
/// characters; the domain of two or more dot-separated labels, none starting or ending with `-`.
pub fn email_pattern() -> String {
    let refused = format!(r#"{WHITESPACE_CLASS}{FORBIDDEN_CLASS}<>(),;"\\@"#);
    let local = format!("[^{refused}]{{1,{}}}", crate::limits::EMAIL_LOCAL_MAX_CHARS);
    let label_edge = format!("[^{refused}.-]");
    let label = format!("{label_edge}(?:[^{refused}.]*{label_edge})?");
    format!(r"^{local}@{label}(?:\.{label})+$")
}

/// The pattern of a file's path in an inline run (the sandbox's rule): `/`-separated parts (at
/// most `FILE_PATH_MAX_DEPTH`), each without `\` or control characters, not starting with `-`,
/// and not `.` or `..`.
pub fn run_filename_pattern() -> String {
    let refused = r"\u0000-\u001f\u007f-\u009f/\\";
    let part = format!(
        r"(?:[^{refused}.-]|[^{refused}.-][^{refused}]|\.[^{refused}.]|[^{refused}-][^{refused}]{{2,{}}})",
        crate::limits::FILENAME_MAX_BYTES - 1
    );
    format!(r"^{part}(?:/{part}){{0,{}}}$", crate::limits::FILE_PATH_MAX_DEPTH - 1)
}

/// Text with something in it once trimmed.
pub fn not_blank_pattern() -> String {
    format!("[^{WHITESPACE_CLASS}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `character` is in a class body written as above (`\uXXXX`, `\t`-style escapes,
    /// literal characters and ranges).
    fn in_class(class: &str, character: char) -> bool {
        let mut members = Vec::new();
        let mut rest = class;
        while !rest.is_empty() {
            let (first, after) = if let Some(hex) = rest.strip_prefix("\\u") {
                (char::from_u32(u32::from_str_radix(&hex[..4], 16).unwrap()).unwrap(), &hex[4..])
            } else if let Some(escaped) = rest.strip_prefix('\\') {
                let name = escaped.chars().next().unwrap();
                let value = match name {
                    't' => '\t',
                    'n' => '\n',
                    'r' => '\r',
                    other => other,
                };
                (value, &escaped[name.len_utf8()..])
            } else {
                let first = rest.chars().next().unwrap();
                (first, &rest[first.len_utf8()..])
            };
            members.push(first);
            rest = after;
        }
        let mut index = 0;
        let mut found = false;
        // Ranges were read as three members: start, '-', end.
        while index < members.len() {
            if index + 2 < members.len() && members[index + 1] == '-' {
                found |= (members[index]..=members[index + 2]).contains(&character);
                index += 3;
            } else {
                found |= members[index] == character;
                index += 1;
            }
        }
        found
    }

    #[test]
    fn the_document_s_classes_are_the_checks_themselves() {
        for character in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            let text = character.to_string();
            assert_eq!(in_class(FORBIDDEN_CLASS, character), has_forbidden_characters(&text), "{character:?}");
            assert_eq!(in_class(WHITESPACE_CLASS, character), character.is_whitespace(), "{character:?}");
            let multi_line_refuses = character.is_control() && !matches!(character, '\n' | '\r' | '\t');
            assert_eq!(in_class(MULTI_LINE_FORBIDDEN_CLASS, character), multi_line_refuses, "{character:?}");
        }
    }

    #[test]
    fn the_single_line_pattern_reads_as_intended() {
        let pattern = single_line_pattern(100);
        assert!(pattern.starts_with('^') && pattern.ends_with('$'));
        assert!(pattern.contains("{0,98}"));
    }

    #[test]
    fn single_line_rules() {
        assert_eq!(single_line("name", "  My room ", 10, ErrorCode::InvalidRoomName).unwrap(), "My room");
        assert_eq!(single_line("name", "Équipe 日本", 10, ErrorCode::InvalidRoomName).unwrap(), "Équipe 日本");
        assert!(single_line("name", "   ", 10, ErrorCode::InvalidRoomName).is_err());
        assert!(single_line("name", "a\nb", 10, ErrorCode::InvalidRoomName).is_err());
        assert!(single_line("name", "a\u{0}b", 10, ErrorCode::InvalidRoomName).is_err());
        assert!(single_line("name", "evil\u{202E}txt", 20, ErrorCode::InvalidRoomName).is_err());
        assert!(single_line("name", &"x".repeat(11), 10, ErrorCode::InvalidRoomName).is_err());
    }

    #[test]
    fn multi_line_rules() {
        assert_eq!(
            multi_line("d", "line 1\nline 2\t!", 100, ErrorCode::InvalidDescription).unwrap(),
            "line 1\nline 2\t!"
        );
        assert!(multi_line("d", "bell\u{7}", 100, ErrorCode::InvalidDescription).is_err());
        assert!(multi_line("d", &"x".repeat(101), 100, ErrorCode::InvalidDescription).is_err());
    }
}
