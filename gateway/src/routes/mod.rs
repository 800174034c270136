//! The REST endpoints of SPEC section 3, each a thin translation to one gRPC call.

pub mod analytics;
pub mod archive;
pub mod assistant;
pub mod auth;
pub mod executions;
pub mod files;
pub mod folders;
pub mod history;
pub mod notifications;
pub mod rooms;
pub mod search;

use codesync_common::ErrorCode;
use serde::Deserialize;
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

/// A `limit` query parameter: absent for the service's default (0), else 1 to `max`.
pub fn limit_param(text: Option<&str>, max: u32) -> Result<u32, crate::error::ApiError> {
    named_limit_param("limit", text, max)
}

/// A count-limiting query parameter called `name`: absent for the service's default (0), else 1 to `max`.
pub fn named_limit_param(name: &str, text: Option<&str>, max: u32) -> Result<u32, crate::error::ApiError> {
    match text {
        None => Ok(0),
        Some(text) => text.parse::<u32>().ok().filter(|limit| (1..=max).contains(limit)).ok_or_else(|| {
            crate::error::ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                ErrorCode::InvalidLimit,
                format!("{name} must be a number from 1 to {max}"),
            )
        }),
    }
}

/// A whole-number query parameter: absent for 0.
pub fn number_param(name: &str, text: Option<&str>) -> Result<i64, crate::error::ApiError> {
    match text {
        None => Ok(0),
        Some(text) => text.parse::<i64>().ok().filter(|number| *number >= 0).ok_or_else(|| {
            crate::error::ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                format!("{name} must be a whole number"),
            )
        }),
    }
}

/// A point in time as a query parameter: milliseconds since the epoch, an RFC 3339 time, or a
/// date (`2026-12-01`, its start in UTC). Absent for 0.
pub fn time_param(name: &str, text: Option<&str>) -> Result<i64, crate::error::ApiError> {
    let Some(text) = text else { return Ok(0) };
    let invalid = || {
        crate::error::ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
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

/// An id, as a parameter's schema.
pub fn uuid_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::Custom("uuid".into()))).into()
}

/// The schema of a [`time_param`]: what the document says it takes.
pub fn time_query_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let string =
        |format| ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(format)));
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(i64::MAX)))
        .item(string(KnownFormat::DateTime))
        .item(string(KnownFormat::Date))
        .into()
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

/// Serde helper for whole numbers: JSON does not tell `2` from `2.0`, and neither does the
/// document's `integer`, so an integral float is read as its integer.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let out_of_range = || D::Error::custom(format!("{number} is out of range"));
    if let Some(value) = number.as_i64() {
        return T::try_from(value).map_err(|_| out_of_range());
    }
    if let Some(value) = number.as_u64() {
        return T::try_from(value).map_err(|_| out_of_range());
    }
    match number.as_f64() {
        #[allow(clippy::cast_possible_truncation)]
        Some(value) if value.fract() == 0.0 && value.abs() < 9.0e15 => {
            T::try_from(value as i64).map_err(|_| out_of_range())
        }
        _ => Err(D::Error::custom(format!("expected a whole number, not {number}"))),
    }
}

/// [`whole_number`] for a field that may be left out or `null`.
pub fn optional_whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    #[derive(serde::Deserialize)]
    struct Whole<T: TryFrom<i64> + TryFrom<u64>>(#[serde(deserialize_with = "whole_number")] T);
    Ok(Option::<Whole<T>>::deserialize(deserializer)?.map(|Whole(value)| value))
}

/// Serde helper for fields that may be left out but, when sent, hold a value: `null` is refused
/// (as the document's schema says), not read as "left out".
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
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
