//! Users, index grants and API keys in SQLite (the `default` database) —
//! the source of truth that admins list and change.
//!
//! ```sql
//! auth_users(username PK, password_hash, role, disabled, created_at, updated_at)
//! auth_index_grants(username, index_name, created_at; PK(username, index_name))
//! auth_api_keys(id PK, username, name, key_hash, role, indexes JSON, created_at, revoked_at)
//! ```
//!
//! Times are Unix seconds. The hot path (every request of every component)
//! never reads these tables: it reads the KV view ([`crate::session`],
//! [`crate::apikey`]) that [`crate::service`] rewrites after each change.

use ragspin_core::{Error, Result, Rows, Sql, SqlValue};
use serde::Serialize;

use crate::roles::{IndexScope, Role};

/// The idempotent schema, one statement each.
pub const MIGRATIONS: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS auth_users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'reader')),
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS auth_index_grants (
        username TEXT NOT NULL,
        index_name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (username, index_name)
    )",
    "CREATE TABLE IF NOT EXISTS auth_api_keys (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'reader')),
        indexes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    )",
    "CREATE INDEX IF NOT EXISTS auth_api_keys_by_username ON auth_api_keys (username)",
];

/// Create the tables if they do not exist.
pub async fn migrate<S: Sql>(sql: &S) -> Result<()> {
    // Best effort, as in the index schema (whichever creates the first table
    // sets the page size of the shared `default` database).
    let _ = sql
        .execute(ragspin_core::ports::NEW_DATABASE_PAGE_SIZE, &[])
        .await;
    for statement in MIGRATIONS {
        sql.execute(statement, &[]).await?;
    }
    Ok(())
}

/// A user as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Lowercase username.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Indexes granted (`["*"]` = all; admins always have all).
    pub indexes: IndexScope,
    /// Disabled users cannot log in; their sessions and keys stop working.
    pub disabled: bool,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Last changed (Unix seconds).
    pub updated_at: i64,
}

impl User {
    /// The indexes this user may actually use (admins: all).
    pub fn effective_scope(&self) -> IndexScope {
        if self.role == Role::Admin {
            IndexScope::All
        } else {
            self.indexes.clone()
        }
    }
}

fn text(rows: &Rows, row: usize, column: &str) -> Result<String> {
    rows.value(row, column)
        .and_then(SqlValue::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::Storage(format!("column {column} is not text")))
}

fn int(rows: &Rows, row: usize, column: &str) -> Result<i64> {
    match rows.value(row, column) {
        Some(SqlValue::Integer(i)) => Ok(*i),
        Some(SqlValue::Null) => Ok(0),
        _ => Err(Error::Storage(format!("column {column} is not an integer"))),
    }
}

fn role(rows: &Rows, row: usize, column: &str) -> Result<Role> {
    Role::parse(&text(rows, row, column)?)
        .ok_or_else(|| Error::Storage(format!("column {column} holds an unknown role")))
}

/// The grants of `username`.
pub async fn grants<S: Sql>(sql: &S, username: &str) -> Result<IndexScope> {
    let rows = sql
        .query(
            "SELECT index_name FROM auth_index_grants WHERE username = ? ORDER BY index_name",
            &[username.into()],
        )
        .await?;
    let names: Vec<String> = (0..rows.len())
        .map(|i| text(&rows, i, "index_name"))
        .collect::<Result<_>>()?;
    Ok(IndexScope::from_names(names))
}

/// `username` and its password hash, if it exists.
pub async fn find_user<S: Sql>(sql: &S, username: &str) -> Result<Option<(User, String)>> {
    let rows = sql
        .query(
            "SELECT username, password_hash, role, disabled, created_at, updated_at
             FROM auth_users WHERE username = ?",
            &[username.into()],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let user = User {
        username: text(&rows, 0, "username")?,
        role: role(&rows, 0, "role")?,
        indexes: grants(sql, username).await?,
        disabled: int(&rows, 0, "disabled")? != 0,
        created_at: int(&rows, 0, "created_at")?,
        updated_at: int(&rows, 0, "updated_at")?,
    };
    Ok(Some((user, text(&rows, 0, "password_hash")?)))
}

/// Every user, by username.
pub async fn list_users<S: Sql>(sql: &S) -> Result<Vec<User>> {
    let rows = sql
        .query(
            "SELECT username, role, disabled, created_at, updated_at FROM auth_users ORDER BY username",
            &[],
        )
        .await?;
    let mut users = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        let username = text(&rows, i, "username")?;
        users.push(User {
            indexes: grants(sql, &username).await?,
            username,
            role: role(&rows, i, "role")?,
            disabled: int(&rows, i, "disabled")? != 0,
            created_at: int(&rows, i, "created_at")?,
            updated_at: int(&rows, i, "updated_at")?,
        });
    }
    Ok(users)
}

