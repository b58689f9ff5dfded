//! [`SqliteSql`]: the `Sql` port over a real in-memory SQLite.

use std::sync::{Mutex, PoisonError};

use ragspin_core::{Error, Result, Row, Rows, Sql, SqlValue};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

/// A [`Sql`] backed by an in-memory SQLite database (bundled, with FTS5), so
/// queries behave as in Spin's SQLite.
#[derive(Debug)]
pub struct SqliteSql {
    conn: Mutex<rusqlite::Connection>,
    failure: Mutex<Option<String>>,
}

impl SqliteSql {
    /// A fresh, empty in-memory database.
    pub fn new() -> Result<Self> {
        let conn = rusqlite::Connection::open_in_memory().map_err(storage)?;
        Ok(Self {
            conn: Mutex::new(conn),
            failure: Mutex::new(None),
        })
    }

    /// A database in the file at `path` (created when missing), e.g. to
    /// fill a store natively that the test host then serves.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let conn = rusqlite::Connection::open(path).map_err(storage)?;
        Ok(Self {
            conn: Mutex::new(conn),
            failure: Mutex::new(None),
        })
    }

    /// With `Some(message)`, every statement fails with
    /// `Error::Storage(message)`; with `None`, the database works again.
    pub fn fail_with(&self, message: Option<&str>) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = message.map(str::to_owned);
    }

    fn check(&self) -> Result<()> {
        match self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            Some(message) => Err(Error::Storage(message.clone())),
            None => Ok(()),
        }
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.check()?;
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn).map_err(storage)
    }
}

fn storage(e: rusqlite::Error) -> Error {
    ragspin_core::sql_failure(e.to_string())
}

struct Param<'a>(&'a SqlValue);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            SqlValue::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            SqlValue::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            SqlValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            SqlValue::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            SqlValue::Null => ToSqlOutput::Owned(Value::Null),
        })
    }
}

fn params(values: &[SqlValue]) -> Vec<Param<'_>> {
    values.iter().map(Param).collect()
}

fn from_sqlite(value: ValueRef<'_>) -> SqlValue {
    match value {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}

impl Sql for SqliteSql {
    async fn execute(&self, sql: &str, values: &[SqlValue]) -> Result<u64> {
        self.with_conn(|conn| {
            let changed = conn.execute(sql, rusqlite::params_from_iter(params(values)))?;
            Ok(changed as u64)
        })
    }

    async fn query(&self, sql: &str, values: &[SqlValue]) -> Result<Rows> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(sql)?;
            let columns: Vec<String> = stmt
                .column_names()
                .iter()
                .map(|c| (*c).to_owned())
                .collect();
            let width = columns.len();
            let mut rows = stmt.query(rusqlite::params_from_iter(params(values)))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(from_sqlite(row.get_ref(i)?));
                }
                out.push(Row(values));
            }
            Ok(Rows { columns, rows: out })
        })
    }
}
