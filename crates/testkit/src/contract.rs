//! Contract suites: the semantics every implementation of a port must have.
//!
//! Each suite is a plain `async fn` over the port trait, so the same code runs
//! natively against the fakes (`futures::executor::block_on`) and, from a wasm
//! test component, against the Spin adapters. A suite returns the first
//! [`Violation`] instead of panicking, so a component can report it over HTTP.
//!
//! The suites only touch keys prefixed `contract:` and tables prefixed
//! `contract_`, and clean up after themselves, so they can run against a real
//! store.

use std::fmt;

use ragspin_core::{Clock, Config, Embedder, Error, KvStore, Sql, SqlValue, Timer, with_timeout};

/// A broken promise: which suite, which check, what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The suite (`kv_store`, `sql`, `config`, `clock`, `timer`, `embedder`).
    pub suite: &'static str,
    /// The check, as a behaviour sentence.
    pub check: &'static str,
    /// What was observed.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.suite, self.check, self.detail)
    }
}

impl std::error::Error for Violation {}

/// The result of a suite.
pub type Outcome = Result<(), Violation>;

macro_rules! ensure {
    ($suite:expr, $check:expr, $cond:expr, $($detail:tt)+) => {
        if !$cond {
            return Err(Violation {
                suite: $suite,
                check: $check,
                detail: format!($($detail)+),
            });
        }
    };
}

/// Unwrap a port result or report it as a violation.
macro_rules! ok {
    ($suite:expr, $check:expr, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(e) => {
                return Err(Violation {
                    suite: $suite,
                    check: $check,
                    detail: format!("unexpected error: {e}"),
                })
            }
        }
    };
}

/// Variables a [`Config`] must be seeded with before running [`config`]:
/// `contract_text = "hello world"`, `contract_empty = ""`; and
/// [`CONFIG_UNDEFINED`] must not be defined.
pub const CONFIG_FIXTURE: [(&str, &str); 2] =
    [("contract_text", "hello world"), ("contract_empty", "")];

/// A variable name that must be undefined for [`config`].
pub const CONFIG_UNDEFINED: &str = "contract_undefined";

/// The [`KvStore`] contract.
pub async fn kv_store<K: KvStore>(kv: &K) -> Outcome {
    const S: &str = "kv_store";
    let key = "contract:kv:key";
    let other = "contract:kv:other key/with:odd ✓ chars";
    let counter = "contract:kv:counter";
    for k in [key, other, counter] {
        ok!(
            S,
            "deleting a key succeeds whether or not it exists",
            kv.delete(k).await
        );
    }

    let got = ok!(S, "get of a missing key is None", kv.get(key).await);
    ensure!(
        S,
        "get of a missing key is None",
        got.is_none(),
        "got {got:?}"
    );

    ok!(S, "set stores a value", kv.set(key, b"first").await);
    let got = ok!(S, "set stores a value", kv.get(key).await);
    ensure!(
        S,
        "set stores a value",
        got.as_deref() == Some(&b"first"[..]),
        "got {got:?}"
    );

    ok!(S, "set overwrites", kv.set(key, b"second").await);
    let got = ok!(S, "set overwrites", kv.get(key).await);
    ensure!(
        S,
        "set overwrites",
        got.as_deref() == Some(&b"second"[..]),
        "got {got:?}"
    );

    let all_bytes: Vec<u8> = (0..=255).collect();
    ok!(
        S,
        "values are arbitrary bytes",
        kv.set(other, &all_bytes).await
    );
    let got = ok!(S, "values are arbitrary bytes", kv.get(other).await);
    ensure!(
        S,
        "values are arbitrary bytes",
        got.as_deref() == Some(&all_bytes[..]),
        "got {got:?}"
    );
    let got = ok!(S, "keys are independent", kv.get(key).await);
    ensure!(
        S,
        "keys are independent",
        got.as_deref() == Some(&b"second"[..]),
        "got {got:?}"
    );

    ok!(
        S,
        "an empty value is present, not absent",
        kv.set(key, b"").await
    );
    let got = ok!(
        S,
        "an empty value is present, not absent",
        kv.get(key).await
    );
    ensure!(
        S,
        "an empty value is present, not absent",
        got.as_deref() == Some(&b""[..]),
        "got {got:?}"
    );

    ok!(S, "delete removes the key", kv.delete(key).await);
    let got = ok!(S, "delete removes the key", kv.get(key).await);
    ensure!(S, "delete removes the key", got.is_none(), "got {got:?}");
    ok!(S, "deleting a missing key succeeds", kv.delete(key).await);

    let n = ok!(
        S,
        "increment of an absent key starts at 0",
        kv.increment(counter, 5).await
    );
    ensure!(
        S,
        "increment of an absent key starts at 0",
        n == 5,
        "got {n}"
    );
    let n = ok!(
        S,
        "increment adds a possibly negative delta",
        kv.increment(counter, -7).await
    );
    ensure!(
        S,
        "increment adds a possibly negative delta",
        n == -2,
        "got {n}"
    );
    let got = ok!(
        S,
        "counters are stored as decimal text",
        kv.get(counter).await
    );
    ensure!(
        S,
        "counters are stored as decimal text",
        got.as_deref() == Some(&b"-2"[..]),
        "got {got:?}"
    );

    ok!(
        S,
        "increment of a non-counter fails",
        kv.set(counter, b"not a number").await
    );
    let result = kv.increment(counter, 1).await;
    ensure!(
        S,
        "increment of a non-counter fails",
        result.is_err(),
        "got {result:?}"
    );
    let got = ok!(
        S,
        "a failed increment leaves the value unchanged",
        kv.get(counter).await
    );
    ensure!(
        S,
        "a failed increment leaves the value unchanged",
        got.as_deref() == Some(&b"not a number"[..]),
        "got {got:?}"
    );

    for k in [key, other, counter] {
        ok!(S, "cleanup", kv.delete(k).await);
    }
    Ok(())
}

