//! In-memory implementations of every ragspin port, for tests and
//! benchmarks, plus the [`contract`] suites every implementation must pass.
//!
//! | port | fake | notes |
//! |---|---|---|
//! | `KvStore` | [`MemoryKv`] | `BTreeMap`; `fail_with` injects failures |
//! | `Sql` | [`SqliteSql`] | real in-memory SQLite (FTS5 available); `fail_with` (native only) |
//! | `Config` | [`MapConfig`] | absent name = undefined; `fail_with` |
//! | `Clock` | [`ManualClock`] | set and advance by hand |
//! | `Timer` | [`InstantTimer`] | completes at once; records requested sleeps |
//! | `Timer` | `RealTimer` | native only: really sleeps (blocks the thread) |
//! | `HttpClient` | [`ScriptedHttp`] | queued responses; records requests |
//! | `HttpClient` | `NativeHttp` | native only: real HTTP (blocking `reqwest`), for loopback servers |
//! | `Embedder` | [`HashEmbedder`] | deterministic feature hashing |
//! | `ChatModel` | [`ScriptedChat`] | queued answers; records requests |
//! | `Retriever` | [`MemoryRetriever`] | term-overlap scoring |
//!
//! [`PieceTexts`] makes deterministic mixed texts for tests of fast paths.
//!
//! The fakes use `Mutex`, not `RefCell`, so they are `Send + Sync` and can be
//! shared by multi-threaded benchmarks.

pub mod contract;
mod fakes;
#[cfg(not(target_arch = "wasm32"))]
mod native_http;
#[cfg(not(target_arch = "wasm32"))]
mod sqlite;
mod texts;
mod timer;

pub use fakes::{
    HashEmbedder, ManualClock, MapConfig, MemoryKv, MemoryRetriever, ScriptedChat, ScriptedHttp,
};
#[cfg(not(target_arch = "wasm32"))]
pub use native_http::NativeHttp;
#[cfg(not(target_arch = "wasm32"))]
pub use sqlite::SqliteSql;
pub use texts::PieceTexts;
pub use timer::InstantTimer;
#[cfg(not(target_arch = "wasm32"))]
pub use timer::RealTimer;
