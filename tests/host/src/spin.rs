//! Host implementations of the Spin 4.0 interfaces ragspin's components
//! import: `spin:key-value@3.0.0`, `spin:variables@3.0.0`, `spin:sqlite@3.1.0`.
//!
//! WIT `async func`s are store-accessing imports (methods take an
//! `Accessor`); the synchronous SQLite functions exist for completeness.
//! Access rules follow Spin: opening a store or database not listed for the
//! component is `access-denied`; asking for a variable the component does
//! not declare is `undefined`.

use std::sync::Arc;

use wasmtime::component::{Accessor, FutureReader, HasData, Resource, StreamReader};

use crate::State;
use crate::bindings::spin::key_value::key_value as kv;
use crate::bindings::spin::sqlite::sqlite;
use crate::bindings::spin::variables::variables;
use crate::storage::{KvBackend, SqlValue, SqliteConnection};

/// The host side of an open `spin:key-value` store.
pub struct KvStoreHandle {
    label: String,
    backend: Arc<KvBackend>,
}

/// The host side of an open `spin:sqlite` connection.
pub struct SqliteHandle {
    conn: SqliteConnection,
}

/// Marker type the store-accessing imports are implemented on.
pub struct Spin;

impl HasData for Spin {
    type Data<'a> = &'a mut State;
}

type Trap<T> = wasmtime::Result<T>;

fn trap(e: impl std::fmt::Display) -> wasmtime::Error {
    wasmtime::Error::msg(e.to_string())
}

// ---------------------------------------------------------------- key-value

impl State {
    fn open_kv(&self, label: &str) -> Result<KvStoreHandle, kv::Error> {
        if !self.component.key_value_stores.iter().any(|s| s == label) {
            return Err(kv::Error::AccessDenied);
        }
        match self.app.backends.kv.get(label) {
            Some(backend) => Ok(KvStoreHandle {
                label: label.to_string(),
                backend: backend.clone(),
            }),
            None => Err(kv::Error::NoSuchStore),
        }
    }

    fn kv_fault(&self) -> Result<(), kv::Error> {
        match self.app.backends.faults.kv() {
            Some(message) => Err(kv::Error::Other(message)),
            None => Ok(()),
        }
    }
}

fn kv_call<U, T>(
    accessor: &Accessor<U, Spin>,
    store: &Resource<KvStoreHandle>,
    f: impl FnOnce(&KvBackend, &str) -> Result<T, String>,
) -> Trap<Result<T, kv::Error>> {
    accessor.with(|mut access| {
        let state = access.get();
        if let Err(e) = state.kv_fault() {
            return Ok(Err(e));
        }
        let handle = state.table.get(store).map_err(trap)?;
        Ok(f(&handle.backend, &handle.label).map_err(kv::Error::Other))
    })
}

