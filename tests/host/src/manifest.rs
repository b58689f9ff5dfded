//! The parts of a Spin manifest (v2) and runtime config the host reproduces.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `spin.toml`, manifest version 2 (only the fields Spin's HTTP trigger and
/// the factors we reproduce read).
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, Component>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

/// An application variable: exactly one of `default` / `required = true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Component {
    pub source: String,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing manifest {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        if self.spin_manifest_version != 2 {
            bail!("only spin_manifest_version = 2 is supported");
        }
        for (name, var) in &self.variables {
            crate::variables::check_name(name)?;
            match (&var.default, var.required) {
                (Some(_), true) => {
                    bail!("variable {name:?}: cannot be required and have a default")
                }
                (None, false) => bail!("variable {name:?}: must be required or have a default"),
                _ => {}
            }
        }
        for trigger in &self.trigger.http {
            if !self.component.contains_key(&trigger.component) {
                bail!(
                    "trigger route {:?} names unknown component {:?}",
                    trigger.route,
                    trigger.component
                );
            }
        }
        for (id, component) in &self.component {
            for name in component.variables.keys() {
                crate::variables::check_name(name).with_context(|| format!("component {id:?}"))?;
            }
        }
        Ok(())
    }
}

/// Backing of one store or database label in the runtime config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A SQLite file (Spin's `type = "spin"`).
    File(PathBuf),
    /// Process memory: gone when the host stops (tests).
    Memory,
    /// A Redis server (Spin's key-value `type = "redis"`, with its `url`).
    Redis(String),
}

/// The runtime-config subset the host understands: `type = "spin"` key-value
/// stores and SQLite databases, with a `path`, `type = "redis"` key-value
/// stores, with a `url`, and `[outbound_http] connection_pooling`.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub key_value_stores: BTreeMap<String, Backing>,
    pub sqlite_databases: BTreeMap<String, Backing>,
    /// Reuse outbound HTTP connections per destination (Spin's default: on).
    pub connection_pooling: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            key_value_stores: BTreeMap::new(),
            sqlite_databases: BTreeMap::new(),
            connection_pooling: true,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, RawStore>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawStore>,
    #[serde(default)]
    outbound_http: Option<RawOutboundHttp>,
}

/// `[outbound_http]` as Spin reads it. Note Spin's quirk, kept here: once
/// the table is present, a missing `connection_pooling` means `false`
/// (serde's default), although pooling is on when the table is absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutboundHttp {
    #[serde(default)]
    connection_pooling: bool,
    /// Spin's caps on open outbound connections: accepted, not enforced here.
    #[serde(default)]
    #[allow(dead_code)]
    max_connections: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    max_concurrent_requests: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

impl RuntimeConfig {
    /// Spin's defaults when no runtime config names a label: the `default`
    /// store and database live in `.spin/` beside the manifest.
    pub fn spin_defaults(state_dir: &Path) -> Self {
        let mut config = Self::default();
        config.key_value_stores.insert(
            "default".into(),
            Backing::File(state_dir.join("sqlite_key_value.db")),
        );
        config.sqlite_databases.insert(
            "default".into(),
            Backing::File(state_dir.join("sqlite_db.db")),
        );
        config
    }

    /// Everything in memory (tests).
    pub fn in_memory() -> Self {
        let mut config = Self::default();
        config
            .key_value_stores
            .insert("default".into(), Backing::Memory);
        config
            .sqlite_databases
            .insert("default".into(), Backing::Memory);
        config
    }

