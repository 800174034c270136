//! The auth service: accounts with argon2id passwords, JWT access tokens,
//! opaque refresh tokens that rotate on every use (reuse revokes the whole
//! family), logout, and login rate limits per IP address and per account.
#![forbid(unsafe_code)]

mod grpc;
mod password;
pub mod store;
mod validation;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use codesync_common::bus::EventBus;
use codesync_common::events::{Event, Kind, schema};
use codesync_common::identity::{Caller, TokenService};
use codesync_common::rate_limit::{RateLimiter, retry_after_secs};
use codesync_common::redis::Redis;
use codesync_common::{ErrorCode, ServiceError, ServiceResult, new_id, now_ms};
use codesync_proto::auth::v1 as pb;
use codesync_proto::auth::v1::auth_service_server::AuthServiceServer;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::{AuthStore, InsertUserError, NewRefreshToken, NewUser, RefreshRefusal, UserRecord};

/// The most users one `GetUserProfiles` call may name.
const MAX_PROFILES_PER_CALL: usize = 1000;
/// Refresh tokens are 32 random bytes, base64url: 43 characters.
const MAX_REFRESH_TOKEN_CHARS: usize = 128;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub refresh_token_ttl: Duration,
    /// Login attempts one IP address may make per minute.
    pub login_attempts_per_ip_per_minute: u32,
    /// Failed logins one account may have from one address per 15 minutes before that address
    /// must wait (the owner, elsewhere, is never locked out by someone else's guesses).
    pub login_failures_per_account: u32,
    /// Accounts one address may register per hour.
    pub registrations_per_ip_per_hour: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            login_attempts_per_ip_per_minute: 20,
            login_failures_per_account: 10,
            registrations_per_ip_per_hour: 20,
        }
    }
}

/// The gRPC implementation of `codesync.auth.v1.AuthService`.
pub struct AuthGrpcService {
    store: AuthStore,
    tokens: TokenService,
    config: AuthConfig,
    login_attempts_per_ip: RateLimiter,
    login_failures_per_account: RateLimiter,
    registrations_per_ip: RateLimiter,
    events: Arc<dyn EventBus>,
}

impl AuthGrpcService {
    /// New accounts and sessions are announced on `analytics-events`.
    /// With `redis`, the login and registration limits are shared by every auth replica.
    pub fn new(
        store: AuthStore,
        tokens: TokenService,
        config: AuthConfig,
        events: Arc<dyn EventBus>,
        redis: Option<Redis>,
    ) -> Self {
        let minute = Duration::from_secs(60);
        let login_attempts_per_ip =
            RateLimiter::shared("login-ip", config.login_attempts_per_ip_per_minute, minute, redis.clone());
        let login_failures_per_account =
            RateLimiter::shared("login-failures", config.login_failures_per_account, 15 * minute, redis.clone());
        let registrations_per_ip =
            RateLimiter::shared("register-ip", config.registrations_per_ip_per_hour, 60 * minute, redis);
        Self { store, tokens, config, login_attempts_per_ip, login_failures_per_account, registrations_per_ip, events }
    }

    /// A sign-in ended: its access tokens stop working in every process, and its open streams
    /// end. The event must reach the others: while its queue stays full, the sign-out is refused.
    async fn end_session(&self, user_id: &str, family_id: &str) -> ServiceResult<()> {
        self.tokens.end_session(family_id);
        let ended = schema::SessionEnded { user_id: user_id.to_string(), session_id: family_id.to_string() };
        self.events.publish_durable(Event::new(user_id, Kind::SessionEnded(ended))).await
    }

    /// An account was made (`Kind::UserRegistered`) or a session began (`Kind::SessionStarted`).
    fn announce(&self, kind: fn(schema::UserChange) -> Kind, user: &UserRecord) {
        let change = schema::UserChange { user_id: user.id.clone(), username: user.username.clone() };
        self.events.publish(Event::new(&user.id, kind(change)));
    }

    pub fn into_grpc_server(self) -> AuthServiceServer<Self> {
        AuthServiceServer::new(self)
    }

    async fn issue_session(&self, user: &UserRecord, family_id: Option<String>) -> ServiceResult<pb::TokenPair> {
        let family_id = family_id.unwrap_or_else(new_id);
        let access_token = self.tokens.issue_access_token(&caller_of(user), &family_id)?;
        let (refresh_token, record) = self.new_refresh_token(family_id, user.id.clone(), now_ms());
        self.store.insert_refresh_token(&record).await?;
        Ok(self.token_pair(access_token, refresh_token))
    }

