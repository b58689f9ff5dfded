//! The contract suites against the fakes, and against deliberately broken
//! implementations to show the suites can fail.

use futures::executor::block_on;
use ragspin_core::{Clock, KvStore, Result};
use ragspin_testkit::contract::{self, CONFIG_FIXTURE};
use ragspin_testkit::{InstantTimer, ManualClock, MapConfig, MemoryKv, RealTimer, SqliteSql};

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
