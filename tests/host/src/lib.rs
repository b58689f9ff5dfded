//! A dev-only host that runs ragspin's compiled Spin components in wasmtime 44
//! (the wasmtime Spin 4.0 embeds), the way `spin up` does, because the Spin
//! CLI cannot be installed on development or CI machines.
//!
//! What it reproduces: `spin.toml` routing (exact, `:name`, trailing `/...`,
//! exact beats wildcard, longest prefix wins), the `spin-*` request headers
//! and absolute request URI, `spin:variables` (defaults, `SPIN_VARIABLE_*`
//! overrides, required variables refusing start-up), `spin:key-value` and
//! `spin:sqlite` on real SQLite files or memory with Spin's access rules
//! (key-value also on Redis, `type = "redis"`),
//! outbound `wasi:http` only to `allowed_outbound_hosts`, instance reuse
//! (128 requests, 16 concurrent, 1 s idle) and Spin's empty-bodied 500 when a
//! handler fails. What it does not: libSQL, service chaining,
//! TLS, other triggers. Where behaviour was assumed rather than observed on a
//! real Spin, the README's "Test host" section says so.

pub mod manifest;
pub mod outbound;
pub mod reference;
pub mod routes;
pub mod spin;
pub mod storage;
pub mod variables;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ragspin:host/spin-imports",
        imports: { default: async | trappable },
        with: {
            "spin:key-value/key-value.store": crate::spin::KvStoreHandle,
            "spin:sqlite/sqlite.connection": crate::spin::SqliteHandle,
        },
    });
}

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
pub use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::handler::{HandlerState, Proxy, ProxyHandler, ProxyPre, StoreBundle};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::{WasiHttpCtxView, WasiHttpView};

use manifest::{Manifest, RuntimeConfig};
use outbound::{AllowedHosts, OutboundClient, OutboundHooks};
use routes::Router;
use storage::{Backends, KvBackend, SqliteBackend};
use variables::AppVariables;

/// Spin 4.0's instance-reuse defaults for `wasi:http@0.3` components.
pub const MAX_INSTANCE_REUSE: usize = 128;
pub const MAX_CONCURRENT_REUSE: usize = 16;
pub const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// The body every response carries.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// What a component sees of its configuration.
#[derive(Debug)]
pub struct ComponentConfig {
    pub id: String,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub variables: BTreeMap<String, String>,
    pub allowed_hosts: Arc<AllowedHosts>,
}

/// State shared by every instance of the app.
#[derive(Debug)]
pub struct AppShared {
    pub variables: AppVariables,
    pub backends: Backends,
    /// Where components' stdout goes.
    pub stdout: Stdout,
    /// Outbound HTTP, with the app's connection pool (shared by instances).
    pub outbound: OutboundClient,
}

/// The data of one instance's store.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    component: Arc<ComponentConfig>,
    app: Arc<AppShared>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

struct ComponentHandler {
    engine: Engine,
    config: Arc<ComponentConfig>,
    app: Arc<AppShared>,
}

impl HandlerState for ComponentHandler {
    type StoreData = State;

    fn new_store(&self, _req_id: Option<u64>) -> wasmtime::Result<StoreBundle<State>> {
        let mut wasi = WasiCtxBuilder::new();
        match &self.app.stdout {
            Stdout::Inherit => wasi.inherit_stdout(),
            Stdout::Discard => wasi.stdout(wasmtime_wasi::p2::pipe::SinkOutputStream),
            Stdout::Capture(pipe) => wasi.stdout(pipe.clone()),
        };
        let wasi = wasi.inherit_stderr().build();
        let state = State {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                component: self.config.id.clone(),
                allowed: self.config.allowed_hosts.clone(),
                client: self.app.outbound.clone(),
            },
            component: self.config.clone(),
            app: self.app.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        // With epoch interruption on, a store without a deadline traps at
        // once; Spin's `StoreBuilder` sets this "practically forever" one.
        store.set_epoch_deadline(u64::MAX / 2);
        if fuel_metering() {
            wt(store.set_fuel(u64::MAX)).map_err(|e| wasmtime::Error::msg(e.to_string()))?;
        }
        Ok(StoreBundle {
            store,
            write_profile: Box::new(|_| {}),
        })
    }

