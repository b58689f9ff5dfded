//! Backends for Spin's key-value stores and SQLite databases, both on real
//! SQLite (rusqlite, bundled — the SQLite Spin 4.0.2 ships, FTS5 included).
//! Spin's own default key-value store is SQLite-backed too, so key listing
//! order here is SQLite's, not a HashMap's.
//!
//! A key-value store can also be a Redis server (`type = "redis"`, `url`),
//! as in Spin's `spin-key-value-redis`: keys are stored as they are (no
//! prefix, so every label pointing at one server shares its keys), values
//! are plain Redis strings, `get-keys` is `KEYS *`, and every Redis failure
//! is `error::other(..)`. The connection is made on first use, not at
//! start-up, and made again after an I/O error.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::manifest::Backing;

fn open(backing: &Backing) -> Result<Connection> {
    match backing {
        Backing::Memory => Ok(Connection::open_in_memory()?),
        Backing::Redis(_) => anyhow::bail!("a Redis URL is not a SQLite backing"),
        Backing::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let conn =
                Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            Ok(conn)
        }
    }
}

/// Faults a test can switch on to see how components behave when a backend
/// fails at run time (a full disk, a lost Redis). Spin reports such failures
/// as `error::other(..)` (key-value) and `error::io(..)` (SQLite).
#[derive(Debug, Default)]
pub struct Faults {
    kv: Mutex<Option<String>>,
    sqlite: Mutex<Option<String>>,
}

impl Faults {
    pub fn set_kv(&self, message: Option<&str>) {
        *self.kv.lock().unwrap() = message.map(str::to_string);
    }
    pub fn set_sqlite(&self, message: Option<&str>) {
        *self.sqlite.lock().unwrap() = message.map(str::to_string);
    }
    pub fn kv(&self) -> Option<String> {
        self.kv.lock().unwrap().clone()
    }
    pub fn sqlite(&self) -> Option<String> {
        self.sqlite.lock().unwrap().clone()
    }
}

/// One key-value store label.
#[derive(Debug)]
pub struct KvBackend {
    inner: KvInner,
}

#[derive(Debug)]
enum KvInner {
    Sqlite(Mutex<Connection>),
    Redis(RedisKv),
}

/// Checks a Redis URL the way Spin does when it reads the runtime config
/// (`redis://`, `rediss://`, `redis+unix://`, `unix://`); no connection is made.
pub fn check_redis_url(url: &str) -> Result<()> {
    redis::Client::open(url)
        .map(drop)
        .with_context(|| format!("invalid Redis URL {url:?}"))
}

/// A Redis-backed store: one lazily made connection, serialised by a mutex.
struct RedisKv {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
}

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKv").finish_non_exhaustive()
    }
}

impl RedisKv {
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

    fn run<T>(&self, command: &redis::Cmd) -> Result<T, String>
    where
        T: redis::FromRedisValue,
    {
        let mut conn = self.conn.lock().unwrap();
        if conn.is_none() {
            let made = self
                .client
                .get_connection_with_timeout(Self::TIMEOUT)
                .and_then(|c| {
                    c.set_read_timeout(Some(Self::TIMEOUT))?;
                    c.set_write_timeout(Some(Self::TIMEOUT))?;
                    Ok(c)
                })
                .map_err(|e| e.to_string())?;
            *conn = Some(made);
        }
        let result = command.query::<T>(conn.as_mut().expect("connected above"));
        if let Err(e) = &result
            && (e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error())
        {
            *conn = None;
        }
        result.map_err(|e| e.to_string())
    }
}