impl kv::HostStoreWithStore for Spin {
    async fn open<T>(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> Trap<Result<Resource<KvStoreHandle>, kv::Error>> {
        accessor.with(|mut access| {
            let state = access.get();
            match state.open_kv(&label) {
                Ok(handle) => Ok(Ok(state.table.push(handle).map_err(trap)?)),
                Err(e) => Ok(Err(e)),
            }
        })
    }

    async fn get<T>(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStoreHandle>,
        key: String,
    ) -> Trap<Result<Option<Vec<u8>>, kv::Error>> {
        kv_call(accessor, &store, |b, label| b.get(label, &key))
    }

    async fn set<T>(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Trap<Result<(), kv::Error>> {
        kv_call(accessor, &store, |b, label| b.set(label, &key, &value))
    }

    async fn delete<T>(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStoreHandle>,
        key: String,
    ) -> Trap<Result<(), kv::Error>> {
        kv_call(accessor, &store, |b, label| b.delete(label, &key))
    }

    async fn exists<T>(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStoreHandle>,
        key: String,
    ) -> Trap<Result<bool, kv::Error>> {
        kv_call(accessor, &store, |b, label| b.exists(label, &key))
    }

    async fn get_keys<T>(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStoreHandle>,
    ) -> Trap<(StreamReader<String>, FutureReader<Result<(), kv::Error>>)> {
        let listed = kv_call(accessor, &store, |b, label| b.keys(label))?;
        accessor.with(|mut access| {
            let (keys, result) = match listed {
                Ok(keys) => (keys, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            let stream = StreamReader::new(&mut access, keys)?;
            let future = FutureReader::new(&mut access, async move { Trap::Ok(result) })?;
            Ok((stream, future))
        })
    }
}

impl kv::HostStore for State {
    async fn drop(&mut self, store: Resource<KvStoreHandle>) -> Trap<()> {
        self.table.delete(store).map_err(trap)?;
        Ok(())
    }
}

impl kv::Host for State {}

// ---------------------------------------------------------------- variables

impl State {
    fn variable(&self, name: &str) -> Result<String, variables::Error> {
        if crate::variables::check_name(name).is_err() {
            return Err(variables::Error::InvalidName(name.to_string()));
        }
        let Some(template) = self.component.variables.get(name) else {
            return Err(variables::Error::Undefined(format!(
                "no variable for \"{}\".\"{name}\"",
                self.component.id
            )));
        };
        crate::variables::expand(template, &self.app.variables)
            .map_err(|e| variables::Error::Undefined(e.to_string()))
    }
}

impl variables::HostWithStore for Spin {
    async fn get<T>(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> Trap<Result<String, variables::Error>> {
        accessor.with(|mut access| Ok(access.get().variable(&name)))
    }
}

impl variables::Host for State {}

// ---------------------------------------------------------------- sqlite

impl State {
    fn open_sqlite(&self, label: &str) -> Result<SqliteHandle, sqlite::Error> {
        if !self.component.sqlite_databases.iter().any(|s| s == label) {
            return Err(sqlite::Error::AccessDenied);
        }
        match self.app.backends.sqlite.get(label) {
            Some(backend) => backend
                .connect()
                .map(|conn| SqliteHandle { conn })
                .map_err(sqlite::Error::Io),
            None => Err(sqlite::Error::NoSuchDatabase),
        }
    }

    fn run_sql(
        &self,
        conn: &Resource<SqliteHandle>,
        statement: &str,
        parameters: Vec<sqlite::Value>,
    ) -> Trap<Result<crate::storage::SqlOutput, sqlite::Error>> {
        if let Some(message) = self.app.backends.faults.sqlite() {
            return Ok(Err(sqlite::Error::Io(message)));
        }
        let handle = self.table.get(conn).map_err(trap)?;
        let params: Vec<SqlValue> = parameters.into_iter().map(from_wit).collect();
        Ok(handle
            .conn
            .execute(statement, &params)
            .map(|(out, _, _)| out)
            .map_err(sqlite::Error::Io))
    }
}

fn from_wit(v: sqlite::Value) -> SqlValue {
    match v {
        sqlite::Value::Integer(i) => SqlValue::Integer(i),
        sqlite::Value::Real(f) => SqlValue::Real(f),
        sqlite::Value::Text(s) => SqlValue::Text(s),
        sqlite::Value::Blob(b) => SqlValue::Blob(b),
        sqlite::Value::Null => SqlValue::Null,
    }
}

fn to_wit(v: SqlValue) -> sqlite::Value {
    match v {
        SqlValue::Integer(i) => sqlite::Value::Integer(i),
        SqlValue::Real(f) => sqlite::Value::Real(f),
        SqlValue::Text(s) => sqlite::Value::Text(s),
        SqlValue::Blob(b) => sqlite::Value::Blob(b),
        SqlValue::Null => sqlite::Value::Null,
    }
}

fn rows_to_wit(rows: Vec<Vec<SqlValue>>) -> Vec<sqlite::RowResult> {
    rows.into_iter()
        .map(|r| sqlite::RowResult {
            values: r.into_iter().map(to_wit).collect(),
        })
        .collect()
}

impl sqlite::HostConnectionWithStore for Spin {
    async fn open_async<T>(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> Trap<Result<Resource<SqliteHandle>, sqlite::Error>> {
        accessor.with(|mut access| {
            let state = access.get();
            match state.open_sqlite(&database) {
                Ok(handle) => Ok(Ok(state.table.push(handle).map_err(trap)?)),
                Err(e) => Ok(Err(e)),
            }
        })
    }

    /// Spin reports a statement error (a bad prepare included) on the result
    /// future, after an empty row stream, not as the outer error.
    async fn execute_async<T>(
        accessor: &Accessor<T, Self>,
        conn: Resource<SqliteHandle>,
        statement: String,
        parameters: Vec<sqlite::Value>,
    ) -> Trap<
        Result<
            (
                Vec<String>,
                StreamReader<sqlite::RowResult>,
                FutureReader<Result<(), sqlite::Error>>,
            ),
            sqlite::Error,
        >,
    > {
        accessor.with(|mut access| {
            let outcome = access.get().run_sql(&conn, &statement, parameters)?;
            let (columns, rows, result) = match outcome {
                Ok(out) => (out.columns, rows_to_wit(out.rows), Ok(())),
                Err(e) => (Vec::new(), Vec::new(), Err(e)),
            };
            let stream = StreamReader::new(&mut access, rows)?;
            let future = FutureReader::new(&mut access, async move { Trap::Ok(result) })?;
            Ok(Ok((columns, stream, future)))
        })
    }

    async fn last_insert_rowid_async<T>(
        accessor: &Accessor<T, Self>,
        conn: Resource<SqliteHandle>,
    ) -> Trap<i64> {
        accessor.with(|mut access| {
            let handle = access.get().table.get(&conn).map_err(trap)?;
            Ok(handle.conn.last_insert_rowid())
        })
    }

    async fn changes_async<T>(
        accessor: &Accessor<T, Self>,
        conn: Resource<SqliteHandle>,
    ) -> Trap<u64> {
        accessor.with(|mut access| {
            let handle = access.get().table.get(&conn).map_err(trap)?;
            Ok(handle.conn.changes())
        })
    }
}

impl sqlite::HostConnection for State {
    async fn open(
        &mut self,
        database: String,
    ) -> Trap<Result<Resource<SqliteHandle>, sqlite::Error>> {
        match self.open_sqlite(&database) {
            Ok(handle) => Ok(Ok(self.table.push(handle).map_err(trap)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteHandle>,
        statement: String,
        parameters: Vec<sqlite::Value>,
    ) -> Trap<Result<sqlite::QueryResult, sqlite::Error>> {
        Ok(self
            .run_sql(&conn, &statement, parameters)?
            .map(|out| sqlite::QueryResult {
                columns: out.columns,
                rows: rows_to_wit(out.rows),
            }))
    }

    async fn last_insert_rowid(&mut self, conn: Resource<SqliteHandle>) -> Trap<i64> {
        Ok(self
            .table
            .get(&conn)
            .map_err(trap)?
            .conn
            .last_insert_rowid())
    }

    async fn changes(&mut self, conn: Resource<SqliteHandle>) -> Trap<u64> {
        Ok(self.table.get(&conn).map_err(trap)?.conn.changes())
    }

    async fn drop(&mut self, conn: Resource<SqliteHandle>) -> Trap<()> {
        self.table.delete(conn).map_err(trap)?;
        Ok(())
    }
}

impl sqlite::Host for State {}