    fn request_timeout(&self) -> Duration {
        Duration::MAX
    }

    fn idle_instance_timeout(&self) -> Duration {
        IDLE_INSTANCE_TIMEOUT
    }

    fn max_instance_reuse_count(&self) -> usize {
        MAX_INSTANCE_REUSE
    }

    fn max_instance_concurrent_reuse_count(&self) -> usize {
        MAX_CONCURRENT_REUSE
    }

    fn handle_worker_error(&self, error: wasmtime::Error) {
        eprintln!("[{}] instance dropped: {error:?}", self.config.id);
    }
}

/// A copy of `manifest` written into `dir`, its components' `source`s
/// (`target/wasm32-wasip2/release/*.wasm`) pointing at the `.wasm` files
/// there: the benchmarks' A/B modes run two builds side by side.
pub fn manifest_for_build(manifest: &Path, dir: &Path) -> Result<PathBuf> {
    let dir = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?
        .replace(
            "source = \"target/wasm32-wasip2/release/",
            &format!("source = \"{}/", dir.display()),
        );
    let copy = dir.join("spin.toml");
    std::fs::write(&copy, text).with_context(|| format!("writing {}", copy.display()))?;
    Ok(copy)
}

/// The captured lines that are JSON: the components' request log records.
pub fn captured_records(pipe: &MemoryOutputPipe) -> Vec<serde_json::Value> {
    captured_lines(pipe)
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The complete lines written to a captured stdout so far.
pub fn captured_lines(pipe: &MemoryOutputPipe) -> Vec<String> {
    let bytes = pipe.contents();
    let text = String::from_utf8_lossy(&bytes);
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| l.trim_end().to_owned())
        .collect()
}

/// Where components' stdout goes.
#[derive(Debug, Clone)]
pub enum Stdout {
    /// The host process's stdout, as Spin does.
    Inherit,
    /// Nowhere (tests, unless `RAGSPIN_TEST_LOGS` is set).
    Discard,
    /// Into memory, for tests that read the log lines.
    Capture(MemoryOutputPipe),
}

/// How to build a [`Host`].
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Path of `spin.toml`; `source` paths are relative to its folder.
    pub manifest: PathBuf,
    /// Key-value and SQLite backings.
    pub runtime_config: RuntimeConfig,
    /// Variable values, as a provider gives them (highest priority).
    pub variables: BTreeMap<String, String>,
    /// Also read `SPIN_VARIABLE_*` from the process environment (Spin's env provider).
    pub env_variables: bool,
    /// Only load these components (all when empty).
    pub only_components: Vec<String>,
    /// Where the components' stdout (one JSON log line per request) goes.
    pub stdout: Stdout,
}

