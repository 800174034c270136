//! The rooms service's store: rooms, members and files.

use codesync_common::bus::Staged;
use codesync_common::db::{Database, Migration, is_unique_violation};
use codesync_common::paths;
use codesync_common::{ErrorCode, ServiceError, ServiceResult};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Role;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "rooms_members_files",
        sql: include_str!("../../../migrations/rooms/0001_rooms_members_files.sql"),
    },
    Migration {
        version: 2,
        name: "deleted_files",
        sql: include_str!("../../../migrations/rooms/0002_deleted_files.sql"),
    },
];

/// How many rooms one listing returns at most.
pub const MAX_LISTED_ROOMS: i64 = 500;

#[derive(Debug, Clone)]
pub struct RoomRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub is_public: bool,
    pub owner_id: String,
    pub invite_code: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub member_count: i64,
    /// The role of the user the room was loaded for.
    pub caller_role: Option<Role>,
}

#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub room_id: String,
    pub user_id: String,
    pub role: Role,
    pub joined_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct FileRecord {
    pub id: String,
    pub room_id: String,
    pub filename: String,
    pub language: String,
    /// Loaded only where asked for.
    pub content: Option<String>,
    pub size_bytes: i64,
    pub created_by: String,
    pub updated_by: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A file that was deleted (by itself or with its room).
#[derive(Debug, Clone)]
pub struct DeletedFile {
    pub file_id: String,
    pub room_id: String,
    pub deleted_by: String,
}

/// What an update of a file changes.
#[derive(Debug, Clone, Default)]
pub struct FileChanges {
    /// The new name and its language.
    pub rename: Option<(String, String)>,
    pub content: Option<String>,
}

/// The outcome of a write that must keep a name unique.
#[derive(Debug)]
pub enum UniqueWrite<T> {
    Done(T),
    Taken,
}

impl UniqueWrite<()> {
    /// A unique-constraint violation is an answer the caller handles (pick another name or
    /// code), not a store failure.
    fn from_update(result: Result<sqlx::any::AnyQueryResult, sqlx::Error>) -> ServiceResult<Self> {
        match result {
            Ok(_) => Ok(UniqueWrite::Done(())),
            Err(error) if is_unique_violation(&error) => Ok(UniqueWrite::Taken),
            Err(error) => Err(error.into()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RoomsStore {
    database: Database,
}

// `$1` is the user the room is loaded for ('' for an anonymous caller).
const ROOM_SELECT: &str = "SELECT r.id, r.name, r.description, r.is_public, r.owner_id, r.invite_code, \
     r.created_at_ms, r.updated_at_ms, m.role AS caller_role, \
     (SELECT COUNT(*) FROM room_members c WHERE c.room_id = r.id) AS member_count \
     FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $1 ";

fn room_from_row(row: &AnyRow) -> Result<RoomRecord, sqlx::Error> {
    let caller_role: Option<String> = row.try_get("caller_role")?;
    Ok(RoomRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        is_public: row.try_get::<i64, _>("is_public")? != 0,
        owner_id: row.try_get("owner_id")?,
        invite_code: row.try_get("invite_code")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        member_count: row.try_get("member_count")?,
        caller_role: caller_role.as_deref().and_then(Role::from_db),
    })
}

fn member_from_row(row: &AnyRow) -> Result<MemberRecord, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(MemberRecord {
        room_id: row.try_get("room_id")?,
        user_id: row.try_get("user_id")?,
        role: Role::from_db(&role).ok_or_else(|| sqlx::Error::Decode(format!("unknown role '{role}'").into()))?,
        joined_at_ms: row.try_get("joined_at_ms")?,
    })
}

const FILE_COLUMNS: &str =
    "id, room_id, filename, language, size_bytes, created_by, updated_by, created_at_ms, updated_at_ms";

fn file_from_row(row: &AnyRow, with_content: bool) -> Result<FileRecord, sqlx::Error> {
    Ok(FileRecord {
        id: row.try_get("id")?,
        room_id: row.try_get("room_id")?,
        filename: row.try_get("filename")?,
        language: row.try_get("language")?,
        content: if with_content { Some(row.try_get("content")?) } else { None },
        size_bytes: row.try_get("size_bytes")?,
        created_by: row.try_get("created_by")?,
        updated_by: row.try_get("updated_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl RoomsStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub async fn migrate(&self) -> Result<(), codesync_common::db::DatabaseError> {
        self.database.migrate("rooms", MIGRATIONS).await
    }

    /// Creates the room with its owner as first member.
    pub async fn insert_room(&self, room: &RoomRecord, staged: &mut Staged<'_>) -> ServiceResult<UniqueWrite<()>> {
        let mut transaction = self.database.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO rooms (id, name, description, is_public, owner_id, invite_code, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&room.id)
        .bind(&room.name)
        .bind(&room.description)
        .bind(i64::from(room.is_public))
        .bind(&room.owner_id)
        .bind(&room.invite_code)
        .bind(room.created_at_ms)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {}
            // The only unique column a new room can collide on is its random invite code.
            Err(error) if is_unique_violation(&error) => return Ok(UniqueWrite::Taken),
            Err(error) => return Err(error.into()),
        }
        sqlx::query("INSERT INTO room_members (room_id, user_id, role, joined_at_ms) VALUES ($1, $2, $3, $4)")
            .bind(&room.id)
            .bind(&room.owner_id)
            .bind(Role::Owner.as_db())
            .bind(room.created_at_ms)
            .execute(&mut *transaction)
            .await?;
        staged.store_in(&mut transaction).await?;
        transaction.commit().await?;
        Ok(UniqueWrite::Done(()))
    }

    pub async fn find_room(&self, room_id: &str, for_user_id: &str) -> ServiceResult<Option<RoomRecord>> {
        let sql = format!("{ROOM_SELECT} WHERE r.id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(for_user_id)
            .bind(room_id)
            .fetch_optional(self.database.pool())
            .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    pub async fn find_room_by_invite_code(
        &self,
        invite_code: &str,
        for_user_id: &str,
    ) -> ServiceResult<Option<RoomRecord>> {
        let sql = format!("{ROOM_SELECT} WHERE r.invite_code = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(for_user_id)
            .bind(invite_code)
            .fetch_optional(self.database.pool())
            .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    /// The rooms `for_user_id` is a member of, and every public room.
    pub async fn list_rooms(&self, for_user_id: &str) -> ServiceResult<Vec<RoomRecord>> {
        let sql = format!(
            "{ROOM_SELECT} WHERE r.is_public = $2 OR m.user_id IS NOT NULL ORDER BY r.updated_at_ms DESC, r.id DESC LIMIT {MAX_LISTED_ROOMS}"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(for_user_id).bind(1_i64).fetch_all(self.database.pool()).await?;
        Ok(rows.iter().map(room_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn update_room(
        &self,
        room_id: &str,
        name: &str,
        description: &str,
        is_public: bool,
        now_ms: i64,
    ) -> ServiceResult<()> {
        sqlx::query("UPDATE rooms SET name = $1, description = $2, is_public = $3, updated_at_ms = $4 WHERE id = $5")
            .bind(name)
            .bind(description)
            .bind(i64::from(is_public))
            .bind(now_ms)
            .bind(room_id)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    pub async fn set_invite_code(
        &self,
        room_id: &str,
        invite_code: &str,
        now_ms: i64,
    ) -> ServiceResult<UniqueWrite<()>> {
        let result = sqlx::query("UPDATE rooms SET invite_code = $1, updated_at_ms = $2 WHERE id = $3")
            .bind(invite_code)
            .bind(now_ms)
            .bind(room_id)
            .execute(self.database.pool())
            .await;
        UniqueWrite::from_update(result)
    }

    /// Deletes the room with its members and files, leaving a [`DeletedFile`] record of each file.
    pub async fn delete_room(
        &self,
        room_id: &str,
        deleted_by: &str,
        now_ms: i64,
        staged: &mut Staged<'_>,
    ) -> ServiceResult<()> {
        let mut transaction = self.database.pool().begin().await?;
        sqlx::query(
            "INSERT INTO deleted_files (file_id, room_id, deleted_by, deleted_at_ms) \
             SELECT id, room_id, $1, $2 FROM room_files WHERE room_id = $3 ON CONFLICT (file_id) DO NOTHING",
        )
        .bind(deleted_by)
        .bind(now_ms)
        .bind(room_id)
        .execute(&mut *transaction)
        .await?;
        // The files that go with the room, in its event: their documents go too. Read after the
        // first write, which took SQLite's write lock: a read first would have to upgrade its
        // lock later, and SQLite refuses that at once ("database is locked") while another
        // connection writes.
        let file_ids: Vec<String> = sqlx::query("SELECT id FROM room_files WHERE room_id = $1")
            .bind(room_id)
            .fetch_all(&mut *transaction)
            .await?
            .iter()
            .map(|row| row.get::<String, _>("id"))
            .collect();
        for event in staged.events_mut() {
            if let codesync_common::events::Kind::RoomDeleted(deleted) = &mut event.kind {
                deleted.file_ids = file_ids.clone();
            }
        }
        // Deleted explicitly too, so that no engine setting about foreign keys matters.
        sqlx::query("DELETE FROM room_files WHERE room_id = $1").bind(room_id).execute(&mut *transaction).await?;
        sqlx::query("DELETE FROM room_members WHERE room_id = $1").bind(room_id).execute(&mut *transaction).await?;
        sqlx::query("DELETE FROM rooms WHERE id = $1").bind(room_id).execute(&mut *transaction).await?;
        staged.store_in(&mut transaction).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Adds `user_id` with `role` unless it is a member already; true if added (and only then
    /// are `staged`'s events stored).
    pub async fn add_member_if_absent(
        &self,
        room_id: &str,
        user_id: &str,
        role: Role,
        now_ms: i64,
        staged: &mut Staged<'_>,
    ) -> ServiceResult<bool> {
        let mut transaction = self.database.pool().begin().await?;
        let added = sqlx::query(
            "INSERT INTO room_members (room_id, user_id, role, joined_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(role.as_db())
        .bind(now_ms)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if added == 1 {
            staged.store_in(&mut transaction).await?;
        }
        transaction.commit().await?;
        Ok(added == 1)
    }

    pub async fn list_members(&self, room_id: &str) -> ServiceResult<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT room_id, user_id, role, joined_at_ms FROM room_members WHERE room_id = $1 ORDER BY joined_at_ms, user_id",
        )
        .bind(room_id)
        .fetch_all(self.database.pool())
        .await?;
        Ok(rows.iter().map(member_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn find_member(&self, room_id: &str, user_id: &str) -> ServiceResult<Option<MemberRecord>> {
        let row = sqlx::query(
            "SELECT room_id, user_id, role, joined_at_ms FROM room_members WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(self.database.pool())
        .await?;
        Ok(row.as_ref().map(member_from_row).transpose()?)
    }

    /// Changes a non-owner member's role; false if there is no such member.
    pub async fn set_member_role(
        &self,
        room_id: &str,
        user_id: &str,
        role: Role,
        staged: &mut Staged<'_>,
    ) -> ServiceResult<bool> {
        let mut transaction = self.database.pool().begin().await?;
        let updated =
            sqlx::query("UPDATE room_members SET role = $1 WHERE room_id = $2 AND user_id = $3 AND role <> $4")
                .bind(role.as_db())
                .bind(room_id)
                .bind(user_id)
                .bind(Role::Owner.as_db())
                .execute(&mut *transaction)
                .await?
                .rows_affected();
        if updated == 1 {
            staged.store_in(&mut transaction).await?;
        }
        transaction.commit().await?;
        Ok(updated == 1)
    }

    /// Removes a non-owner member; false if there is no such member.
    pub async fn remove_member(&self, room_id: &str, user_id: &str, staged: &mut Staged<'_>) -> ServiceResult<bool> {
        let mut transaction = self.database.pool().begin().await?;
        let removed = sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 AND role <> $3")
            .bind(room_id)
            .bind(user_id)
            .bind(Role::Owner.as_db())
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        if removed == 1 {
            staged.store_in(&mut transaction).await?;
        }
        transaction.commit().await?;
        Ok(removed == 1)
    }

    pub async fn count_files(&self, room_id: &str) -> ServiceResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS file_count FROM room_files WHERE room_id = $1")
            .bind(room_id)
            .fetch_one(self.database.pool())
            .await?;
        Ok(row.try_get("file_count")?)
    }

    pub async fn insert_file(&self, file: &FileRecord, staged: &mut Staged<'_>) -> ServiceResult<UniqueWrite<()>> {
        self.insert_files(std::slice::from_ref(file), staged).await
    }

    /// Creates files in one transaction, each path checked against the room's others (by case,
    /// and as a file against folders) and the room's file count against its cap, while the room's
    /// paths cannot change: concurrent creations and imports cannot pass the cap together.
    pub async fn insert_files(&self, files: &[FileRecord], staged: &mut Staged<'_>) -> ServiceResult<UniqueWrite<()>> {
        let Some(room_id) = files.first().map(|file| file.room_id.as_str()) else { return Ok(UniqueWrite::Done(())) };
        let mut transaction = self.database.pool().begin().await?;
        let mut taken = lock_paths(&mut transaction, room_id).await?;
        if taken.len() + files.len() > crate::MAX_FILES_PER_ROOM as usize {
            return Err(crate::too_many_files(taken.len(), files.len()));
        }
        for file in files {
            if let Some(clash) = paths::clash(&file.filename, taken.iter().map(|(_, path)| path.as_str())) {
                return Err(clash.into_service_error());
            }
            taken.push((file.id.clone(), file.filename.clone()));
            let content = file.content.as_deref().unwrap_or_default();
            let result = sqlx::query(
                "INSERT INTO room_files (id, room_id, filename, language, content, size_bytes, created_by, updated_by, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&file.id)
            .bind(&file.room_id)
            .bind(&file.filename)
            .bind(&file.language)
            .bind(content)
            .bind(file.size_bytes)
            .bind(&file.created_by)
            .bind(&file.updated_by)
            .bind(file.created_at_ms)
            .bind(file.updated_at_ms)
            .execute(&mut *transaction)
            .await;
            if let UniqueWrite::Taken = UniqueWrite::from_update(result)? {
                return Ok(UniqueWrite::Taken);
            }
        }
        staged.store_in(&mut transaction).await?;
        transaction.commit().await?;
        Ok(UniqueWrite::Done(()))
    }

    /// Moves files to new paths in one transaction (a folder's move): every new path is checked
    /// against the room's paths as they will be, and a file that moved or went meanwhile fails
    /// the whole move.
    pub async fn rename_files(
        &self,
        room_id: &str,
        renames: &[Rename],
        updated_by: &str,
        now_ms: i64,
        staged: &mut Staged<'_>,
    ) -> ServiceResult<UniqueWrite<()>> {
        let mut transaction = self.database.pool().begin().await?;
        let current = lock_paths(&mut transaction, room_id).await?;
        let moving = |id: &str| renames.iter().any(|rename| rename.file_id == id);
        let mut taken: Vec<String> = current.into_iter().filter(|(id, _)| !moving(id)).map(|(_, path)| path).collect();
        for rename in renames {
            if let Some(clash) = paths::clash(&rename.to, taken.iter().map(String::as_str)) {
                return Err(clash.into_service_error());
            }
            taken.push(rename.to.clone());
        }
        // In two steps: a folder moved into its own parent (`a/b` to `a`) takes paths its files
        // still hold, and the exact-path unique index is checked row by row. First each file goes
        // to a path no file can have (a control character, refused in names), then to its own.
        for rename in renames {
            let result =
                sqlx::query("UPDATE room_files SET filename = $1 WHERE id = $2 AND room_id = $3 AND filename = $4")
                    .bind(format!("\u{1}moving/{}", rename.file_id))
                    .bind(&rename.file_id)
                    .bind(room_id)
                    .bind(&rename.from)
                    .execute(&mut *transaction)
                    .await?;
            if result.rows_affected() != 1 {
                // The file moved or went since the caller listed the folder.
                return Err(ServiceError::conflict(ErrorCode::Conflict, "the folder changed meanwhile; try again"));
            }
        }
        for rename in renames {
            let result = sqlx::query(
                "UPDATE room_files SET filename = $1, language = $2, updated_by = $3, updated_at_ms = $4 \
                 WHERE id = $5 AND room_id = $6 AND filename = $7",
            )
            .bind(&rename.to)
            .bind(&rename.language)
            .bind(updated_by)
            .bind(now_ms)
            .bind(&rename.file_id)
            .bind(room_id)
            .bind(format!("\u{1}moving/{}", rename.file_id))
            .execute(&mut *transaction)
            .await;
            match result {
                Ok(done) if done.rows_affected() != 1 => {
                    return Err(ServiceError::conflict(ErrorCode::Conflict, "the folder changed meanwhile; try again"));
                }
                Ok(_) => {}
                Err(error) if is_unique_violation(&error) => return Ok(UniqueWrite::Taken),
                Err(error) => return Err(error.into()),
            }
        }
        staged.store_in(&mut transaction).await?;
        transaction.commit().await?;
        Ok(UniqueWrite::Done(()))
    }

    pub async fn list_files(&self, room_id: &str) -> ServiceResult<Vec<FileRecord>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM room_files WHERE room_id = $1 ORDER BY filename");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(room_id).fetch_all(self.database.pool()).await?;
        Ok(rows.iter().map(|row| file_from_row(row, false)).collect::<Result<_, _>>()?)
    }

    pub async fn find_file(&self, file_id: &str, with_content: bool) -> ServiceResult<Option<FileRecord>> {
        let content_column = if with_content { ", content" } else { "" };
        let sql = format!("SELECT {FILE_COLUMNS}{content_column} FROM room_files WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(file_id).fetch_optional(self.database.pool()).await?;
        Ok(row.as_ref().map(|row| file_from_row(row, with_content)).transpose()?)
    }

    /// Renames the file and/or replaces its content; `None` keeps the current value.
    pub async fn update_file(
        &self,
        room_id: &str,
        file_id: &str,
        changes: &FileChanges,
        updated_by: &str,
        now_ms: i64,
        staged: &mut Staged<'_>,
    ) -> ServiceResult<UniqueWrite<()>> {
        let mut transaction = self.database.pool().begin().await?;
        if let Some((path, _)) = &changes.rename {
            let others = lock_paths(&mut transaction, room_id).await?;
            let others = others.iter().filter(|(id, _)| id != file_id).map(|(_, path)| path.as_str());
            if let Some(clash) = paths::clash(path, others) {
                return Err(clash.into_service_error());
            }
        }
        let (filename, language) = match &changes.rename {
            Some((filename, language)) => (Some(filename.as_str()), Some(language.as_str())),
            None => (None, None),
        };
        let size_bytes = changes.content.as_ref().map(|content| i64::try_from(content.len()).unwrap_or(i64::MAX));
        let result = sqlx::query(
            "UPDATE room_files SET filename = COALESCE($1, filename), language = COALESCE($2, language), \
             content = COALESCE($3, content), size_bytes = COALESCE($4, size_bytes), updated_by = $5, updated_at_ms = $6 \
             WHERE id = $7",
        )
        .bind(filename)
        .bind(language)
        .bind(changes.content.as_deref())
        .bind(size_bytes)
        .bind(updated_by)
        .bind(now_ms)
        .bind(file_id)
        .execute(&mut *transaction)
        .await;
        let written = UniqueWrite::from_update(result)?;
        if let UniqueWrite::Done(()) = written {
            staged.store_in(&mut transaction).await?;
            transaction.commit().await?;
        }
        Ok(written)
    }

    /// Deletes the file, leaving a [`DeletedFile`] record of it.
    pub async fn delete_file(
        &self,
        file: &FileRecord,
        deleted_by: &str,
        now_ms: i64,
        staged: &mut Staged<'_>,
    ) -> ServiceResult<()> {
        let mut transaction = self.database.pool().begin().await?;
        sqlx::query(
            "INSERT INTO deleted_files (file_id, room_id, deleted_by, deleted_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (file_id) DO NOTHING",
        )
        .bind(&file.id)
        .bind(&file.room_id)
        .bind(deleted_by)
        .bind(now_ms)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM room_files WHERE id = $1").bind(&file.id).execute(&mut *transaction).await?;
        staged.store_in(&mut transaction).await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn find_deleted_file(&self, file_id: &str) -> ServiceResult<Option<DeletedFile>> {
        let row = sqlx::query("SELECT file_id, room_id, deleted_by FROM deleted_files WHERE file_id = $1")
            .bind(file_id)
            .fetch_optional(self.database.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(DeletedFile {
            file_id: row.try_get("file_id")?,
            room_id: row.try_get("room_id")?,
            deleted_by: row.try_get("deleted_by")?,
        }))
    }
}

/// A file's move to a new path (its language follows the new name).
#[derive(Debug, Clone)]
pub struct Rename {
    pub file_id: String,
    pub from: String,
    pub to: String,
    pub language: String,
}

/// Takes the room's row lock, so that the room's file paths change one transaction at a time
/// (the uniqueness rules span rows: case, files against folders), and answers the paths.
async fn lock_paths(connection: &mut sqlx::AnyConnection, room_id: &str) -> ServiceResult<Vec<(String, String)>> {
    sqlx::query("UPDATE rooms SET updated_at_ms = updated_at_ms WHERE id = $1")
        .bind(room_id)
        .execute(&mut *connection)
        .await?;
    let rows = sqlx::query("SELECT id, filename FROM room_files WHERE room_id = $1")
        .bind(room_id)
        .fetch_all(&mut *connection)
        .await?;
    Ok(rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("filename")?))).collect::<Result<_, sqlx::Error>>()?)
}