/// The [`Sql`] contract.
pub async fn sql<S: Sql>(db: &S) -> Outcome {
    const S: &str = "sql";
    ok!(
        S,
        "setup",
        db.execute("DROP TABLE IF EXISTS contract_sql_values", &[])
            .await
    );
    ok!(
        S,
        "setup",
        db.execute("DROP TABLE IF EXISTS contract_sql_fts", &[])
            .await
    );
    ok!(
        S,
        "setup",
        db.execute(
            "CREATE TABLE contract_sql_values (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, n TEXT)",
            &[],
        )
        .await
    );

    let all_bytes: Vec<u8> = (0..=255).collect();
    let rows = [
        vec![
            SqlValue::Integer(1),
            SqlValue::Integer(i64::MAX),
            SqlValue::Real(-1.5e300),
            SqlValue::Text("héllo ✓ 'quoted' \"double\"".into()),
            SqlValue::Blob(all_bytes.clone()),
            SqlValue::Null,
        ],
        vec![
            SqlValue::Integer(2),
            SqlValue::Integer(i64::MIN),
            SqlValue::Real(0.25),
            SqlValue::Text("x'); DROP TABLE contract_sql_values; --".into()),
            SqlValue::Blob(Vec::new()),
            SqlValue::Text(String::new()),
        ],
    ];
    // The first row by reference, the second by value (`execute_owned`):
    // both must round-trip alike below.
    for (k, row) in rows.iter().enumerate() {
        let insert =
            "INSERT INTO contract_sql_values (id, i, r, t, b, n) VALUES (?, ?, ?, ?, ?, ?)";
        let n = ok!(
            S,
            "execute returns the number of inserted rows",
            if k == 0 {
                db.execute(insert, row).await
            } else {
                db.execute_owned(insert, row.clone()).await
            }
        );
        ensure!(
            S,
            "execute returns the number of inserted rows",
            n == 1,
            "got {n}"
        );
    }

    let result = ok!(
        S,
        "every value type round-trips",
        db.query(
            "SELECT i, r, t, b, n FROM contract_sql_values ORDER BY id",
            &[]
        )
        .await
    );
    ensure!(
        S,
        "query reports column names in order",
        result.columns == ["i", "r", "t", "b", "n"],
        "got {:?}",
        result.columns
    );
    ensure!(
        S,
        "every value type round-trips",
        result.rows.len() == 2,
        "got {} rows",
        result.rows.len()
    );
    for (got, want) in result.rows.iter().zip(&rows) {
        ensure!(
            S,
            "every value type round-trips",
            got.0 == want[1..],
            "got {:?}, want {:?}",
            got.0,
            &want[1..]
        );
    }

    let result = ok!(
        S,
        "positional parameters bind values, not SQL",
        db.query(
            "SELECT id FROM contract_sql_values WHERE t = ?",
            &[SqlValue::Text(
                "x'); DROP TABLE contract_sql_values; --".into()
            )],
        )
        .await
    );
    ensure!(
        S,
        "positional parameters bind values, not SQL",
        result.rows.len() == 1 && result.rows[0].get(0) == Some(&SqlValue::Integer(2)),
        "got {:?}",
        result.rows
    );

    let result = ok!(
        S,
        "numbered parameters can be reused",
        db.query(
            "SELECT ?1 + ?1, ?2",
            &[SqlValue::Integer(20), SqlValue::Text("b".into())],
        )
        .await
    );
    ensure!(
        S,
        "numbered parameters can be reused",
        result.rows.first().map(|r| r.0.clone())
            == Some(vec![SqlValue::Integer(40), SqlValue::Text("b".into())]),
        "got {:?}",
        result.rows
    );

    let n = ok!(
        S,
        "execute returns the number of updated rows",
        db.execute(
            "UPDATE contract_sql_values SET n = ?",
            &[SqlValue::Text("u".into())]
        )
        .await
    );
    ensure!(
        S,
        "execute returns the number of updated rows",
        n == 2,
        "got {n}"
    );

    let result = ok!(
        S,
        "an empty result still has its columns",
        db.query(
            "SELECT id, t FROM contract_sql_values WHERE id = ?",
            &[SqlValue::Integer(99)]
        )
        .await
    );
    ensure!(
        S,
        "an empty result still has its columns",
        result.rows.is_empty() && result.columns == ["id", "t"],
        "got {result:?}"
    );

    let bad = db.query("SELEKT nonsense", &[]).await;
    ensure!(
        S,
        "bad SQL is a storage error",
        matches!(bad, Err(Error::Storage(_))),
        "got {bad:?}"
    );
    let dup = db
        .execute(
            "INSERT INTO contract_sql_values (id) VALUES (?)",
            &[SqlValue::Integer(1)],
        )
        .await;
    ensure!(
        S,
        "a constraint violation is a storage error",
        matches!(dup, Err(Error::Storage(_))),
        "got {dup:?}"
    );

    ok!(
        S,
        "FTS5 is available",
        db.execute(
            "CREATE VIRTUAL TABLE contract_sql_fts USING fts5(body)",
            &[]
        )
        .await
    );
    ok!(
        S,
        "FTS5 is available",
        db.execute(
            "INSERT INTO contract_sql_fts (body) VALUES (?), (?)",
            &[
                SqlValue::Text("the quick brown fox".into()),
                SqlValue::Text("lazy dogs sleep".into())
            ],
        )
        .await
    );
    let result = ok!(
        S,
        "FTS5 is available",
        db.query(
            "SELECT body FROM contract_sql_fts WHERE contract_sql_fts MATCH ? ORDER BY bm25(contract_sql_fts)",
            &[SqlValue::Text("fox".into())],
        )
        .await
    );
    ensure!(
        S,
        "FTS5 is available",
        result.rows.len() == 1
            && result.rows[0].get(0) == Some(&SqlValue::Text("the quick brown fox".into())),
        "got {:?}",
        result.rows
    );

    ok!(
        S,
        "cleanup",
        db.execute("DROP TABLE contract_sql_fts", &[]).await
    );
    ok!(
        S,
        "cleanup",
        db.execute("DROP TABLE contract_sql_values", &[]).await
    );
    Ok(())
}