impl HostOptions {
    /// Options for tests: everything in memory, no process environment.
    pub fn for_tests(manifest: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            runtime_config: RuntimeConfig::in_memory(),
            variables: BTreeMap::new(),
            env_variables: false,
            only_components: Vec::new(),
            stdout: if std::env::var_os("RAGSPIN_TEST_LOGS").is_some() {
                Stdout::Inherit
            } else {
                Stdout::Discard
            },
        }
    }

    /// Capture the components' stdout (up to 64 MiB); read it with
    /// [`captured_lines`].
    pub fn capturing_stdout(mut self) -> (Self, MemoryOutputPipe) {
        let pipe = MemoryOutputPipe::new(64 << 20);
        self.stdout = Stdout::Capture(pipe.clone());
        (self, pipe)
    }

    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.insert(name.to_string(), value.to_string());
        self
    }

    /// Azure OpenAI at `endpoint` with `key`, deployments
    /// `text-embedding-3-small` and `gpt-4o-mini` (the fake's defaults).
    pub fn azure(self, endpoint: &str, key: &str) -> Self {
        self.variable("azure_openai_endpoint", endpoint)
            .variable("azure_openai_api_key", key)
            .variable(
                "azure_openai_embedding_deployment",
                "text-embedding-3-small",
            )
            .variable("azure_openai_chat_deployment", "gpt-4o-mini")
    }

    /// [`azure`](Self::azure) pointing at a running fake.
    pub fn fake_azure(self, fake: &ragspin_fake_azure::FakeAzure) -> Self {
        self.azure(&fake.endpoint(), fake.api_key())
    }

    /// Auth configured for benches and tools: a `jwt_secret` and the
    /// bootstrap admin with `password` (log in with [`RunningHost::login`]).
    pub fn admin(self, password: &str) -> Result<Self> {
        let hash = ragspin_access::password::hash_password(
            password,
            &ragspin_access::SeededRandom::new(3),
        )
        .map_err(|e| anyhow::anyhow!("hashing the admin password: {e}"))?;
        Ok(self
            .variable("jwt_secret", "bench-secret-0123456789-0123456789-abcd")
            .variable("admin_password_hash", &hash))
    }
}

/// A loaded app: an engine, its components and their handlers.
pub struct Host {
    router: Router,
    handlers: HashMap<String, ProxyHandler<ComponentHandler>>,
    app: Arc<AppShared>,
}

/// Whether `RAGSPIN_HOST_FUEL` is set (read once).
fn fuel_metering() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("RAGSPIN_HOST_FUEL").is_some())
}

/// Spin's epoch tick (`spin_core::DEFAULT_EPOCH_TICK_INTERVAL`).
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The process-wide engine, configured as Spin 4.0 configures its own
/// (`spin_core::Config::default`): component model with async on, epoch
/// interruption (a thread ticks every [`EPOCH_TICK`]; stores get a deadline
/// of `u64::MAX / 2` ticks, as Spin's `StoreBuilder` sets) and, where the
/// address space allows it, the pooling instance allocator with Spin's
/// defaults (see [`spin_pooling`]).
pub fn engine() -> Result<Engine> {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine.clone());
    }
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    if let Some(pooling) = spin_pooling() {
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    }
    // Profiling aid, not a Spin setting: `RAGSPIN_HOST_PERFMAP=1` writes
    // /tmp/perf-<pid>.map so `perf report` names the components' functions
    // (build them with `CARGO_PROFILE_RELEASE_STRIP=false` to keep names).
    if std::env::var_os("RAGSPIN_HOST_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Measuring aid, not a Spin setting: `RAGSPIN_HOST_FUEL=1` counts the
    // wasm operations each request runs (see `run_task`): a measure of a
    // component's CPU work that does not move with this VM's speed.
    if fuel_metering() {
        config.consume_fuel(true);
    }
    let engine = Engine::new(&config).map_err(|e| anyhow!("{e:?}"))?;
    let engine = ENGINE.get_or_init(|| engine).clone();
    static TICKER: std::sync::Once = std::sync::Once::new();
    TICKER.call_once(|| {
        let weak = engine.weak();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                let Some(engine) = weak.upgrade() else { break };
                engine.increment_epoch();
            }
        });
    });
    Ok(engine)
}

