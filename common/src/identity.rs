//! Who is calling: the users' access tokens, which only the auth service signs (Ed25519: every
//! other process holds the public key alone, so a leaked service or pod cannot mint a session),
//! the service credential that processes present to each other (a short-lived token under a key
//! every CodeSync process holds, never a client), and what a caller may vouch for with it: the
//! end user's address (the gateway only) and the user a service acts for.
//!
//! Keys are generated on first start and persisted with 0600 permissions (the public key 0644);
//! there is no default secret.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

use crate::error::{ErrorCode, ServiceError};

/// gRPC metadata key carrying `Bearer <access token>` from the gateway to the services.
pub const AUTHORIZATION_METADATA_KEY: &str = "authorization";
/// gRPC metadata key carrying the end user's IP address, as the gateway saw it; believed only
/// from the gateway.
pub const CLIENT_IP_METADATA_KEY: &str = "x-codesync-client-ip";
/// gRPC metadata key carrying the calling process's service credential.
pub const SERVICE_METADATA_KEY: &str = "x-codesync-service";
/// gRPC metadata key naming the user a service acts for (a checkpoint read as one of the file's
/// editors); believed only with a service credential.
pub const ACTING_FOR_METADATA_KEY: &str = "x-codesync-acting-for";

const TOKEN_ISSUER: &str = "codesync";
const ACCESS_TOKEN_TYPE: &str = "access";
const SERVICE_TOKEN_TYPE: &str = "service";
const KEY_FILE_BYTES: usize = 64;
/// How long a service credential is good for; it is renewed well before.
const SERVICE_TOKEN_TTL_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read the key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create the key file {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("the key file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Random bytes kept in a file: made on first use, atomically, readable by the owner only.
fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, SigningKeyError> {
    match std::fs::read_to_string(path) {
        Ok(encoded) => return decode_secret(path, &encoded),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(SigningKeyError::Read { path: path.to_path_buf(), source }),
    }
    let create_error = |source| SigningKeyError::Create { path: path.to_path_buf(), source };
    let directory = path.parent().unwrap_or(Path::new("."));
    create_private_dir(directory).map_err(create_error)?;
    let mut secret = vec![0u8; KEY_FILE_BYTES];
    rand::rng().fill_bytes(&mut secret);
    let temporary_path = directory.join(format!(".{}.tmp", crate::new_id()));
    write_file(&temporary_path, URL_SAFE_NO_PAD.encode(&secret).as_bytes(), 0o600).map_err(create_error)?;
    // A hard link fails if the key appeared meanwhile: then the other process's key wins.
    let link_result = std::fs::hard_link(&temporary_path, path);
    let _ = std::fs::remove_file(&temporary_path);
    match link_result {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new key");
            Ok(secret)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let encoded = std::fs::read_to_string(path)
                .map_err(|source| SigningKeyError::Read { path: path.to_path_buf(), source })?;
            decode_secret(path, &encoded)
        }
        Err(source) => Err(create_error(source)),
    }
}

fn decode_secret(path: &Path, encoded: &str) -> Result<Vec<u8>, SigningKeyError> {
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
    Ok(secret)
}

/// The access-token signing key (Ed25519): only processes that run the auth service load it.
#[derive(Clone)]
pub struct SigningKey {
    seed: [u8; 32],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Reads the key at `path` (its first 32 bytes are the Ed25519 seed), creating it with fresh
    /// random bytes first if it does not exist. Processes starting together end up with one key.
    pub fn load_or_create(path: &Path) -> Result<Self, SigningKeyError> {
        let secret = load_or_create_secret(path)?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&secret[..32]);
        Ok(Self { seed })
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { seed }
    }

    /// The key that verifies what this one signs.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(ed25519_dalek::SigningKey::from_bytes(&self.seed).verifying_key().to_bytes())
    }

    fn encoding_key(&self) -> EncodingKey {
        // PKCS#8 v1 for Ed25519: a fixed prefix, then the 32-byte seed (RFC 8410).
        const PREFIX: [u8; 16] =
            [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        let mut der = PREFIX.to_vec();
        der.extend_from_slice(&self.seed);
        EncodingKey::from_ed_der(&der)
    }
}

/// The access-token verifying key (Ed25519), which every process holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "PublicKey({})", self.encode())
    }
}