impl KvBackend {
    pub fn open(backing: &Backing) -> Result<Self> {
        if let Backing::Redis(url) = backing {
            let client = redis::Client::open(url.as_str())
                .with_context(|| format!("invalid Redis URL {url:?}"))?;
            return Ok(Self {
                inner: KvInner::Redis(RedisKv {
                    client,
                    conn: Mutex::new(None),
                }),
            });
        }
        let conn = open(backing)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            );",
        )?;
        Ok(Self {
            inner: KvInner::Sqlite(Mutex::new(conn)),
        })
    }

    pub fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let conn = match &self.inner {
            KvInner::Redis(redis) => return redis.run(redis::cmd("GET").arg(key)),
            KvInner::Sqlite(conn) => conn.lock().unwrap(),
        };
        conn.query_row(
            "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
            params![store, key],
            |row| row.get::<_, Vec<u8>>(0),
        )
        .optional()
        .map_err(|e| e.to_string())
    }

    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), String> {
        let conn = match &self.inner {
            KvInner::Redis(redis) => return redis.run(redis::cmd("SET").arg(key).arg(value)),
            KvInner::Sqlite(conn) => conn.lock().unwrap(),
        };
        conn.execute(
            "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            params![store, key, value],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    pub fn delete(&self, store: &str, key: &str) -> Result<(), String> {
        let conn = match &self.inner {
            KvInner::Redis(redis) => return redis.run(redis::cmd("DEL").arg(key)),
            KvInner::Sqlite(conn) => conn.lock().unwrap(),
        };
        conn.execute(
            "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
            params![store, key],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    pub fn exists(&self, store: &str, key: &str) -> Result<bool, String> {
        match &self.inner {
            KvInner::Redis(redis) => redis.run(redis::cmd("EXISTS").arg(key)),
            KvInner::Sqlite(_) => self.get(store, key).map(|v| v.is_some()),
        }
    }

    pub fn keys(&self, store: &str) -> Result<Vec<String>, String> {
        let conn = match &self.inner {
            KvInner::Redis(redis) => return redis.run(redis::cmd("KEYS").arg("*")),
            KvInner::Sqlite(conn) => conn.lock().unwrap(),
        };
        let mut stmt = conn
            .prepare("SELECT key FROM spin_key_value WHERE store = ?1")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params![store], |row| row.get::<_, String>(0))
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }
}

/// A value as Spin's SQLite interface carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// The outcome of one statement: column names and rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// One SQLite database label. As in Spin 4 (`spin-sqlite-inproc`), every
/// `open` gets its own connection to the database file, so a transaction
/// (`BEGIN` … `COMMIT` across `execute` calls) belongs to that connection
/// alone and concurrent writers wait on SQLite's file lock (rusqlite's 5 s
/// busy timeout). A `Memory` backing is a temporary file removed with the
/// host, so every connection still sees the same data.
#[derive(Debug)]
pub struct SqliteBackend {
    path: PathBuf,
    _temp: Option<TempDir>,
}

/// A folder removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SqliteBackend {
    pub fn open(backing: &Backing) -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let (path, temp) = match backing {
            Backing::File(path) => (path.clone(), None),
            Backing::Redis(_) => anyhow::bail!("a SQLite database cannot be backed by Redis"),
            Backing::Memory => {
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let dir =
                    std::env::temp_dir().join(format!("ragspin-host-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                (dir.join("db.sqlite"), Some(TempDir(dir)))
            }
        };
        // Fail at start-up, not on first use, when the file cannot be opened.
        open(&Backing::File(path.clone()))?;
        Ok(Self { path, _temp: temp })
    }

    /// A new connection, as Spin makes for each `open`.
    pub fn connect(&self) -> Result<SqliteConnection, String> {
        open(&Backing::File(self.path.clone()))
            .map(|c| SqliteConnection {
                conn: Mutex::new(c),
            })
            .map_err(|e| format!("{e:#}"))
    }
}

/// A parameter bound without copying it.
struct Borrowed<'a>(rusqlite::types::ValueRef<'a>);

impl rusqlite::ToSql for Borrowed<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(self.0))
    }
}

/// One open connection (one component `open`).
#[derive(Debug)]
pub struct SqliteConnection {
    conn: Mutex<Connection>,
}