/// Spin 4.0's pooling allocator settings (`spin_core::Config::default`),
/// with the same `SPIN_*` environment overrides, or `None` where Spin
/// would not pool: `SPIN_WASMTIME_POOLING=0`, or (unless it is `1`) when
/// 42 bits of address space cannot be reserved for one memory.
fn spin_pooling() -> Option<wasmtime::PoolingAllocationConfig> {
    const MB: usize = 1 << 20;
    fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    match std::env::var("SPIN_WASMTIME_POOLING").as_deref() {
        Ok("0") => return None,
        Ok("1") => {}
        _ if !address_space_for_pooling() => return None,
        _ => {}
    }
    let max = env("SPIN_MAX_INSTANCE_COUNT", 1_000u32);
    let mut pooling = wasmtime::PoolingAllocationConfig::default();
    pooling
        .total_component_instances(env("SPIN_WASMTIME_INSTANCE_COUNT", max))
        .total_memories(env("SPIN_WASMTIME_TOTAL_MEMORIES", max))
        .total_tables(env("SPIN_WASMTIME_TOTAL_TABLES", 2 * max))
        .total_stacks(env("SPIN_WASMTIME_TOTAL_STACKS", max))
        .total_core_instances(env("SPIN_WASMTIME_TOTAL_CORE_INSTANCES", 4 * max))
        .table_elements(env("SPIN_WASMTIME_INSTANCE_TABLE_ELEMENTS", 100_000))
        .max_component_instance_size(env("SPIN_WASMTIME_INSTANCE_SIZE", 10 * MB))
        .max_core_instance_size(env("SPIN_WASMTIME_CORE_INSTANCE_SIZE", 10 * MB))
        .max_core_instances_per_component(env("SPIN_WASMTIME_CORE_INSTANCE_COUNT", 200))
        .max_tables_per_component(env("SPIN_WASMTIME_INSTANCE_TABLES", 64))
        .max_memories_per_component(env("SPIN_WASMTIME_INSTANCE_MEMORIES", 32))
        .max_tables_per_module(env("SPIN_WASMTIME_MAX_TABLES_PER_MODULE", 2))
        .max_memories_per_module(env("SPIN_WASMTIME_MAX_MEMORIES_PER_MODULE", 2))
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(env("SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT", 2 * MB))
        .table_keep_resident(env("SPIN_WASMTIME_TABLE_KEEP_RESIDENT", MB / 2));
    Some(pooling)
}

/// Spin's probe for the pooling allocator: can a 64-bit memory reserve
/// 42 bits of address space (some aarch64 and riscv64 systems have 39)?
fn address_space_for_pooling() -> bool {
    const BITS: u32 = 42;
    let mut config = Config::new();
    config.wasm_memory64(true);
    config.memory_reservation(1 << BITS);
    let Ok(engine) = Engine::new(&config) else {
        return false;
    };
    let mut store = Store::new(&engine, ());
    let ty = wasmtime::MemoryType::new64(0, Some(1 << (BITS - 16)));
    wasmtime::Memory::new(&mut store, ty).is_ok()
}

fn wt<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(|e| anyhow!("{e:?}"))
}