/// The [`Config`] contract. The implementation must be seeded with
/// [`CONFIG_FIXTURE`] and must not define [`CONFIG_UNDEFINED`].
pub async fn config<C: Config>(config: &C) -> Outcome {
    const S: &str = "config";
    let got = ok!(
        S,
        "a defined variable has its value",
        config.get("contract_text").await
    );
    ensure!(
        S,
        "a defined variable has its value",
        got.as_deref() == Some("hello world"),
        "got {got:?}"
    );
    let got = ok!(
        S,
        "a defined empty variable is Some(\"\")",
        config.get("contract_empty").await
    );
    ensure!(
        S,
        "a defined empty variable is Some(\"\")",
        got.as_deref() == Some(""),
        "got {got:?}"
    );
    let got = ok!(
        S,
        "an undefined variable is None",
        config.get(CONFIG_UNDEFINED).await
    );
    ensure!(
        S,
        "an undefined variable is None",
        got.is_none(),
        "got {got:?}"
    );
    let bad = config.get("Not-A-Valid-Name").await;
    ensure!(
        S,
        "an invalid name is an error",
        bad.is_err(),
        "got {bad:?}"
    );
    Ok(())
}

/// The [`Clock`] contract: plausible (after 2020-01-01) and not going backwards.
pub async fn clock<C: Clock>(clock: &C) -> Outcome {
    const S: &str = "clock";
    const JAN_2020_MS: u64 = 1_577_836_800_000;
    let a = clock.now_unix_ms();
    let b = clock.now_unix_ms();
    ensure!(
        S,
        "time is milliseconds since the Unix epoch",
        a > JAN_2020_MS,
        "got {a}"
    );
    ensure!(S, "time does not go backwards", b >= a, "got {a} then {b}");
    Ok(())
}

