//! The rules for usernames, emails and passwords.

use codesync_common::ErrorCode;
use codesync_common::ServiceError;
use codesync_common::validate::has_forbidden_characters;

// The password's upper bound is long enough for any passphrase, short enough that hashing
// stays cheap.
pub use codesync_common::limits::{
    EMAIL_LOCAL_MAX_CHARS, EMAIL_MAX_CHARS, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, USERNAME_MAX_CHARS,
    USERNAME_MIN_CHARS,
};

/// 3 to 32 ASCII letters, digits, `_`, `-` or `.`, starting with a letter or digit.
pub fn username(value: &str) -> Result<String, ServiceError> {
    let length = value.chars().count();
    if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&length) {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidUsername,
            format!("the username must be {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} characters long"),
        ));
    }
    let allowed =
        value.chars().all(|character| character.is_ascii_alphanumeric() || matches!(character, '_' | '-' | '.'));
    let starts_well = value.chars().next().is_some_and(|character| character.is_ascii_alphanumeric());
    if !allowed || !starts_well {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidUsername,
            "the username may contain only letters, digits, '_', '-' and '.', and must start with a letter or digit",
        ));
    }
    Ok(value.to_string())
}

/// A plausible address: `local@domain.tld`, no spaces or control characters (none around it
/// either: the API document's pattern says exactly this); returned lower-cased, the form
/// accounts are looked up by.
pub fn email(value: &str) -> Result<String, ServiceError> {
    let invalid = || ServiceError::invalid(ErrorCode::InvalidEmail, "the email address is not valid");
    if value.is_empty() || value.chars().count() > EMAIL_MAX_CHARS || has_forbidden_characters(value) {
        return Err(invalid());
    }
    if value.chars().any(|character| {
        character.is_whitespace() || matches!(character, '<' | '>' | '(' | ')' | ',' | ';' | '"' | '\\')
    }) {
        return Err(invalid());
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Err(invalid());
    };
    let domain_is_valid = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if local.is_empty() || local.chars().count() > EMAIL_LOCAL_MAX_CHARS || local.contains('@') || !domain_is_valid {
        return Err(invalid());
    }
    Ok(value.to_lowercase())
}

pub fn password(value: &str) -> Result<(), ServiceError> {
    let length = value.chars().count();
    if length < PASSWORD_MIN_CHARS {
        return Err(ServiceError::invalid(
            ErrorCode::WeakPassword,
            format!("the password must be at least {PASSWORD_MIN_CHARS} characters long"),
        ));
    }
    if length > PASSWORD_MAX_CHARS {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidPassword,
            format!("the password must be at most {PASSWORD_MAX_CHARS} characters long"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for good in ["bob", "alice_01", "a.b-c", "X9z"] {
            assert!(username(good).is_ok(), "{good}");
        }
        for bad in ["ab", "_bob", "bob smith", "bob/../x", "bøb", "a\u{0}b", &"a".repeat(33), ""] {
            assert_eq!(username(bad).unwrap_err().code(), ErrorCode::InvalidUsername, "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(email("Alice@Example.COM").unwrap(), "alice@example.com");
        assert!(email(" alice@example.com").is_err());
        assert!(email("a.b+tag@sub.example.org").is_ok());
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "a b@example.com",
            "alice@@example.com",
            "alice@example..com",
            "alice@.example.com",
            "alice@exa\nmple.com",
            "<a@b.c>",
        ] {
            assert_eq!(email(bad).unwrap_err().code(), ErrorCode::InvalidEmail, "{bad:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(300))).is_err());
    }

    #[test]
    fn passwords() {
        assert!(password("12345678").is_ok());
        assert!(password("пароль-секрет").is_ok());
        assert_eq!(password("1234567").unwrap_err().code(), ErrorCode::WeakPassword);
        assert_eq!(password(&"x".repeat(1025)).unwrap_err().code(), ErrorCode::InvalidPassword);
    }
}