/// Registers every import the host provides.
pub fn linker(engine: &Engine) -> Result<Linker<State>> {
    let mut linker = Linker::<State>::new(engine);
    wt(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
    wt(wasmtime_wasi::p3::add_to_linker(&mut linker))?;
    wt(wasmtime_wasi_http::p3::add_to_linker(&mut linker))?;
    wt(bindings::spin::key_value::key_value::add_to_linker::<
        State,
        spin::Spin,
    >(&mut linker, |s| s))?;
    wt(bindings::spin::variables::variables::add_to_linker::<
        State,
        spin::Spin,
    >(&mut linker, |s| s))?;
    wt(bindings::spin::sqlite::sqlite::add_to_linker::<
        State,
        spin::Spin,
    >(&mut linker, |s| s))?;
    Ok(linker)
}

impl Host {
    /// Loads the manifest, resolves variables, opens the stores and compiles
    /// every component. Must run inside a tokio runtime.
    pub fn new(options: &HostOptions) -> Result<Self> {
        let manifest = Manifest::load(&options.manifest)?;
        let base = options
            .manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut provider = if options.env_variables {
            variables::env_provider(std::env::vars())
        } else {
            BTreeMap::new()
        };
        provider.extend(options.variables.clone());
        let app_vars = AppVariables::resolve(&manifest, &provider)?;

        let mut backends = Backends::default();
        for (label, backing) in &options.runtime_config.key_value_stores {
            backends.kv.insert(
                label.clone(),
                Arc::new(
                    KvBackend::open(backing)
                        .with_context(|| format!("key-value store {label:?}"))?,
                ),
            );
        }
        for (label, backing) in &options.runtime_config.sqlite_databases {
            backends.sqlite.insert(
                label.clone(),
                Arc::new(
                    SqliteBackend::open(backing)
                        .with_context(|| format!("SQLite database {label:?}"))?,
                ),
            );
        }
        // Spin refuses to start an app whose components name undefined stores.
        for (id, c) in &manifest.component {
            for label in &c.key_value_stores {
                if !backends.kv.contains_key(label) {
                    bail!(
                        "component {id:?} uses key-value store {label:?}, which the runtime config does not define"
                    );
                }
            }
            for label in &c.sqlite_databases {
                if !backends.sqlite.contains_key(label) {
                    bail!(
                        "component {id:?} uses SQLite database {label:?}, which the runtime config does not define"
                    );
                }
            }
        }
        let app = Arc::new(AppShared {
            variables: app_vars,
            backends,
            stdout: options.stdout.clone(),
            outbound: OutboundClient::new(options.runtime_config.connection_pooling),
        });

        let engine = engine()?;
        let linker = linker(&engine)?;
        let mut handlers = HashMap::new();
        for (id, c) in &manifest.component {
            if !options.only_components.is_empty() && !options.only_components.contains(id) {
                continue;
            }
            // Component variables must resolve at start-up, as in Spin.
            for (name, template) in &c.variables {
                variables::expand(template, &app.variables)
                    .with_context(|| format!("component {id:?} variable {name:?}"))?;
            }
            let path = base.join(&c.source);
            let component =
                load_component(&engine, &path).with_context(|| format!("component {id:?}"))?;
            let pre = wt(linker.instantiate_pre(&component)).with_context(|| {
                format!("component {id:?} imports something the host does not provide")
            })?;
            let pre =
                wt(wasmtime_wasi_http::p3::bindings::ServicePre::new(pre)).with_context(|| {
                    format!("component {id:?} does not export wasi:http/handler@0.3")
                })?;
            let config = Arc::new(ComponentConfig {
                id: id.clone(),
                key_value_stores: c.key_value_stores.clone(),
                sqlite_databases: c.sqlite_databases.clone(),
                variables: c.variables.clone(),
                allowed_hosts: Arc::new(AllowedHosts::resolve(
                    &c.allowed_outbound_hosts,
                    &app.variables,
                )),
            });
            let handler = ProxyHandler::new(
                ComponentHandler {
                    engine: engine.clone(),
                    config,
                    app: app.clone(),
                },
                ProxyPre::P3(pre),
            );
            handlers.insert(id.clone(), handler);
        }
        let router = Router::build(
            manifest
                .trigger
                .http
                .iter()
                .filter(|t| handlers.contains_key(&t.component))
                .map(|t| (t.route.as_str(), t.component.as_str())),
        )?;
        Ok(Self {
            router,
            handlers,
            app,
        })
    }

    /// Run-time fault switches for tests.
    pub fn faults(&self) -> &storage::Faults {
        &self.app.backends.faults
    }

    /// Routes one request to its component and returns the response.
    pub async fn handle<B>(&self, req: http::Request<B>, client: SocketAddr) -> http::Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        match self.try_handle(req, client).await {
            Ok(res) => res,
            Err(e) => {
                eprintln!("error handling request: {e:#}");
                empty(http::StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    async fn try_handle<B>(
        &self,
        req: http::Request<B>,
        client: SocketAddr,
    ) -> Result<http::Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let path = req.uri().path().to_string();
        let Some(route) = self.router.route(&path) else {
            return Ok(empty(http::StatusCode::NOT_FOUND));
        };
        let handler = self
            .handlers
            .get(&route.component)
            .ok_or_else(|| anyhow!("no handler for {}", route.component))?
            .clone();
        let req = prepare_request(req, &route, client)?;

        let (tx, rx) = tokio::sync::oneshot::channel::<http::Response<Body>>();
        let component = route.component.clone();
        handler.spawn(
            None,
            Box::new(move |store, proxy| {
                Box::pin(async move {
                    if let Err(e) = run_task(store, proxy, req, tx).await {
                        eprintln!("[{component}] {e:?}");
                    }
                })
            }),
        );
        // A sender dropped without a response: the guest failed (Spin: 500, empty body).
        Ok(rx
            .await
            .unwrap_or_else(|_| empty(http::StatusCode::INTERNAL_SERVER_ERROR)))
    }
}

async fn run_task(
    store: &wasmtime::component::Accessor<State>,
    proxy: &Proxy,
    req: http::Request<UnsyncBoxBody<Bytes, ErrorCode>>,
    tx: tokio::sync::oneshot::Sender<http::Response<Body>>,
) -> wasmtime::Result<()> {
    let Proxy::P3(service) = proxy else {
        wasmtime::bail!("only wasi:http@0.3 components are supported");
    };
    let fuel = |store: &wasmtime::component::Accessor<State>| {
        store.with(|mut s| {
            wasmtime::AsContextMut::as_context_mut(&mut s)
                .get_fuel()
                .unwrap_or(0)
        })
    };
    let before = fuel_metering().then(|| (fuel(store), req.uri().path().to_string()));
    let (request, request_io) = wasmtime_wasi_http::p3::Request::from_http(req);
    let handled = service.handle(store, request).await;
    // Operations run until the response is returned (a streamed body's
    // later work is not counted); concurrent requests on one instance
    // share the count.
    if let Some((at, path)) = before {
        let component = store.with(|mut s| s.data_mut().component.id.clone());
        eprintln!(
            "RAGSPIN_FUEL {component} {path} {}",
            at.saturating_sub(fuel(store))
        );
    }
    let response = match handled? {
        Ok(res) => res,
        Err(code) => {
            // The handler returned an error: Spin answers 500 with an empty body.
            eprintln!("handler returned error: {code:?}");
            _ = tx.send(empty(http::StatusCode::INTERNAL_SERVER_ERROR));
            return Ok(());
        }
    };
    let response = store.with(|mut s| response.into_http(&mut s, request_io))?;
    // Keep this task (and so the store's event loop) alive until the body is
    // fully read or dropped: the guest writes the body as it is read.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let response = response.map(|body| {
        TrackedBody {
            inner: body,
            _done: done_tx,
        }
        .boxed_unsync()
    });
    if tx.send(response).is_ok() {
        _ = done_rx.await;
    }
    Ok(())
}

/// A response body that tells its task when the client is done with it.
struct TrackedBody {
    inner: UnsyncBoxBody<Bytes, ErrorCode>,
    _done: tokio::sync::oneshot::Sender<()>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn empty(status: http::StatusCode) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_LENGTH, "0")
        .body(
            http_body_util::Empty::new()
                .map_err(|never: std::convert::Infallible| match never {})
                .boxed_unsync(),
        )
        .expect("static response")
}

