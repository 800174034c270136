//! Who is calling: the JWT access tokens that the auth service signs and that
//! every service and the gateway verify, the signing key they share, and the
//! gRPC metadata that carries a caller's token and address between processes.
//!
//! The key is generated on first start and persisted with 0600 permissions;
//! there is no default secret. Processes that share a data directory (or are
//! given the same key file) accept each other's tokens.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

use crate::error::ServiceError;

/// gRPC metadata key carrying `Bearer <access token>` from the gateway to the services.
pub const AUTHORIZATION_METADATA_KEY: &str = "authorization";
/// gRPC metadata key carrying the end user's IP address, as the gateway saw it.
pub const CLIENT_IP_METADATA_KEY: &str = "x-codesync-client-ip";

const TOKEN_ISSUER: &str = "codesync";
const ACCESS_TOKEN_TYPE: &str = "access";
const SIGNING_KEY_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read the signing key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create the signing key file {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("the signing key file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The HMAC key that signs and verifies access tokens.
#[derive(Clone)]
pub struct SigningKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    pub fn from_secret(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    /// Reads the key at `path`, creating it with fresh random bytes first if it
    /// does not exist. Creation is atomic, so processes starting together end
    /// up with the same key.
    pub fn load_or_create(path: &Path) -> Result<Self, SigningKeyError> {
        match std::fs::read_to_string(path) {
            Ok(encoded) => return Self::decode(path, &encoded),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(SigningKeyError::Read { path: path.to_path_buf(), source }),
        }
        let create_error = |source| SigningKeyError::Create { path: path.to_path_buf(), source };
        let directory = path.parent().unwrap_or(Path::new("."));
        create_private_dir(directory).map_err(create_error)?;

        let mut secret = vec![0u8; SIGNING_KEY_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let temporary_path = directory.join(format!(".{}.tmp", crate::new_id()));
        write_private_file(&temporary_path, URL_SAFE_NO_PAD.encode(&secret).as_bytes()).map_err(create_error)?;
        // A hard link fails if the key appeared meanwhile: then the other process's key wins.
        let link_result = std::fs::hard_link(&temporary_path, path);
        let _ = std::fs::remove_file(&temporary_path);
        match link_result {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated a new token signing key");
                Ok(Self { secret })
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let encoded = std::fs::read_to_string(path)
                    .map_err(|source| SigningKeyError::Read { path: path.to_path_buf(), source })?;
                Self::decode(path, &encoded)
            }
            Err(source) => Err(create_error(source)),
        }
    }

    fn decode(path: &Path, encoded: &str) -> Result<Self, SigningKeyError> {
        warn_if_readable_by_others(path);
        let secret = URL_SAFE_NO_PAD.decode(encoded.trim()).map_err(|error| SigningKeyError::Invalid {
            path: path.to_path_buf(),
            reason: format!("expected unpadded base64url text: {error}"),
        })?;
        if secret.len() < 32 {
            return Err(SigningKeyError::Invalid {
                path: path.to_path_buf(),
                reason: format!("the key has {} bytes; at least 32 are needed", secret.len()),
            });
        }
        Ok(Self { secret })
    }
}

fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(directory)
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the token signing key is readable by other users; chmod 600 it");
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct AccessClaims {
    sub: String,
    name: String,
    adm: bool,
    typ: String,
    iss: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// An authenticated caller, as its access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub username: String,
    pub is_admin: bool,
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    validation: Validation,
    access_token_ttl: Duration,
}

impl TokenService {
    pub fn new(signing_key: &SigningKey, access_token_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[TOKEN_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        validation.validate_aud = false;
        Self {
            encoding_key: EncodingKey::from_secret(&signing_key.secret),
            decoding_key: DecodingKey::from_secret(&signing_key.secret),
            validation,
            access_token_ttl,
        }
    }

    pub fn access_token_ttl(&self) -> Duration {
        self.access_token_ttl
    }

    pub fn issue_access_token(&self, caller: &Caller) -> Result<String, ServiceError> {
        let issued_at_secs = crate::now_ms() / 1000;
        let ttl_secs = i64::try_from(self.access_token_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            sub: caller.user_id.clone(),
            name: caller.username.clone(),
            adm: caller.is_admin,
            typ: ACCESS_TOKEN_TYPE.to_string(),
            iss: TOKEN_ISSUER.to_string(),
            iat: issued_at_secs,
            exp: issued_at_secs.saturating_add(ttl_secs),
            jti: crate::new_id(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding_key)
            .map_err(|error| ServiceError::internal(format_args!("cannot sign an access token: {error}")))
    }

    /// Verifies signature, algorithm, issuer, type and expiry.
    pub fn verify_access_token(&self, token: &str) -> Result<Caller, ServiceError> {
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding_key, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ServiceError::unauthenticated("token_expired", "the access token has expired; refresh it")
                }
                _ => ServiceError::unauthenticated("invalid_token", "the access token is not valid"),
            })?
            .claims;
        if claims.typ != ACCESS_TOKEN_TYPE {
            return Err(ServiceError::unauthenticated("invalid_token", "the access token is not valid"));
        }
        Ok(Caller { user_id: claims.sub, username: claims.name, is_admin: claims.adm })
    }

    /// The caller named by the request's `authorization` metadata: `None` when
    /// there is none, an error when there is one and it is not valid.
    pub fn caller_from_metadata(&self, metadata: &MetadataMap) -> Result<Option<Caller>, ServiceError> {
        let Some(value) = metadata.get(AUTHORIZATION_METADATA_KEY) else {
            return Ok(None);
        };
        let header = value
            .to_str()
            .map_err(|_| ServiceError::unauthenticated("invalid_token", "the authorization header is not valid"))?;
        let token = bearer_token(header).ok_or_else(|| {
            ServiceError::unauthenticated("invalid_token", "expected 'Authorization: Bearer <token>'")
        })?;
        self.verify_access_token(token).map(Some)
    }

    /// Like [`Self::caller_from_metadata`], but a missing token is an error too.
    pub fn require_caller(&self, metadata: &MetadataMap) -> Result<Caller, ServiceError> {
        self.caller_from_metadata(metadata)?.ok_or_else(|| {
            ServiceError::unauthenticated(
                "authentication_required",
                "sign in first: this request needs an access token",
            )
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// The end user's address from the metadata the gateway sets, else the peer's.
pub fn client_ip<T>(request: &tonic::Request<T>) -> Option<IpAddr> {
    request
        .metadata()
        .get(CLIENT_IP_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .or_else(|| request.remote_addr().map(|address| address.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(secret: &[u8], ttl_secs: u64) -> TokenService {
        TokenService::new(&SigningKey::from_secret(secret.to_vec()), Duration::from_secs(ttl_secs))
    }

    fn alice() -> Caller {
        Caller { user_id: "u-1".into(), username: "alice".into(), is_admin: false }
    }

    #[test]
    fn a_token_verifies_with_its_key_only() {
        let tokens = service(&[7; 64], 900);
        let token = tokens.issue_access_token(&alice()).unwrap();
        assert_eq!(tokens.verify_access_token(&token).unwrap(), alice());
        let other = service(&[8; 64], 900);
        assert_eq!(other.verify_access_token(&token).unwrap_err().code(), "invalid_token");
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let tokens = service(&[7; 64], 900);
        let token = tokens.issue_access_token(&alice()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["adm"] = serde_json::Value::Bool(true);
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert!(tokens.verify_access_token(&parts.join(".")).is_err());
        // An unsigned token with alg "none".
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(tokens.verify_access_token(&format!("{header}.{}.", parts[1])).is_err());
        assert!(tokens.verify_access_token("garbage").is_err());
    }

    #[test]
    fn expired_tokens_say_so() {
        let tokens = service(&[7; 64], 0);
        let token = tokens.issue_access_token(&alice()).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(tokens.verify_access_token(&token).unwrap_err().code(), "token_expired");
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn the_signing_key_is_created_once_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secrets").join("jwt-signing-key");
        let first = SigningKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(first.secret, second.secret);
        assert_eq!(first.secret.len(), SIGNING_KEY_BYTES);
    }

    #[test]
    fn a_short_or_garbled_key_file_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("key");
        std::fs::write(&path, "c2hvcnQ").unwrap();
        assert!(matches!(SigningKey::load_or_create(&path), Err(SigningKeyError::Invalid { .. })));
        std::fs::write(&path, "not base64 !!!").unwrap();
        assert!(matches!(SigningKey::load_or_create(&path), Err(SigningKeyError::Invalid { .. })));
    }
}
