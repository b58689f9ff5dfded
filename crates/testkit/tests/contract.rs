//! The contract suites against the fakes, and against deliberately broken
//! implementations to show the suites can fail.

use futures::executor::block_on;
use ragspin_core::{Clock, Embedder, Embedding, KvStore, Result};
use ragspin_testkit::contract::{self, CONFIG_FIXTURE};
use ragspin_testkit::{
    HashEmbedder, InstantTimer, ManualClock, MapConfig, MemoryKv, RealTimer, SqliteSql,
};

#[test]
fn memory_kv_honours_the_kv_store_contract() {
    block_on(contract::kv_store(&MemoryKv::new())).unwrap();
}

#[test]
fn sqlite_sql_honours_the_sql_contract() {
    block_on(contract::sql(&SqliteSql::new().unwrap())).unwrap();
}

#[test]
fn sqlite_sql_passes_the_sql_contract_twice_on_one_database() {
    let db = SqliteSql::new().unwrap();
    block_on(contract::sql(&db)).unwrap();
    block_on(contract::sql(&db)).unwrap();
}

#[test]
fn map_config_honours_the_config_contract() {
    let config = MapConfig::new();
    for (name, value) in CONFIG_FIXTURE {
        config.set(name, value);
    }
    block_on(contract::config(&config)).unwrap();
}

#[test]
fn a_realistic_manual_clock_honours_the_clock_contract() {
    block_on(contract::clock(&ManualClock::new(1_750_000_000_000))).unwrap();
}

#[test]
fn memory_kv_leaves_nothing_behind_after_the_contract() {
    let kv = MemoryKv::new();
    block_on(contract::kv_store(&kv)).unwrap();
    assert!(kv.snapshot().is_empty());
}

/// Treats an empty value as absent, as a naive Redis wrapper might.
struct EmptyIsAbsentKv(MemoryKv);

impl KvStore for EmptyIsAbsentKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).await?.filter(|v| !v.is_empty()))
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.0.set(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.0.increment(key, delta).await
    }
}

#[test]
fn kv_contract_catches_a_store_that_loses_empty_values() {
    let violation = block_on(contract::kv_store(&EmptyIsAbsentKv(MemoryKv::new()))).unwrap_err();
    assert_eq!(violation.check, "an empty value is present, not absent");
}

#[test]
fn kv_contract_reports_a_failing_store_as_a_violation() {
    let kv = MemoryKv::new();
    kv.fail_with(Some("down"));
    let violation = block_on(contract::kv_store(&kv)).unwrap_err();
    assert!(violation.detail.contains("down"), "{violation}");
}

#[test]
fn sql_contract_reports_a_failing_database_as_a_violation() {
    let db = SqliteSql::new().unwrap();
    db.fail_with(Some("disk on fire"));
    let violation = block_on(contract::sql(&db)).unwrap_err();
    assert!(violation.detail.contains("disk on fire"), "{violation}");
}

#[test]
fn config_contract_catches_an_unseeded_config() {
    let violation = block_on(contract::config(&MapConfig::new())).unwrap_err();
    assert_eq!(violation.check, "a defined variable has its value");
}

#[test]
fn config_contract_catches_undefined_reported_as_empty() {
    let config = MapConfig::new();
    for (name, value) in CONFIG_FIXTURE {
        config.set(name, value);
    }
    config.set(contract::CONFIG_UNDEFINED, "");
    let violation = block_on(contract::config(&config)).unwrap_err();
    assert_eq!(violation.check, "an undefined variable is None");
}

#[test]
fn clock_contract_catches_a_clock_stuck_at_the_epoch() {
    let clock = ManualClock::new(0);
    assert_eq!(clock.now_unix_ms(), 0);
    assert!(block_on(contract::clock(&clock)).is_err());
}

#[test]
fn instant_timer_honours_the_timer_contract() {
    block_on(contract::timer(&InstantTimer::new())).unwrap();
}

#[test]
fn real_timer_honours_the_timer_contract() {
    block_on(contract::timer(&RealTimer)).unwrap();
}

fn many_texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|k| format!("text {k} about topic {}", k % 7))
        .collect()
}

#[test]
fn hash_embedder_honours_the_embedder_contract_over_several_calls() {
    // 600 texts: three ranges in the default plan.
    let texts = many_texts(600);
    let e = HashEmbedder::new(32);
    assert_eq!(e.plan(&texts).unwrap().len(), 3);
    block_on(contract::embedder(&e, &texts)).unwrap();
}

/// Embedders broken in the ways the suite looks for.
struct Broken {
    inner: HashEmbedder,
    fault: &'static str,
}

impl Embedder for Broken {
    fn model(&self) -> &str {
        "broken"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let mut v = self.inner.embed(texts).await?;
        match self.fault {
            "drops one" => {
                v.pop();
            }
            "batch-dependent" => {
                let n = texts.len() as f32;
                v.iter_mut().for_each(|x| x[0] += n);
            }
            _ => {}
        }
        Ok(v)
    }
    fn plan(&self, texts: &[String]) -> Result<Vec<std::ops::Range<usize>>> {
        let n = texts.len();
        Ok(match self.fault {
            "plan skips" if n > 1 => vec![0..1, 2..n],
            "plan short" if n > 1 => std::iter::once(0..n - 1).collect(),
            "plan empty range" if n > 1 => vec![0..0, 0..n],
            _ if n == 0 => vec![],
            _ => std::iter::once(0..n).collect(),
        })
    }
}

#[test]
fn embedder_contract_catches_bad_plans_and_vectors() {
    let texts = many_texts(5);
    for (fault, check) in [
        (
            "plan skips",
            "the plan covers every text once, in order, in non-empty ranges",
        ),
        ("plan short", "the plan covers every text"),
        (
            "plan empty range",
            "the plan covers every text once, in order, in non-empty ranges",
        ),
        ("drops one", "one vector per input"),
        (
            "batch-dependent",
            "a text's vector does not depend on its batch",
        ),
    ] {
        let e = Broken {
            inner: HashEmbedder::new(16),
            fault,
        };
        let violation = block_on(contract::embedder(&e, &texts)).unwrap_err();
        assert_eq!(violation.check, check, "{fault}");
    }
    let fine = Broken {
        inner: HashEmbedder::new(16),
        fault: "none",
    };
    block_on(contract::embedder(&fine, &texts)).unwrap();
}