impl PublicKey {
    /// The key as text (unpadded base64url), as its file and `GetTokenKeys` carry it.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
        Some(Self(bytes))
    }

    /// Reads the key at `path`; `None` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<Self>, SigningKeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::decode(&text).map(Some).ok_or_else(|| SigningKeyError::Invalid {
                path: path.to_path_buf(),
                reason: "expected an Ed25519 public key in unpadded base64url".to_string(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SigningKeyError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Writes the key at `path` unless a file is there already (it is public: mode 0644).
    pub fn save_if_missing(&self, path: &Path) -> Result<(), SigningKeyError> {
        if path.exists() {
            return Ok(());
        }
        let create_error = |source| SigningKeyError::Create { path: path.to_path_buf(), source };
        let directory = path.parent().unwrap_or(Path::new("."));
        create_private_dir(directory).map_err(create_error)?;
        let temporary_path = directory.join(format!(".{}.tmp", crate::new_id()));
        write_file(&temporary_path, self.encode().as_bytes(), 0o644).map_err(create_error)?;
        let linked = std::fs::hard_link(&temporary_path, path);
        let _ = std::fs::remove_file(&temporary_path);
        match linked {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(source) => Err(create_error(source)),
        }
    }

    fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_ed_der(&self.0)
    }
}

/// The key of the service credentials: every CodeSync process holds it (the same one), no
/// client ever does.
#[derive(Clone)]
pub struct ServiceKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ServiceKey(..)")
    }
}

impl ServiceKey {
    pub fn load_or_create(path: &Path) -> Result<Self, SigningKeyError> {
        Ok(Self { secret: load_or_create_secret(path)? })
    }

    pub fn from_secret(secret: Vec<u8>) -> Self {
        Self { secret }
    }
}

fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(directory)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "a secret key is readable by other users; chmod 600 it");
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
    /// The sign-in this token belongs to (its refresh-token family): signing out ends it.
    #[serde(default)]
    sid: String,
}

/// A verified access token: who, which sign-in, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub caller: Caller,
    pub session_id: String,
    pub expires_at_ms: i64,
}

/// Sign-ins that ended (sign-out, a reused refresh token) before their access tokens expired:
/// refused until then, and announced to the streams open under them.
#[derive(Debug)]
struct EndedSessions {
    until_ms: Mutex<std::collections::HashMap<String, i64>>,
    announced: tokio::sync::broadcast::Sender<String>,
}

/// The claims of a service credential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct ServiceClaims {
    /// The calling component: `gateway`, or a service's name.
    sub: String,
    typ: String,
    iss: String,
    exp: i64,
}

/// An authenticated caller, as its access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub username: String,
    pub is_admin: bool,
}

/// Signs (in the auth service) and verifies access tokens, and verifies service credentials.
#[derive(Clone)]
pub struct TokenService {
    signer: Option<EncodingKey>,
    ended: std::sync::Arc<EndedSessions>,
    public_key: PublicKey,
    decoding_key: DecodingKey,
    validation: Validation,
    access_token_ttl: Duration,
    service_key: DecodingKey,
    service_validation: Validation,
}

impl TokenService {
    /// For a process that runs the auth service: signs and verifies.
    pub fn signer(signing_key: &SigningKey, service_key: &ServiceKey, access_token_ttl: Duration) -> Self {
        let mut tokens = Self::verifier(&signing_key.public_key(), service_key, access_token_ttl);
        tokens.signer = Some(signing_key.encoding_key());
        tokens
    }

    /// For every other process: verifies only.
    pub fn verifier(public_key: &PublicKey, service_key: &ServiceKey, access_token_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[TOKEN_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        validation.validate_aud = false;
        let mut service_validation = Validation::new(Algorithm::HS256);
        service_validation.set_issuer(&[TOKEN_ISSUER]);
        service_validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        service_validation.leeway = 5;
        service_validation.validate_aud = false;
        Self {
            signer: None,
            ended: std::sync::Arc::new(EndedSessions {
                until_ms: Mutex::default(),
                announced: tokio::sync::broadcast::channel(256).0,
            }),
            public_key: *public_key,
            decoding_key: public_key.decoding_key(),
            validation,
            access_token_ttl,
            service_key: DecodingKey::from_secret(&service_key.secret),
            service_validation,
        }
    }

    pub fn access_token_ttl(&self) -> Duration {
        self.access_token_ttl
    }

    /// The key tokens are verified with.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// An access token for `caller`, of the sign-in `session_id`.
    pub fn issue_access_token(&self, caller: &Caller, session_id: &str) -> Result<String, ServiceError> {
        let Some(signer) = &self.signer else {
            return Err(ServiceError::internal(
                "this process holds no signing key: only the auth service signs tokens",
            ));
        };
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
            sid: session_id.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, signer)
            .map_err(|error| ServiceError::internal(format_args!("cannot sign an access token: {error}")))
    }