/// Gives the request an absolute URI and Spin's `spin-*` headers.
fn prepare_request<B>(
    req: http::Request<B>,
    route: &routes::RouteMatch,
    client: SocketAddr,
) -> Result<http::Request<UnsyncBoxBody<Bytes, ErrorCode>>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    let (mut parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let scheme = parts.uri.scheme_str().unwrap_or("http").to_string();
    let full_url = format!("{scheme}://{host}{path_and_query}");
    parts.uri = full_url.parse().context("building the request URI")?;
    let mut set = |name: &str, value: &str| -> Result<()> {
        parts.headers.insert(
            http::HeaderName::from_bytes(name.as_bytes())?,
            http::HeaderValue::from_str(value)?,
        );
        Ok(())
    };
    set("spin-full-url", &full_url)?;
    set("spin-path-info", &route.path_info)?;
    set("spin-matched-route", &route.raw_route)?;
    set("spin-base-path", "/")?;
    set("spin-raw-component-route", &route.raw_route)?;
    set("spin-component-route", &route.route_prefix)?;
    set("spin-client-addr", &client.to_string())?;
    for (name, value) in &route.named {
        set(
            &format!("spin-path-match-{}", name.to_ascii_lowercase()),
            value,
        )?;
    }
    let body = body
        .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))
        .boxed_unsync();
    Ok(http::Request::from_parts(parts, body))
}

