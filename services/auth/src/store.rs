//! The auth service's store: users and refresh tokens.

use codesync_common::db::{Database, Migration, is_unique_violation};
use codesync_common::{ServiceError, ServiceResult};
use sqlx::Row;
use sqlx::any::AnyRow;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "users_and_refresh_tokens",
    sql: include_str!("../../../migrations/auth/0001_users_and_refresh_tokens.sql"),
}];

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: String,
    pub token_hash: String,
    pub family_id: String,
    pub user_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Why a refresh token could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRefusal {
    Unknown,
    Expired,
    Revoked,
    /// Used before: the whole family has now been revoked.
    Reused {
        family_id: String,
        user_id: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    #[error("the username is taken")]
    UsernameTaken,
    #[error("the email is taken")]
    EmailTaken,
    #[error(transparent)]
    Other(#[from] ServiceError),
}

#[derive(Debug, Clone)]
pub struct AuthStore {
    database: Database,
}

/// Builds a `SELECT <user columns> FROM auth_users <clause>` literal at compile time.
macro_rules! const_format_user_query {
    ($clause:literal) => {
        concat!("SELECT id, username, email, password_hash, is_admin, created_at_ms FROM auth_users ", $clause)
    };
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

impl AuthStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub async fn migrate(&self) -> Result<(), codesync_common::db::DatabaseError> {
        self.database.migrate("auth", MIGRATIONS).await
    }

    /// Inserts a user; the very first user of an installation becomes its administrator.
    pub async fn insert_user(&self, user: &NewUser) -> Result<UserRecord, InsertUserError> {
        let result = sqlx::query(
            "INSERT INTO auth_users (id, username, username_key, email, password_hash, is_admin, created_at_ms, updated_at_ms) \
             SELECT $1, $2, $3, $4, $5, CASE WHEN EXISTS (SELECT 1 FROM auth_users) THEN 0 ELSE 1 END, $6, $6",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.created_at_ms)
        .execute(self.database.pool())
        .await;
        match result {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                let username_taken =
                    self.find_user_by_username(&user.username).await.map_err(InsertUserError::Other)?.is_some();
                return Err(if username_taken { InsertUserError::UsernameTaken } else { InsertUserError::EmailTaken });
            }
            Err(error) => return Err(InsertUserError::Other(error.into())),
        }
        self.find_user_by_id(&user.id)
            .await?
            .ok_or_else(|| InsertUserError::Other(ServiceError::internal("a user vanished right after its insertion")))
    }

    /// Makes the user named by `login` (a username, any case, or an email) an administrator or
    /// not; `None` when no user has that name. Their next access token (a refresh, a sign-in)
    /// carries the change.
    pub async fn set_admin(&self, login: &str, is_admin: bool) -> ServiceResult<Option<UserRecord>> {
        let login = login.trim();
        let user = match self.find_user_by_username(login).await? {
            Some(user) => Some(user),
            None => self.find_user_by_email(&login.to_lowercase()).await?,
        };
        let Some(user) = user else { return Ok(None) };
        sqlx::query("UPDATE auth_users SET is_admin = $2, updated_at_ms = $3 WHERE id = $1")
            .bind(&user.id)
            .bind(i64::from(is_admin))
            .bind(codesync_common::now_ms())
            .execute(self.database.pool())
            .await?;
        self.find_user_by_id(&user.id).await
    }

    pub async fn find_user_by_id(&self, user_id: &str) -> ServiceResult<Option<UserRecord>> {
        let row = sqlx::query(const_format_user_query!("WHERE id = $1"))
            .bind(user_id)
            .fetch_optional(self.database.pool())
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    pub async fn find_user_by_email(&self, email: &str) -> ServiceResult<Option<UserRecord>> {
        let row = sqlx::query(const_format_user_query!("WHERE email = $1"))
            .bind(email)
            .fetch_optional(self.database.pool())
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    pub async fn find_user_by_username(&self, username: &str) -> ServiceResult<Option<UserRecord>> {
        let row = sqlx::query(const_format_user_query!("WHERE username_key = $1"))
            .bind(username.to_lowercase())
            .fetch_optional(self.database.pool())
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// `(id, username)` of the users that exist among `user_ids`.
    pub async fn find_usernames(&self, user_ids: &[String]) -> ServiceResult<Vec<(String, String)>> {
        let mut profiles = Vec::with_capacity(user_ids.len());
        // Chunks keep the statement under every engine's placeholder limit.
        for chunk in user_ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|index| format!("${index}")).collect();
            let sql = format!("SELECT id, username FROM auth_users WHERE id IN ({})", placeholders.join(", "));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for user_id in chunk {
                query = query.bind(user_id);
            }
            for row in query.fetch_all(self.database.pool()).await? {
                profiles.push((row.try_get("id")?, row.try_get("username")?));
            }
        }
        Ok(profiles)
    }

    pub async fn insert_refresh_token(&self, token: &NewRefreshToken) -> ServiceResult<()> {
        sqlx::query(
            "INSERT INTO auth_refresh_tokens (id, token_hash, family_id, user_id, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(&token.token_hash)
        .bind(&token.family_id)
        .bind(&token.user_id)
        .bind(token.created_at_ms)
        .bind(token.expires_at_ms)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Uses up the token with `token_hash` and stores its successor in the same
    /// family, atomically. A token presented a second time revokes its family.
    pub async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        now_ms: i64,
        successor: impl FnOnce(&str, &str) -> NewRefreshToken,
    ) -> ServiceResult<Result<NewRefreshToken, RefreshRefusal>> {
        let mut transaction = self.database.pool().begin().await?;
        // The write comes first so that SQLite takes its write lock before any read.
        let claimed = sqlx::query(
            "UPDATE auth_refresh_tokens SET used_at_ms = $1 \
             WHERE token_hash = $2 AND used_at_ms IS NULL AND revoked_at_ms IS NULL AND expires_at_ms > $1",
        )
        .bind(now_ms)
        .bind(token_hash)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        let row = sqlx::query(
            "SELECT family_id, user_id, expires_at_ms, used_at_ms, revoked_at_ms FROM auth_refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = row else {
            transaction.rollback().await?;
            return Ok(Err(RefreshRefusal::Unknown));
        };
        let family_id: String = row.try_get("family_id")?;
        let user_id: String = row.try_get("user_id")?;
        if claimed == 1 {
            let new_token = successor(&family_id, &user_id);
            sqlx::query(
                "INSERT INTO auth_refresh_tokens (id, token_hash, family_id, user_id, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&new_token.id)
            .bind(&new_token.token_hash)
            .bind(&new_token.family_id)
            .bind(&new_token.user_id)
            .bind(new_token.created_at_ms)
            .bind(new_token.expires_at_ms)
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            return Ok(Ok(new_token));
        }
        let revoked_at_ms: Option<i64> = row.try_get("revoked_at_ms")?;
        let used_at_ms: Option<i64> = row.try_get("used_at_ms")?;
        let expires_at_ms: i64 = row.try_get("expires_at_ms")?;
        if revoked_at_ms.is_some() {
            transaction.rollback().await?;
            return Ok(Err(RefreshRefusal::Revoked));
        }
        if used_at_ms.is_some() {
            sqlx::query(
                "UPDATE auth_refresh_tokens SET revoked_at_ms = $1 WHERE family_id = $2 AND revoked_at_ms IS NULL",
            )
            .bind(now_ms)
            .bind(&family_id)
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            return Ok(Err(RefreshRefusal::Reused { family_id, user_id }));
        }
        transaction.rollback().await?;
        if expires_at_ms <= now_ms {
            return Ok(Err(RefreshRefusal::Expired));
        }
        Err(ServiceError::internal("a refresh token was neither usable nor refused"))
    }

    /// Revokes the family of the token with `token_hash`; false if there is no such token.
    /// Revokes the family of the token; its family and user when there was something to revoke.
    pub async fn revoke_family_of(&self, token_hash: &str, now_ms: i64) -> ServiceResult<Option<(String, String)>> {
        let family = sqlx::query("SELECT family_id, user_id FROM auth_refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.database.pool())
            .await?;
        let Some(family) = family else { return Ok(None) };
        let family_id: String = family.try_get("family_id")?;
        let user_id: String = family.try_get("user_id")?;
        let revoked = sqlx::query(
            "UPDATE auth_refresh_tokens SET revoked_at_ms = $1 WHERE revoked_at_ms IS NULL AND family_id = $2",
        )
        .bind(now_ms)
        .bind(&family_id)
        .execute(self.database.pool())
        .await?
        .rows_affected();
        Ok((revoked > 0).then_some((family_id, user_id)))
    }
}