    /// Reads a runtime-config file; labels it does not name keep Spin's defaults.
    /// Relative paths are relative to the file's folder, as in Spin.
    pub fn load(path: &Path, state_dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading runtime config {}", path.display()))?;
        let raw: RawRuntimeConfig = toml::from_str(&text)
            .with_context(|| format!("parsing runtime config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::spin_defaults(state_dir);
        let file = |label: &str, store: &RawStore, default_file: &str| -> Result<Backing> {
            if store.kind != "spin" {
                bail!(
                    "{label}: type {:?} is not supported by the test host here (only \"spin\", \
                     and \"redis\" for key-value stores); run under Spin 4.0 for libSQL",
                    store.kind
                );
            }
            Ok(match &store.path {
                Some(p) if p == ":memory:" => Backing::Memory,
                Some(p) => Backing::File(base.join(p)),
                None => Backing::File(state_dir.join(default_file)),
            })
        };
        for (label, store) in &raw.key_value_store {
            let backing = if store.kind == "redis" {
                // Spin's Redis store: `url` is required and must be a redis:// URL.
                let url = store
                    .url
                    .as_deref()
                    .with_context(|| format!("{label}: a \"redis\" store needs a `url`"))?;
                crate::storage::check_redis_url(url).with_context(|| label.clone())?;
                Backing::Redis(url.to_string())
            } else {
                file(label, store, &format!("{label}_key_value.db"))?
            };
            config.key_value_stores.insert(label.clone(), backing);
        }
        for (label, store) in &raw.sqlite_database {
            let backing = file(label, store, &format!("{label}.db"))?;
            config.sqlite_databases.insert(label.clone(), backing);
        }
        if let Some(outbound) = raw.outbound_http {
            config.connection_pooling = outbound.connection_pooling;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_variable_both_required_and_defaulted() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "x"
[variables]
a = { default = "1", required = true }
"#;
        let err = Manifest::parse(text).unwrap_err();
        assert!(format!("{err:#}").contains("cannot be required"), "{err:#}");
    }

    #[test]
    fn rejects_a_route_to_an_unknown_component() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "x"
[[trigger.http]]
route = "/..."
component = "nope"
"#;
        assert!(Manifest::parse(text).is_err());
    }

    #[test]
    fn parses_the_projects_manifest() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = Manifest::load(&path).unwrap();
        assert_eq!(manifest.application.name, "ragspin");
        assert!(manifest.component.contains_key("health"));
        assert!(manifest.variables["azure_openai_api_key"].secret);
    }

    #[test]
    fn runtime_config_paths_are_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("ragspin-rc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rc.toml");
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"spin\"\npath = \".spin/kv.db\"\n",
        )
        .unwrap();
        let config = RuntimeConfig::load(&file, &dir.join("state")).unwrap();
        assert_eq!(
            config.key_value_stores["default"],
            Backing::File(dir.join(".spin/kv.db"))
        );
        assert_eq!(
            config.sqlite_databases["default"],
            Backing::File(dir.join("state/sqlite_db.db"))
        );
        std::fs::write(&file, "[key_value_store.default]\ntype = \"redis\"\n").unwrap();
        assert!(
            RuntimeConfig::load(&file, &dir).is_err(),
            "redis without url"
        );
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"http://x\"\n",
        )
        .unwrap();
        assert!(RuntimeConfig::load(&file, &dir).is_err(), "not a redis URL");
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n",
        )
        .unwrap();
        assert_eq!(
            RuntimeConfig::load(&file, &dir).unwrap().key_value_stores["default"],
            Backing::Redis("redis://127.0.0.1:6379".into())
        );
        std::fs::write(&file, "[sqlite_database.default]\ntype = \"libsql\"\n").unwrap();
        assert!(RuntimeConfig::load(&file, &dir).is_err(), "libsql");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn outbound_connection_pooling_is_on_unless_the_runtime_config_turns_it_off() {
        let dir = std::env::temp_dir().join(format!("rs-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rc.toml");
        std::fs::write(&file, "[sqlite_database.default]\ntype = \"spin\"\n").unwrap();
        assert!(RuntimeConfig::load(&file, &dir).unwrap().connection_pooling);
        std::fs::write(&file, "[outbound_http]\nconnection_pooling = false\n").unwrap();
        assert!(!RuntimeConfig::load(&file, &dir).unwrap().connection_pooling);
        std::fs::write(&file, "[outbound_http]\nmax_connections = 4\n").unwrap();
        assert!(
            !RuntimeConfig::load(&file, &dir).unwrap().connection_pooling,
            "Spin reads a missing key in a present table as false"
        );
        std::fs::write(&file, "[outbound_http]\nconection_pooling = true\n").unwrap();
        assert!(
            RuntimeConfig::load(&file, &dir).is_err(),
            "a misspelt setting is an error"
        );
        assert!(RuntimeConfig::in_memory().connection_pooling);
        _ = std::fs::remove_dir_all(&dir);
    }
}
