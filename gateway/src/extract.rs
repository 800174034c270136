//! Request extractors whose rejections use the REST error shape.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use codesync_common::grpc::CallContext;
use codesync_common::identity::{Caller, bearer_token};
use serde::de::DeserializeOwned;

use crate::GatewayState;
use crate::error::ApiError;

/// A JSON body; malformed JSON is 400, a body of the wrong shape 422, too large 413.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// A JSON body that may also be left out (no body, or an empty one): then `T::default()`.
/// A body that is sent must be JSON of the right shape, as with [`ApiJson`].
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declares_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("application/json"));
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|_| {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is too large")
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if !declares_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with 'Content-Type: application/json', or no body",
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

/// Query parameters; ones that cannot be read are 400 in the error shape.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", rejection.body_text())),
        }
    }
}

/// The caller, if the request has an `Authorization: Bearer` header. A header
/// that is present but invalid is refused with 401, never ignored.
pub struct MaybeSignedIn {
    pub caller: Option<Caller>,
    pub context: CallContext,
}

/// The caller of a request that needs one: 401 without a valid token.
pub struct SignedIn {
    pub context: CallContext,
}

impl FromRequestParts<GatewayState> for MaybeSignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let client_ip = client_ip(parts, state.trust_forwarded_for);
        let Some(header_value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(Self { caller: None, context: CallContext { authorization: None, client_ip, deadline: None } });
        };
        let invalid = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the authorization header is not a valid bearer token",
            )
        };
        let header_text = header_value.to_str().map_err(|_| invalid())?;
        let token = bearer_token(header_text).ok_or_else(invalid)?;
        let caller = state.tokens.verify_access_token(token)?;
        let context = CallContext { authorization: Some(format!("Bearer {token}")), client_ip, deadline: None };
        Ok(Self { caller: Some(caller), context })
    }
}

impl FromRequestParts<GatewayState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let MaybeSignedIn { caller, context } = MaybeSignedIn::from_request_parts(parts, state).await?;
        caller.ok_or_else(authentication_required)?;
        Ok(Self { context })
    }
}

fn authentication_required() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication_required",
        "sign in first: this request needs an access token",
    )
}

/// An administrator's request: 401 without a valid token, 403 for anyone else. The services
/// check again; this answers early and says why.
pub struct SignedInAdmin {
    pub context: CallContext,
}

impl FromRequestParts<GatewayState> for SignedInAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let MaybeSignedIn { caller, context } = MaybeSignedIn::from_request_parts(parts, state).await?;
        let caller = caller.ok_or_else(authentication_required)?;
        if !caller.is_admin {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "admin_required", "only administrators may do this"));
        }
        Ok(Self { context })
    }
}

/// The end user's address alone, for handlers that read the token themselves (WebSockets).
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<GatewayState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts, state.trust_forwarded_for)))
    }
}

/// The end user's address: the TCP peer, or the first `X-Forwarded-For`
/// entry when the gateway is configured to sit behind a trusted proxy.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|first| first.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip())
}

/// Path parameters; a parameter that cannot be decoded is 400 in the error shape.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(_) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", "a path parameter is not valid")),
        }
    }
}
