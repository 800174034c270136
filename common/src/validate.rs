//! Checks of user-supplied text shared by the services.

use crate::error::ServiceError;

/// Rejects text with control characters (newlines included) or Unicode
/// direction overrides, which can disguise a name in a listing.
pub fn has_forbidden_characters(text: &str) -> bool {
    text.chars().any(|character| {
        character.is_control()
            || matches!(character, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{FEFF}')
    })
}

/// A required single-line text of at most `max_chars` characters, trimmed.
pub fn single_line(field: &str, value: &str, max_chars: usize, code: &'static str) -> Result<String, ServiceError> {
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
pub fn multi_line(field: &str, value: &str, max_chars: usize, code: &'static str) -> Result<String, ServiceError> {
    if value.chars().count() > max_chars {
        return Err(ServiceError::invalid(code, format!("{field} must be at most {max_chars} characters")));
    }
    let forbidden = value.chars().any(|character| character.is_control() && !matches!(character, '\n' | '\r' | '\t'));
    if forbidden {
        return Err(ServiceError::invalid(code, format!("{field} must not contain control characters")));
    }
    Ok(value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_rules() {
        assert_eq!(single_line("name", "  My room ", 10, "invalid_name").unwrap(), "My room");
        assert_eq!(single_line("name", "Équipe 日本", 10, "invalid_name").unwrap(), "Équipe 日本");
        assert!(single_line("name", "   ", 10, "invalid_name").is_err());
        assert!(single_line("name", "a\nb", 10, "invalid_name").is_err());
        assert!(single_line("name", "a\u{0}b", 10, "invalid_name").is_err());
        assert!(single_line("name", "evil\u{202E}txt", 20, "invalid_name").is_err());
        assert!(single_line("name", &"x".repeat(11), 10, "invalid_name").is_err());
    }

    #[test]
    fn multi_line_rules() {
        assert_eq!(multi_line("d", "line 1\nline 2\t!", 100, "c").unwrap(), "line 1\nline 2\t!");
        assert!(multi_line("d", "bell\u{7}", 100, "c").is_err());
        assert!(multi_line("d", &"x".repeat(101), 100, "c").is_err());
    }
}