    /// Verifies signature, algorithm, issuer, type and expiry, and that its sign-in goes on.
    pub fn verify_access_token(&self, token: &str) -> Result<Caller, ServiceError> {
        self.verify_session(token).map(|session| session.caller)
    }

    /// Like [`Self::verify_access_token`], with the sign-in and the expiry (for the streams that
    /// stay open: they end with the session).
    pub fn verify_session(&self, token: &str) -> Result<Session, ServiceError> {
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding_key, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ServiceError::unauthenticated(ErrorCode::TokenExpired, "the access token has expired; refresh it")
                }
                _ => ServiceError::unauthenticated(ErrorCode::InvalidToken, "the access token is not valid"),
            })?
            .claims;
        if claims.typ != ACCESS_TOKEN_TYPE {
            return Err(ServiceError::unauthenticated(ErrorCode::InvalidToken, "the access token is not valid"));
        }
        if !claims.sid.is_empty() && self.has_ended(&claims.sid) {
            return Err(ServiceError::unauthenticated(
                ErrorCode::SessionEnded,
                "this sign-in has ended; sign in again",
            ));
        }
        Ok(Session {
            caller: Caller { user_id: claims.sub, username: claims.name, is_admin: claims.adm },
            session_id: claims.sid,
            expires_at_ms: claims.exp.saturating_mul(1000),
        })
    }

    fn has_ended(&self, session_id: &str) -> bool {
        let ended = self.ended.until_ms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ended.get(session_id).is_some_and(|until| *until > crate::now_ms())
    }

    /// The sign-in `session_id` ended: its access tokens are refused until they would have
    /// expired, and the streams open under it are told.
    pub fn end_session(&self, session_id: &str) {
        if session_id.is_empty() {
            return;
        }
        let until = crate::now_ms() + i64::try_from(self.access_token_ttl.as_millis()).unwrap_or(i64::MAX / 2) + 60_000;
        {
            let mut ended = self.ended.until_ms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = crate::now_ms();
            ended.retain(|_, until| *until > now);
            ended.insert(session_id.to_string(), until);
        }
        let _ = self.ended.announced.send(session_id.to_string());
    }

    /// The sign-ins that end from now on.
    pub fn ended_sessions(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.ended.announced.subscribe()
    }

    /// The calling component named by a valid service credential in `metadata`, if any.
    pub fn service(&self, metadata: &MetadataMap) -> Option<String> {
        self.service_named_by(metadata.get(SERVICE_METADATA_KEY)?.to_str().ok()?)
    }

    /// The calling component named by the service credential `token`, if it is valid.
    pub fn service_named_by(&self, token: &str) -> Option<String> {
        let claims =
            jsonwebtoken::decode::<ServiceClaims>(token, &self.service_key, &self.service_validation).ok()?.claims;
        (claims.typ == SERVICE_TOKEN_TYPE).then_some(claims.sub)
    }

    /// The caller named by the request's `authorization` metadata, or the user a service acts for
    /// (with a valid service credential): `None` when there is neither, an error when a token is
    /// there and not valid.
    pub fn caller_from_metadata(&self, metadata: &MetadataMap) -> Result<Option<Caller>, ServiceError> {
        let Some(value) = metadata.get(AUTHORIZATION_METADATA_KEY) else {
            return Ok(self.acting_for(metadata));
        };
        let header = value.to_str().map_err(|_| {
            ServiceError::unauthenticated(ErrorCode::InvalidToken, "the authorization header is not valid")
        })?;
        let token = bearer_token(header).ok_or_else(|| {
            ServiceError::unauthenticated(ErrorCode::InvalidToken, "expected 'Authorization: Bearer <token>'")
        })?;
        self.verify_access_token(token).map(Some)
    }

    /// The user another CodeSync service acts for (a checkpoint taken as one of a file's editors).
    fn acting_for(&self, metadata: &MetadataMap) -> Option<Caller> {
        let user_id = metadata.get(ACTING_FOR_METADATA_KEY)?.to_str().ok()?;
        if !crate::is_valid_id(user_id) {
            return None;
        }
        self.service(metadata)?;
        Some(Caller { user_id: user_id.to_string(), username: String::new(), is_admin: false })
    }

    /// Like [`Self::caller_from_metadata`], but a missing token is an error too.
    pub fn require_caller(&self, metadata: &MetadataMap) -> Result<Caller, ServiceError> {
        self.caller_from_metadata(metadata)?.ok_or_else(|| {
            ServiceError::unauthenticated(
                ErrorCode::AuthenticationRequired,
                "sign in first: this request needs an access token",
            )
        })
    }

    /// A signed-in user or another CodeSync service: for the calls only those may make.
    pub fn require_caller_or_service(&self, metadata: &MetadataMap) -> Result<(), ServiceError> {
        if self.service(metadata).is_some() {
            return Ok(());
        }
        self.require_caller(metadata).map(|_| ())
    }

    /// The end user's address: from the metadata only when the gateway vouches for it, else the
    /// peer's (a direct gRPC caller is limited by its own address, whatever it claims).
    pub fn client_ip<T>(&self, request: &tonic::Request<T>) -> Option<IpAddr> {
        let vouched = self.service(request.metadata()).is_some_and(|service| service == "gateway");
        let claimed = request
            .metadata()
            .get(CLIENT_IP_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        match claimed {
            Some(address) if vouched => Some(address),
            _ => request.remote_addr().map(|address| address.ip()),
        }
    }
}

