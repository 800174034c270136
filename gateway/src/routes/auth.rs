//! `/api/auth/*`: register, login, refresh, logout, me.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use codesync_proto::auth::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::timestamp;
use crate::GatewayState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, MaybeSignedIn, SignedIn};

pub fn router() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// 3 to 32 letters, digits, `_`, `-` or `.`.
    #[schema(example = "ada")]
    pub username: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 8 characters.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenBody {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    pub id: String,
    pub username: String,
    pub email: String,
    pub is_admin: bool,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub user: UserBody,
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPairBody {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: i64,
}

fn user_body(user: pb::User) -> UserBody {
    UserBody {
        id: user.id,
        username: user.username,
        email: user.email,
        is_admin: user.is_admin,
        created_at: timestamp(user.created_at_ms),
    }
}

fn session_body(session: pb::AuthSession) -> Result<SessionBody, ApiError> {
    let (Some(user), Some(tokens)) = (session.user, session.tokens) else {
        return Err(codesync_common::ServiceError::internal("the auth service sent an incomplete session").into());
    };
    Ok(SessionBody {
        user: user_body(user),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_type: "Bearer",
        expires_in: tokens.access_token_expires_in,
    })
}

/// Creates an account and signs it in. The first account of an installation is its administrator.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody, responses(
    (status = 201, description = "registered and signed in", body = SessionBody),
    (status = 400, description = "invalid username, email or password", body = ErrorBody),
    (status = 409, description = "username or email taken", body = ErrorBody),
    (status = 422, description = "missing or unknown fields", body = ErrorBody),
))]
async fn register(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    let message = pb::RegisterRequest { username: body.username, email: body.email, password: body.password };
    let session = state.clients.auth().register(visitor.context.request(message)).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(session_body(session)?)))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, description = "signed in", body = SessionBody),
    (status = 401, description = "wrong email or password", body = ErrorBody),
    (status = 429, description = "too many attempts; see Retry-After", body = ErrorBody),
))]
async fn login(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<axum::Json<SessionBody>, ApiError> {
    let message = pb::LoginRequest { email: body.email, password: body.password };
    let session = state.clients.auth().login(visitor.context.request(message)).await?.into_inner();
    Ok(axum::Json(session_body(session)?))
}

/// Exchanges a refresh token for a new pair; the old refresh token is used up.
/// Presenting a used refresh token again signs out every session of its login.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshTokenBody, responses(
    (status = 200, description = "a new token pair", body = TokenPairBody),
    (status = 401, description = "unknown, expired, revoked or reused refresh token", body = ErrorBody),
))]
async fn refresh(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiJson(body): ApiJson<RefreshTokenBody>,
) -> Result<axum::Json<TokenPairBody>, ApiError> {
    let message = pb::RefreshRequest { refresh_token: body.refresh_token };
    let pair = state.clients.auth().refresh(visitor.context.request(message)).await?.into_inner();
    Ok(axum::Json(TokenPairBody {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        token_type: "Bearer",
        expires_in: pair.access_token_expires_in,
    }))
}

/// Signs out: revokes the refresh token and every token rotated from the same login.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshTokenBody, responses(
    (status = 204, description = "signed out"),
    (status = 400, description = "no refresh token given", body = ErrorBody),
))]
async fn logout(
    State(state): State<GatewayState>,
    visitor: MaybeSignedIn,
    ApiJson(body): ApiJson<RefreshTokenBody>,
) -> Result<StatusCode, ApiError> {
    let message = pb::LogoutRequest { refresh_token: body.refresh_token };
    state.clients.auth().logout(visitor.context.request(message)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, description = "the signed-in user", body = UserBody),
    (status = 401, description = "no, invalid or expired access token", body = ErrorBody),
))]
async fn me(State(state): State<GatewayState>, user: SignedIn) -> Result<axum::Json<UserBody>, ApiError> {
    let current = state.clients.auth().get_current_user(user.context.request(pb::GetCurrentUserRequest {})).await?;
    Ok(axum::Json(user_body(current.into_inner())))
}
