//! The REST endpoints of SPEC section 3, each a thin translation to one gRPC call.

pub mod analytics;
pub mod assistant;
pub mod auth;
pub mod executions;
pub mod files;
pub mod history;
pub mod notifications;
pub mod rooms;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the epoch as an RFC 3339 UTC timestamp.
pub fn timestamp(milliseconds: i64) -> String {
    let nanoseconds = i128::from(milliseconds) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanoseconds)
        .ok()
        .and_then(|moment| moment.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A `limit` query parameter: absent or empty for the service's default (0), else 1 to `max`.
pub fn limit_param(text: Option<&str>, max: u32) -> Result<u32, crate::error::ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(0),
        Some(text) => text.parse::<u32>().ok().filter(|limit| (1..=max).contains(limit)).ok_or_else(|| {
            crate::error::ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_limit",
                format!("limit must be a number from 1 to {max}"),
            )
        }),
    }
}

/// A whole-number query parameter: absent or empty for 0.
pub fn number_param(name: &str, text: Option<&str>) -> Result<i64, crate::error::ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(0),
        Some(text) => text.parse::<i64>().ok().filter(|number| *number >= 0).ok_or_else(|| {
            crate::error::ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{name} must be a whole number"),
            )
        }),
    }
}

/// A point in time as a query parameter: milliseconds since the epoch, an RFC 3339 time, or a
/// date (`2026-12-01`, its start in UTC). Absent or empty for 0.
pub fn time_param(name: &str, text: Option<&str>) -> Result<i64, crate::error::ApiError> {
    let text = match text.map(str::trim) {
        None | Some("") => return Ok(0),
        Some(text) => text,
    };
    let invalid = || {
        crate::error::ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("{name} must be a time: milliseconds since 1970, RFC 3339, or a date like 2026-12-01"),
        )
    };
    if let Ok(milliseconds) = text.parse::<i64>() {
        return if milliseconds >= 0 { Ok(milliseconds) } else { Err(invalid()) };
    }
    if let Ok(moment) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(moment.unix_timestamp_nanos() / 1_000_000).map_err(|_| invalid());
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &date_format).map_err(|_| invalid())?;
    let start = date.midnight().assume_utc();
    i64::try_from(start.unix_timestamp_nanos() / 1_000_000).map_err(|_| invalid())
}

/// Serde helper: `"field": null` and an absent field both mean "not given",
/// so that PATCH bodies may send either.
pub fn none_if_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn times_are_read_as_milliseconds_rfc3339_or_dates() {
        use super::time_param;
        assert_eq!(time_param("since", None).unwrap(), 0);
        assert_eq!(time_param("since", Some("1700000000123")).unwrap(), 1_700_000_000_123);
        assert_eq!(time_param("since", Some("2023-11-14T22:13:20.123Z")).unwrap(), 1_700_000_000_123);
        assert_eq!(time_param("since", Some("1970-01-02")).unwrap(), 86_400_000);
        assert!(time_param("since", Some("yesterday")).is_err());
        assert!(time_param("since", Some("-5")).is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