/// The [`Timer`] contract: `sleep(0)` returns, a future ready at once beats
/// any timeout, and [`with_timeout`] gives up on a never-ready future with
/// [`Error::Timeout`]. Takes a few milliseconds with a real timer.
pub async fn timer<T: Timer>(timer: &T) -> Outcome {
    const S: &str = "timer";
    timer.sleep(0).await;

    let got = with_timeout(timer, 0, async { Ok(42) }).await;
    ensure!(
        S,
        "a future that is ready at once beats even a zero timeout",
        got == Ok(42),
        "got {got:?}"
    );

    let got = with_timeout(timer, 5, std::future::pending::<ragspin_core::Result<()>>()).await;
    ensure!(
        S,
        "with_timeout gives up on a never-ready future with a timeout error",
        matches!(got, Err(Error::Timeout(_))),
        "got {got:?}"
    );
    Ok(())
}

/// The [`Embedder`] contract, over `texts` (at least two, distinct;
/// include more than one upstream call's worth to check a multi-call plan):
/// the plan covers every text once, in order, in non-empty ranges (none for
/// no texts); embedding a planned range gives one vector per text, all of
/// one non-zero length with finite values; and a text's vector does not
/// depend on the batch it came in (embedding it alone gives the same).
pub async fn embedder<E: Embedder>(embedder: &E, texts: &[String]) -> Outcome {
    const S: &str = "embedder";
    ensure!(
        S,
        "the suite gets at least two texts",
        texts.len() >= 2,
        "got {}",
        texts.len()
    );
    let empty = ok!(S, "an empty input has an empty plan", embedder.plan(&[]));
    ensure!(
        S,
        "an empty input has an empty plan",
        empty.is_empty(),
        "got {empty:?}"
    );
    let plan = ok!(S, "the plan covers every text", embedder.plan(texts));
    let mut next = 0;
    for range in &plan {
        ensure!(
            S,
            "the plan covers every text once, in order, in non-empty ranges",
            range.start == next && range.end > range.start,
            "got {plan:?} for {} texts",
            texts.len()
        );
        next = range.end;
    }
    ensure!(
        S,
        "the plan covers every text",
        next == texts.len(),
        "got {plan:?} for {} texts",
        texts.len()
    );
    let mut vectors = Vec::with_capacity(texts.len());
    for range in &plan {
        let got = ok!(
            S,
            "a planned range embeds",
            embedder.embed(&texts[range.clone()]).await
        );
        ensure!(
            S,
            "one vector per input",
            got.len() == range.len(),
            "{} vectors for {} texts",
            got.len(),
            range.len()
        );
        vectors.extend(got);
    }
    let dims = vectors[0].len();
    ensure!(
        S,
        "vectors have one non-zero length",
        dims > 0 && vectors.iter().all(|v| v.len() == dims),
        "lengths {:?}",
        vectors.iter().map(Vec::len).collect::<Vec<_>>()
    );
    ensure!(
        S,
        "vectors hold finite numbers",
        vectors.iter().flatten().all(|x| x.is_finite()),
        "a NaN or infinity"
    );
    for k in [0, texts.len() - 1] {
        let alone = ok!(
            S,
            "a single text embeds",
            embedder.embed(&texts[k..k + 1]).await
        );
        let same = alone.len() == 1
            && alone[0].len() == dims
            && alone[0]
                .iter()
                .zip(&vectors[k])
                .all(|(a, b)| (a - b).abs() <= 1e-6 * (1.0 + b.abs()));
        ensure!(
            S,
            "a text's vector does not depend on its batch",
            same,
            "text {k} differs alone"
        );
    }
    ensure!(
        S,
        "different texts get different vectors",
        vectors[0] != vectors[1],
        "texts 0 and 1 embed the same"
    );
    Ok(())
}