/// Insert a user; `false` if the username is taken.
pub async fn insert_user<S: Sql>(
    sql: &S,
    username: &str,
    password_hash: &str,
    role: Role,
    now_s: i64,
) -> Result<bool> {
    let changed = sql
        .execute(
            "INSERT INTO auth_users (username, password_hash, role, disabled, created_at, updated_at)
             VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (username) DO NOTHING",
            &[
                username.into(),
                password_hash.into(),
                role.as_str().into(),
                now_s.into(),
                now_s.into(),
            ],
        )
        .await?;
    Ok(changed > 0)
}

/// Change a user's role, disabled flag and/or password hash.
pub async fn update_user<S: Sql>(
    sql: &S,
    username: &str,
    role: Option<Role>,
    disabled: Option<bool>,
    password_hash: Option<&str>,
    now_s: i64,
) -> Result<()> {
    sql.execute(
        "UPDATE auth_users SET
            role = COALESCE(?, role),
            disabled = COALESCE(?, disabled),
            password_hash = COALESCE(?, password_hash),
            updated_at = ?
         WHERE username = ?",
        &[
            role.map(Role::as_str).into(),
            disabled.map(i64::from).into(),
            password_hash.into(),
            now_s.into(),
            username.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Grant `index` (or `*`) to `username` (idempotent).
pub async fn grant<S: Sql>(sql: &S, username: &str, index: &str, now_s: i64) -> Result<()> {
    sql.execute(
        "INSERT INTO auth_index_grants (username, index_name, created_at) VALUES (?, ?, ?)
         ON CONFLICT (username, index_name) DO NOTHING",
        &[username.into(), index.into(), now_s.into()],
    )
    .await?;
    Ok(())
}

/// Take `index` (or `*`) away from `username` (idempotent).
pub async fn revoke_grant<S: Sql>(sql: &S, username: &str, index: &str) -> Result<()> {
    sql.execute(
        "DELETE FROM auth_index_grants WHERE username = ? AND index_name = ?",
        &[username.into(), index.into()],
    )
    .await?;
    Ok(())
}

/// An API key as admins see it (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Public id (the part after `rsk_`).
    pub id: String,
    /// Owner.
    pub username: String,
    /// Label.
    pub name: String,
    /// The key's own role (never above its owner's).
    pub role: Role,
    /// The key's own indexes (within its owner's).
    pub indexes: IndexScope,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Revoked (Unix seconds), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    #[serde(skip)]
    pub(crate) key_hash: String,
}

const KEY_COLUMNS: &str = "id, username, name, key_hash, role, indexes, created_at, revoked_at";

fn api_keys(rows: &Rows) -> Result<Vec<ApiKey>> {
    (0..rows.len())
        .map(|i| {
            let indexes: IndexScope = serde_json::from_str(&text(rows, i, "indexes")?)
                .map_err(|e| Error::Storage(format!("api key indexes: {e}")))?;
            let revoked_at = match rows.value(i, "revoked_at") {
                Some(SqlValue::Integer(t)) => Some(*t),
                _ => None,
            };
            Ok(ApiKey {
                id: text(rows, i, "id")?,
                username: text(rows, i, "username")?,
                name: text(rows, i, "name")?,
                key_hash: text(rows, i, "key_hash")?,
                role: role(rows, i, "role")?,
                indexes,
                created_at: int(rows, i, "created_at")?,
                revoked: revoked_at.is_some(),
                revoked_at,
            })
        })
        .collect()
}

/// Store a new key.
pub async fn insert_key<S: Sql>(sql: &S, key: &ApiKey) -> Result<()> {
    let indexes = serde_json::to_string(&key.indexes)
        .map_err(|e| Error::Internal(format!("serialize indexes: {e}")))?;
    sql.execute(
        "INSERT INTO auth_api_keys (id, username, name, key_hash, role, indexes, created_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        &[
            key.id.as_str().into(),
            key.username.as_str().into(),
            key.name.as_str().into(),
            key.key_hash.as_str().into(),
            key.role.as_str().into(),
            indexes.into(),
            key.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Every key, newest first.
pub async fn list_keys<S: Sql>(sql: &S) -> Result<Vec<ApiKey>> {
    let rows = sql
        .query(
            &format!("SELECT {KEY_COLUMNS} FROM auth_api_keys ORDER BY created_at DESC, id"),
            &[],
        )
        .await?;
    api_keys(&rows)
}

/// One key by id.
pub async fn find_key<S: Sql>(sql: &S, id: &str) -> Result<Option<ApiKey>> {
    let rows = sql
        .query(
            &format!("SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE id = ?"),
            &[id.into()],
        )
        .await?;
    Ok(api_keys(&rows)?.into_iter().next())
}

/// The keys of `username` that are not revoked.
pub async fn active_keys_of<S: Sql>(sql: &S, username: &str) -> Result<Vec<ApiKey>> {
    let rows = sql
        .query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE username = ? AND revoked_at IS NULL"
            ),
            &[username.into()],
        )
        .await?;
    api_keys(&rows)
}

/// Mark a key revoked (keeps the row for the audit trail).
pub async fn revoke_key<S: Sql>(sql: &S, id: &str, now_s: i64) -> Result<()> {
    sql.execute(
        "UPDATE auth_api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        &[now_s.into(), id.into()],
    )
    .await?;
    Ok(())
}