/// What a process presents to the others: its component's name, in a short-lived token under
/// the service key, renewed as it nears its end.
pub struct ServiceCredential {
    name: &'static str,
    key: EncodingKey,
    current: Mutex<(String, i64)>,
}

impl ServiceCredential {
    pub fn new(name: &'static str, key: &ServiceKey) -> Self {
        Self { name, key: EncodingKey::from_secret(&key.secret), current: Mutex::new((String::new(), 0)) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The current token.
    pub fn token(&self) -> String {
        let now = crate::now_ms() / 1000;
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.1 - now < SERVICE_TOKEN_TTL_SECS / 2 {
            let claims = ServiceClaims {
                sub: self.name.to_string(),
                typ: SERVICE_TOKEN_TYPE.to_string(),
                iss: TOKEN_ISSUER.to_string(),
                exp: now + SERVICE_TOKEN_TTL_SECS,
            };
            if let Ok(token) = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key) {
                *current = (token, claims.exp);
            }
        }
        current.0.clone()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn service(seed: u8, ttl_secs: u64) -> TokenService {
        TokenService::signer(
            &SigningKey::from_seed([seed; 32]),
            &ServiceKey::from_secret(vec![9; 64]),
            Duration::from_secs(ttl_secs),
        )
    }

    fn alice() -> Caller {
        Caller { user_id: "u-1".into(), username: "alice".into(), is_admin: false }
    }

    #[test]
    fn a_token_verifies_with_its_key_only() {
        let tokens = service(7, 900);
        let token = tokens.issue_access_token(&alice(), "s-1").unwrap();
        assert_eq!(tokens.verify_access_token(&token).unwrap(), alice());
        let other = service(8, 900);
        assert_eq!(other.verify_access_token(&token).unwrap_err().code(), ErrorCode::InvalidToken);
    }

    #[test]
    fn only_the_signing_key_signs_and_the_public_key_verifies() {
        let signing_key = SigningKey::from_seed([7; 32]);
        let service_key = ServiceKey::from_secret(vec![9; 64]);
        let auth = TokenService::signer(&signing_key, &service_key, Duration::from_secs(900));
        let verifier = TokenService::verifier(&signing_key.public_key(), &service_key, Duration::from_secs(900));
        let token = auth.issue_access_token(&alice(), "s-1").unwrap();
        assert_eq!(verifier.verify_access_token(&token).unwrap(), alice());
        assert_eq!(
            verifier.issue_access_token(&alice(), "s-1").unwrap_err().code(),
            ErrorCode::InternalError,
            "a verifier cannot mint"
        );
        // A token signed HS256 with the service key (which every process holds) is no session.
        let forged_claims = serde_json::json!({"sub": "u-1", "name": "alice", "adm": true, "typ": "access", "iss": "codesync", "iat": 0, "exp": i64::MAX / 2, "jti": "x"});
        let forged =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &forged_claims, &EncodingKey::from_secret(&[9; 64]))
                .unwrap();
        assert!(verifier.verify_access_token(&forged).is_err());
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let tokens = service(7, 900);
        let token = tokens.issue_access_token(&alice(), "s-1").unwrap();
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
        let tokens = service(7, 0);
        let token = tokens.issue_access_token(&alice(), "s-1").unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(tokens.verify_access_token(&token).unwrap_err().code(), ErrorCode::TokenExpired);
    }

    #[test]
    fn an_ended_sign_in_refuses_its_tokens_and_says_so_to_its_streams() {
        let tokens = service(7, 900);
        let first = tokens.issue_access_token(&alice(), "s-1").unwrap();
        let second = tokens.issue_access_token(&alice(), "s-2").unwrap();
        let session = tokens.verify_session(&first).unwrap();
        assert_eq!(session.session_id, "s-1");
        assert!(session.expires_at_ms > crate::now_ms());
        let mut ended = tokens.ended_sessions();
        tokens.clone().end_session("s-1");
        assert_eq!(tokens.verify_access_token(&first).unwrap_err().code(), ErrorCode::SessionEnded);
        assert!(tokens.verify_access_token(&second).is_ok(), "another sign-in goes on");
        assert_eq!(ended.try_recv().unwrap(), "s-1");
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
    fn service_credentials_vouch_for_addresses_and_acting_users_and_nothing_else_does() {
        let tokens = service(7, 900);
        let gateway = ServiceCredential::new("gateway", &ServiceKey::from_secret(vec![9; 64]));
        let history = ServiceCredential::new("history", &ServiceKey::from_secret(vec![9; 64]));
        let outsider = ServiceCredential::new("gateway", &ServiceKey::from_secret(vec![1; 64]));
        let user = "0190a000-0000-7000-8000-000000000001";
        let request = |credential: Option<&ServiceCredential>| {
            let mut request = tonic::Request::new(());
            request.metadata_mut().insert(CLIENT_IP_METADATA_KEY, "203.0.113.9".parse().unwrap());
            request.metadata_mut().insert(ACTING_FOR_METADATA_KEY, user.parse().unwrap());
            if let Some(credential) = credential {
                request.metadata_mut().insert(SERVICE_METADATA_KEY, credential.token().parse().unwrap());
            }
            request
        };
        let vouched: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(tokens.client_ip(&request(Some(&gateway))), Some(vouched));
        assert_eq!(tokens.client_ip(&request(Some(&history))), None, "only the gateway vouches for addresses");
        assert_eq!(tokens.client_ip(&request(Some(&outsider))), None, "a credential under another key is nothing");
        assert_eq!(tokens.client_ip(&request(None)), None);
        let acted = tokens.caller_from_metadata(request(Some(&history)).metadata()).unwrap().unwrap();
        assert_eq!(acted.user_id, user);
        assert_eq!(
            tokens.caller_from_metadata(request(None).metadata()).unwrap(),
            None,
            "nobody acts without a credential"
        );
        assert_eq!(tokens.caller_from_metadata(request(Some(&outsider)).metadata()).unwrap(), None);
        assert!(tokens.require_caller_or_service(request(Some(&history)).metadata()).is_ok());
        assert!(tokens.require_caller_or_service(tonic::Request::new(()).metadata()).is_err());
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
        assert_eq!(first.seed, second.seed);
        let public_path = directory.path().join("secrets").join("jwt-public-key");
        first.public_key().save_if_missing(&public_path).unwrap();
        assert_eq!(PublicKey::load(&public_path).unwrap(), Some(first.public_key()));
        let mode = std::fs::metadata(&public_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn a_short_or_garbled_key_file_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("key");
        std::fs::write(&path, "c2hvcnQ").unwrap();
        assert!(matches!(SigningKey::load_or_create(&path), Err(SigningKeyError::Invalid { .. })));
        std::fs::write(&path, "not base64 !!!").unwrap();
        assert!(matches!(SigningKey::load_or_create(&path), Err(SigningKeyError::Invalid { .. })));
        std::fs::write(&path, "not a key").unwrap();
        assert!(PublicKey::load(&path).is_err());
    }
}
