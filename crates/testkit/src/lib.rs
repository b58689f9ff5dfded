//! In-memory implementations of every ragspin port, for tests and
//! benchmarks, plus the [`contract`] suites every implementation must pass.
//!
//! | port | fake | notes |
//! |---|---|---|
//! | `KvStore` | [`MemoryKv`] | `BTreeMap`; `fail_with` injects failures |
//! | `Sql` | [`SqliteSql`] | real in-memory SQLite (FTS5 available); `fail_with` (native only) |
//! | `Config` | [`MapConfig`] | absent name = undefined; `fail_with` |
//! | `Clock` | [`ManualClock`] | set and advance by hand |
//! | `HttpClient` | [`ScriptedHttp`] | queued responses; records requests |
//! | `Embedder` | [`HashEmbedder`] | deterministic feature hashing |
//! | `ChatModel` | [`ScriptedChat`] | queued answers; records requests |
//! | `Retriever` | [`MemoryRetriever`] | term-overlap scoring |
//!
//! The fakes use `Mutex`, not `RefCell`, so they are `Send + Sync` and can be
//! shared by multi-threaded benchmarks.

pub mod contract;
mod fakes;
#[cfg(not(target_arch = "wasm32"))]
mod sqlite;

pub use fakes::{
    HashEmbedder, ManualClock, MapConfig, MemoryKv, MemoryRetriever, ScriptedChat, ScriptedHttp,
};
#[cfg(not(target_arch = "wasm32"))]
pub use sqlite::SqliteSql;