impl SqliteConnection {
    /// Runs one statement (as in Spin, only the first statement of a string runs),
    /// returning rows, rows affected and last rowid.
    pub fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<(SqlOutput, u64, i64), String> {
        use rusqlite::types::ValueRef;
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| e.to_string())?;
        let columns: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        // Bound by reference, as Spin's host binds its parameters (no copy
        // of a text or blob before SQLite copies it into the row).
        let values = params.iter().map(|p| match p {
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
            SqlValue::Null => ValueRef::Null,
        });
        let mut rows_out = Vec::new();
        {
            let mut rows = stmt
                .query(rusqlite::params_from_iter(values.map(Borrowed)))
                .map_err(|e| e.to_string())?;
            while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                let mut out = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    let v = row.get_ref(i).map_err(|e| e.to_string())?;
                    out.push(match v {
                        ValueRef::Null => SqlValue::Null,
                        ValueRef::Integer(i) => SqlValue::Integer(i),
                        ValueRef::Real(f) => SqlValue::Real(f),
                        ValueRef::Text(t) => {
                            SqlValue::Text(String::from_utf8_lossy(t).into_owned())
                        }
                        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                    });
                }
                rows_out.push(out);
            }
        }
        drop(stmt);
        let changes = conn.changes();
        let rowid = conn.last_insert_rowid();
        Ok((
            SqlOutput {
                columns,
                rows: rows_out,
            },
            changes,
            rowid,
        ))
    }

    pub fn last_insert_rowid(&self) -> i64 {
        self.conn.lock().unwrap().last_insert_rowid()
    }

    pub fn changes(&self) -> u64 {
        self.conn.lock().unwrap().changes()
    }
}

/// Every store and database the app's runtime config defines, opened once
/// per host (shared by all instances, as in Spin).
#[derive(Debug, Default)]
pub struct Backends {
    pub kv: BTreeMap<String, Arc<KvBackend>>,
    pub sqlite: BTreeMap<String, Arc<SqliteBackend>>,
    pub faults: Faults,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_round_trip_and_overwrite() {
        let kv = KvBackend::open(&Backing::Memory).unwrap();
        assert_eq!(kv.get("default", "a").unwrap(), None);
        kv.set("default", "a", b"1").unwrap();
        kv.set("default", "a", b"2").unwrap();
        kv.set("other", "a", b"3").unwrap();
        assert_eq!(kv.get("default", "a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(kv.keys("default").unwrap(), vec!["a".to_string()]);
        kv.delete("default", "a").unwrap();
        kv.delete("default", "missing").unwrap();
        assert!(!kv.exists("default", "a").unwrap());
        assert!(kv.exists("other", "a").unwrap());
    }

    #[test]
    fn sqlite_has_fts5_and_typed_values() {
        let backend = SqliteBackend::open(&Backing::Memory).unwrap();
        let db = backend.connect().unwrap();
        db.execute("CREATE VIRTUAL TABLE t USING fts5(body)", &[])
            .unwrap();
        db.execute(
            "INSERT INTO t(body) VALUES (?1)",
            &[SqlValue::Text("long battery life".into())],
        )
        .unwrap();
        let (out, _, _) = db
            .execute("SELECT body, bm25(t) FROM t WHERE t MATCH 'battery'", &[])
            .unwrap();
        assert_eq!(out.rows.len(), 1);
        assert_eq!(out.rows[0][0], SqlValue::Text("long battery life".into()));
        assert!(matches!(out.rows[0][1], SqlValue::Real(_)));
        let (out, _, _) = db
            .execute(
                "SELECT ?1, ?2, ?3",
                &[
                    SqlValue::Blob(vec![0, 255]),
                    SqlValue::Null,
                    SqlValue::Integer(-3),
                ],
            )
            .unwrap();
        assert_eq!(
            out.rows[0],
            vec![
                SqlValue::Blob(vec![0, 255]),
                SqlValue::Null,
                SqlValue::Integer(-3)
            ]
        );
        assert!(db.execute("SELEC nonsense", &[]).is_err());
        // Like Spin (rusqlite's prepare), only the first statement of a string runs.
        let (out, _, _) = db.execute("SELECT 1; SELECT 2", &[]).unwrap();
        assert_eq!(out.rows, vec![vec![SqlValue::Integer(1)]]);
    }

    #[test]
    fn each_connection_has_its_own_transaction_over_shared_data() {
        let backend = SqliteBackend::open(&Backing::Memory).unwrap();
        let a = backend.connect().unwrap();
        let b = backend.connect().unwrap();
        a.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        a.execute("BEGIN", &[]).unwrap();
        a.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        let (out, _, _) = b.execute("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(
            out.rows[0][0],
            SqlValue::Integer(0),
            "uncommitted row visible"
        );
        a.execute("COMMIT", &[]).unwrap();
        let (out, _, _) = b.execute("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(out.rows[0][0], SqlValue::Integer(1));
    }
}
