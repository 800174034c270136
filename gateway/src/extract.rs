//! Request extractors whose rejections use the REST error shape.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use codesync_common::ErrorCode;
use codesync_common::grpc::CallContext;
use codesync_common::identity::{Caller, Session, bearer_token};
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
        let declares_json = declares_json(&request);
        let bytes = read_body(request, state).await?;
        if !declares_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON, with 'Content-Type: application/json'",
            ));
        }
        json_object(&bytes).map(Self)
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
        let declares_json = declares_json(&request);
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if !declares_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with 'Content-Type: application/json', or no body",
            ));
        }
        json_object(&bytes).map(Self)
    }
}

/// `Content-Type: application/json`, or another JSON type (`application/*+json`).
fn declares_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(axum::http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(request, state).await.map_err(|_| crate::error::payload_too_large())
}

/// Every body of this API is a JSON object: serde would also read a struct from an array.
fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let is_object = bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
    if !is_object && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
            "the request body does not have the expected fields: send a JSON object",
        ));
    }
    axum::Json::<T>::from_bytes(bytes).map(|axum::Json(value)| value).map_err(ApiError::from)
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
            Err(rejection) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, rejection.body_text()))
            }
        }
    }
}

/// The caller, if the request has an `Authorization: Bearer` header. A header
/// that is present but invalid is refused with 401, never ignored.
pub struct MaybeSignedIn {
    pub caller: Option<Caller>,
    pub context: CallContext,
    /// The sign-in and its expiry, for the streams that stay open.
    pub session: Option<Session>,
}

/// The caller of a request that needs one: 401 without a valid token.
pub struct SignedIn {
    pub context: CallContext,
    pub session: Session,
}

impl FromRequestParts<GatewayState> for MaybeSignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let client_ip = client_ip(parts, &state.proxies);
        let Some(header_value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(Self {
                caller: None,
                context: CallContext { authorization: None, client_ip, ..CallContext::default() },
                session: None,
            });
        };
        let invalid = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken,
                "the authorization header is not a valid bearer token",
            )
        };
        let header_text = header_value.to_str().map_err(|_| invalid())?;
        let token = bearer_token(header_text).ok_or_else(invalid)?;
        let session = state.tokens.verify_session(token)?;
        let context =
            CallContext { authorization: Some(format!("Bearer {token}")), client_ip, ..CallContext::default() };
        Ok(Self { caller: Some(session.caller.clone()), context, session: Some(session) })
    }
}

impl FromRequestParts<GatewayState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let MaybeSignedIn { context, session, .. } = MaybeSignedIn::from_request_parts(parts, state).await?;
        let session = session.ok_or_else(authentication_required)?;
        Ok(Self { context, session })
    }
}

fn authentication_required() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::AuthenticationRequired,
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
        let MaybeSignedIn { caller, context, .. } = MaybeSignedIn::from_request_parts(parts, state).await?;
        let caller = caller.ok_or_else(authentication_required)?;
        if !caller.is_admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AdminRequired,
                "only administrators may do this",
            ));
        }
        Ok(Self { context })
    }
}

/// The end user's address alone, for handlers that read the token themselves (WebSockets).
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<GatewayState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts, &state.proxies)))
    }
}

/// Which peers are proxies whose `X-Forwarded-For` entries are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// The gateway's direct peer is a proxy, whatever its address (`trust_forwarded_for`).
    pub peer: bool,
    /// Addresses and networks of proxies (`trusted_proxies`).
    pub networks: Vec<Network>,
}

/// An address and a prefix length: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| format!("'{text}' is not an address or a network"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| format!("'{text}' has no valid prefix length"))?,
            None => bits,
        };
        Ok(Self { address, prefix })
    }
}

impl Network {
    fn contains(&self, candidate: IpAddr) -> bool {
        let candidate = match candidate {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(candidate, IpAddr::V4),
            other => other,
        };
        match (self.address, candidate) {
            (IpAddr::V4(network), IpAddr::V4(candidate)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(candidate) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(candidate)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(candidate) & mask
            }
            _ => false,
        }
    }
}

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(address))
    }

    /// Whether a direct peer is one of the trusted proxies (listed; `trust_forwarded_for` names
    /// no address, so it exempts nothing from the limits on connections).
    pub fn is_trusted(&self, address: IpAddr) -> bool {
        self.trusts(address)
    }

    /// The client's address behind the proxies: `X-Forwarded-For` read from its right end (the
    /// entries the trusted proxies appended), skipping the trusted proxies themselves; the first
    /// address no trusted proxy stands for is the client's. Entries to the left of it are what
    /// the client wrote, and are never believed.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !(self.peer || self.trusts(peer)) {
            return peer;
        }
        let Some(forwarded_for) = forwarded_for else { return peer };
        let mut client = peer;
        for entry in forwarded_for.rsplit(',') {
            let Ok(address) = entry.trim().parse::<IpAddr>() else { return client };
            client = address;
            if !self.trusts(address) {
                return client;
            }
        }
        client
    }
}

/// The caller a request's bearer token names, if it is valid, verified once per request: the
/// layers that decide before the handler (the connection's standing, the in-flight share) ask in
/// turn and share the answer.
pub fn bearer_caller(parts: &mut Parts, state: &GatewayState) -> Option<Caller> {
    #[derive(Clone)]
    struct Verified(Option<Caller>);
    if let Some(Verified(caller)) = parts.extensions.get::<Verified>() {
        return caller.clone();
    }
    let caller = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .and_then(|token| state.tokens.verify_access_token(token).ok());
    parts.extensions.insert(Verified(caller.clone()));
    caller
}

/// The end user's address: the TCP peer, or, behind trusted proxies, the address the proxies
/// say they received the request from (see [`TrustedProxies::client`]).
pub fn client_ip(parts: &Parts, proxies: &TrustedProxies) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip())?;
    let forwarded_for: Vec<&str> =
        parts.headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).collect();
    let forwarded_for = (!forwarded_for.is_empty()).then(|| forwarded_for.join(","));
    Some(proxies.client(peer, forwarded_for.as_deref()))
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
            Err(_) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidPath, "a path parameter is not valid"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_what_trusted_proxies_appended_is_believed() {
        let peer = address("10.0.0.2");
        let none = TrustedProxies::default();
        assert_eq!(none.client(peer, Some("1.1.1.1")), peer, "no proxy is trusted: the peer");
        let one_hop = TrustedProxies { peer: true, networks: Vec::new() };
        // A client behind an appending proxy wrote the first entry itself.
        assert_eq!(one_hop.client(peer, Some("6.6.6.6, 198.51.100.7")), address("198.51.100.7"));
        assert_eq!(one_hop.client(peer, Some("198.51.100.7")), address("198.51.100.7"));
        assert_eq!(one_hop.client(peer, None), peer);
        assert_eq!(one_hop.client(peer, Some("garbage")), peer);
        let networks =
            TrustedProxies { peer: false, networks: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()] };
        assert_eq!(networks.client(peer, Some("6.6.6.6, 198.51.100.7, 10.1.2.3")), address("198.51.100.7"));
        assert_eq!(
            networks.client(address("203.0.113.1"), Some("6.6.6.6")),
            address("203.0.113.1"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(networks.client(address("fd00::1"), Some("198.51.100.8")), address("198.51.100.8"));
        assert_eq!(networks.client(peer, Some("10.9.9.9, 10.1.2.3")), address("10.9.9.9"), "all proxies: the leftmost");
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("proxy".parse::<Network>().is_err());
    }
}