/// Compiles a component. Compiled components are kept for the life of the
/// process, keyed by path and contents, so tests that start many hosts pay
/// for Cranelift once (all hosts share [`engine`]).
pub fn load_component(engine: &Engine, path: &Path) -> Result<Component> {
    use std::hash::{Hash, Hasher};
    static CACHE: std::sync::Mutex<Vec<(PathBuf, u64, Component)>> =
        std::sync::Mutex::new(Vec::new());
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading {} (build the components first: `make build`)",
            path.display()
        )
    })?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let digest = hasher.finish();
    let mut cache = CACHE.lock().unwrap();
    if let Some((_, _, c)) = cache
        .iter()
        .find(|(p, d, c)| p == path && *d == digest && Engine::same(c.engine(), engine))
    {
        return Ok(c.clone());
    }
    let component = wt(Component::new(engine, &bytes))?;
    cache.retain(|(p, _, _)| p != path);
    cache.push((path.to_path_buf(), digest, component.clone()));
    Ok(component)
}

/// Imports and exports of a component, as `kind name` lines (for snapshots).
pub fn component_interface(engine: &Engine, path: &Path) -> Result<Vec<String>> {
    let component = load_component(engine, path)?;
    let ty = component.component_type();
    let mut lines: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| format!("import {name}"))
        .chain(ty.exports(engine).map(|(name, _)| format!("export {name}")))
        .collect();
    lines.sort();
    Ok(lines)
}

/// A host serving HTTP on a loopback port from a background thread.
pub struct RunningHost {
    pub addr: SocketAddr,
    host: Arc<Host>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningHost {
    /// Builds the host and serves it on `addr` (use port 0 for any free port).
    pub fn start(options: HostOptions, addr: SocketAddr) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let started = async {
                    let host = Arc::new(Host::new(&options)?);
                    let listener = tokio::net::TcpListener::bind(addr).await?;
                    anyhow::Ok((host, listener))
                }
                .await;
                match started {
                    Ok((host, listener)) => {
                        let local = listener.local_addr().map_err(anyhow::Error::from);
                        _ = ready_tx.send(local.map(|a| (a, host.clone())));
                        serve(host, listener, shutdown_rx).await;
                    }
                    Err(e) => {
                        _ = ready_tx.send(Err(e));
                    }
                }
            });
        });
        let (addr, host) = ready_rx
            .recv()
            .map_err(|_| anyhow!("host thread exited before starting"))??;
        Ok(Self {
            addr,
            host,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// Logs in as `admin` with `password` over HTTP; the access token.
    pub fn login(&self, password: &str) -> Result<String> {
        let login: serde_json::Value = reqwest::blocking::Client::new()
            .post(self.url("/auth/token"))
            .json(&serde_json::json!({"username": "admin", "password": password}))
            .send()?
            .json()?;
        login["access_token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("admin login failed: {login}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn faults(&self) -> &storage::Faults {
        self.host.faults()
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            _ = thread.join();
        }
    }
}

/// Accepts HTTP/1.1 connections until `shutdown` fires.
pub async fn serve(
    host: Arc<Host>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    loop {
        let (stream, client) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    continue;
                }
            },
        };
        _ = stream.set_nodelay(true);
        let host = host.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let host = host.clone();
                    async move { Ok::<_, std::convert::Infallible>(host.handle(req, client).await) }
                });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
}