    fn new_refresh_token(&self, family_id: String, user_id: String, now_ms: i64) -> (String, NewRefreshToken) {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = URL_SAFE_NO_PAD.encode(secret);
        let ttl_ms = i64::try_from(self.config.refresh_token_ttl.as_millis()).unwrap_or(i64::MAX);
        let record = NewRefreshToken {
            id: new_id(),
            token_hash: hash_refresh_token(&token),
            family_id,
            user_id,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        (token, record)
    }

    fn token_pair(&self, access_token: String, refresh_token: String) -> pb::TokenPair {
        pb::TokenPair {
            access_token,
            refresh_token,
            access_token_expires_in: i64::try_from(self.tokens.access_token_ttl().as_secs()).unwrap_or(i64::MAX),
        }
    }

    async fn check_login_rate_limits(&self, ip_key: &str, failures_key: &str) -> ServiceResult<()> {
        let refusal = match self.login_attempts_per_ip.try_acquire(ip_key).await {
            Ok(()) => self.login_failures_per_account.check(failures_key).await,
            Err(wait) => Err(wait),
        };
        refusal.map_err(|wait| ServiceError::RateLimited {
            message: "too many login attempts; try again later".to_string(),
            retry_after_secs: retry_after_secs(wait),
        })
    }

    async fn register(&self, request: pb::RegisterRequest, ip_key: String) -> ServiceResult<pb::AuthSession> {
        if let Err(wait) = self.registrations_per_ip.try_acquire(&ip_key).await {
            return Err(ServiceError::RateLimited {
                message: "too many accounts were registered from this address; try again later".to_string(),
                retry_after_secs: retry_after_secs(wait),
            });
        }
        let username = validation::username(&request.username)?;
        let email = validation::email(&request.email)?;
        validation::password(&request.password)?;
        let password_hash = password::hash_password(request.password).await?;
        let new_user = NewUser { id: new_id(), username, email, password_hash, created_at_ms: now_ms() };
        let user = match self.store.insert_user(&new_user).await {
            Ok(user) => user,
            Err(InsertUserError::UsernameTaken) => {
                return Err(ServiceError::already_exists(ErrorCode::UsernameTaken, "this username is already taken"));
            }
            Err(InsertUserError::EmailTaken) => {
                return Err(ServiceError::already_exists(
                    ErrorCode::EmailTaken,
                    "an account with this email already exists",
                ));
            }
            Err(InsertUserError::Other(error)) => return Err(error),
        };
        tracing::info!(user.id = %user.id, user.is_admin = user.is_admin, "registered a user");
        let tokens = self.issue_session(&user, None).await?;
        self.announce(Kind::UserRegistered, &user);
        self.announce(Kind::SessionStarted, &user);
        Ok(pb::AuthSession { user: Some(user_message(&user)), tokens: Some(tokens) })
    }

    async fn login(&self, request: pb::LoginRequest, ip_key: String) -> ServiceResult<pb::AuthSession> {
        let invalid_credentials =
            || ServiceError::unauthenticated(ErrorCode::InvalidCredentials, "the email or password is incorrect");
        // A malformed email cannot belong to an account; it still counts as an attempt.
        let account_key = validation::email(&request.email).unwrap_or_else(|_| request.email.trim().to_lowercase());
        // Failures count per account and address: guesses from one address slow that address
        // down, not the account's owner signing in from elsewhere.
        let failures_key = format!("{account_key}|{ip_key}");
        self.check_login_rate_limits(&ip_key, &failures_key).await?;
        if request.password.chars().count() > validation::PASSWORD_MAX_CHARS {
            return Err(invalid_credentials());
        }
        let user = self.store.find_user_by_email(&account_key).await?;
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        let password_matches = password::verify_password(request.password, stored_hash).await?;
        let Some(user) = user.filter(|_| password_matches) else {
            let _ = self.login_failures_per_account.try_acquire(&failures_key).await;
            tracing::info!(client.ip = %ip_key, "refused a login with wrong credentials");
            return Err(invalid_credentials());
        };
        self.login_failures_per_account.reset(&failures_key).await;
        let tokens = self.issue_session(&user, None).await?;
        self.announce(Kind::SessionStarted, &user);
        Ok(pb::AuthSession { user: Some(user_message(&user)), tokens: Some(tokens) })
    }

    async fn refresh(&self, request: pb::RefreshRequest) -> ServiceResult<pb::TokenPair> {
        let presented = request.refresh_token.trim();
        if presented.is_empty() || presented.len() > MAX_REFRESH_TOKEN_CHARS {
            return Err(ServiceError::unauthenticated(
                ErrorCode::InvalidRefreshToken,
                "the refresh token is not valid",
            ));
        }
        let mut new_token_secret = String::new();
        let now_ms = now_ms();
        let rotation = self
            .store
            .rotate_refresh_token(&hash_refresh_token(presented), now_ms, |family_id, user_id| {
                let (token, record) = self.new_refresh_token(family_id.to_string(), user_id.to_string(), now_ms);
                new_token_secret = token;
                record
            })
            .await?;
        let new_record = match rotation {
            Ok(record) => record,
            Err(RefreshRefusal::Unknown) => {
                return Err(ServiceError::unauthenticated(
                    ErrorCode::InvalidRefreshToken,
                    "the refresh token is not valid",
                ));
            }
            Err(RefreshRefusal::Expired) => {
                return Err(ServiceError::unauthenticated(
                    ErrorCode::RefreshTokenExpired,
                    "the refresh token has expired; sign in again",
                ));
            }
            Err(RefreshRefusal::Revoked) => {
                return Err(ServiceError::unauthenticated(
                    ErrorCode::RefreshTokenRevoked,
                    "the refresh token was revoked; sign in again",
                ));
            }
            Err(RefreshRefusal::Reused { family_id, user_id }) => {
                tracing::warn!(user.id = %user_id, token.family = %family_id, "a used refresh token was presented again; revoked its family");
                self.end_session(&user_id, &family_id).await?;
                return Err(ServiceError::unauthenticated(
                    ErrorCode::RefreshTokenReused,
                    "the refresh token was already used; every session of this login was signed out",
                ));
            }
        };
        let user = self.store.find_user_by_id(&new_record.user_id).await?.ok_or_else(|| {
            ServiceError::unauthenticated(ErrorCode::InvalidRefreshToken, "the account no longer exists")
        })?;
        let access_token = self.tokens.issue_access_token(&caller_of(&user), &new_record.family_id)?;
        Ok(self.token_pair(access_token, new_token_secret))
    }

    async fn logout(&self, request: pb::LogoutRequest) -> ServiceResult<pb::LogoutResponse> {
        let presented = request.refresh_token.trim();
        if presented.is_empty() {
            return Err(ServiceError::invalid(ErrorCode::MissingRefreshToken, "the refresh token is required"));
        }
        if presented.len() <= MAX_REFRESH_TOKEN_CHARS
            && let Some((family_id, user_id)) =
                self.store.revoke_family_of(&hash_refresh_token(presented), now_ms()).await?
        {
            self.end_session(&user_id, &family_id).await?;
        }
        Ok(pb::LogoutResponse {})
    }

    async fn current_user(&self, caller: Caller) -> ServiceResult<pb::User> {
        let user =
            self.store.find_user_by_id(&caller.user_id).await?.ok_or_else(|| {
                ServiceError::unauthenticated(ErrorCode::InvalidToken, "the account no longer exists")
            })?;
        Ok(user_message(&user))
    }

    async fn user_profiles(&self, request: pb::GetUserProfilesRequest) -> ServiceResult<pb::GetUserProfilesResponse> {
        if request.user_ids.len() > MAX_PROFILES_PER_CALL {
            return Err(ServiceError::invalid(
                ErrorCode::TooManyIds,
                format!("at most {MAX_PROFILES_PER_CALL} users may be looked up at once"),
            ));
        }
        let mut user_ids: Vec<String> =
            request.user_ids.into_iter().filter(|user_id| codesync_common::is_valid_id(user_id)).collect();
        user_ids.sort();
        user_ids.dedup();
        let profiles = self
            .store
            .find_usernames(&user_ids)
            .await?
            .into_iter()
            .map(|(id, username)| pb::UserProfile { id, username })
            .collect();
        Ok(pb::GetUserProfilesResponse { profiles })
    }
}

fn caller_of(user: &UserRecord) -> Caller {
    Caller { user_id: user.id.clone(), username: user.username.clone(), is_admin: user.is_admin }
}

fn user_message(user: &UserRecord) -> pb::User {
    pb::User {
        id: user.id.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        is_admin: user.is_admin,
        created_at_ms: user.created_at_ms,
    }
}

fn hash_refresh_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}
