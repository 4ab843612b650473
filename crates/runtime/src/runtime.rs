//! The engine, its linkers, and preparing and loading functions.

use crate::artifact::{ArtifactDirs, engine_fingerprint, sha256_hex, write_atomic};
use crate::config::RuntimeConfig;
use crate::error::PrepareError;
use crate::state::{CommandState, ComponentState};
use crate::workers::{WorkerStats, Workers};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{self, Component};
use wasmtime::{Engine, InstanceAllocationStrategy, InstancePre, Module, PoolingAllocationConfig};

/// The kind of a function, detected from its binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A WASI preview 1 command module: stdin in, stdout out.
    Command,
    /// A component exporting `wasi:http/incoming-handler`.
    Http,
}

impl Kind {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Http => "http",
        }
    }

    /// Parses [`Kind::as_str`] back.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "command" => Some(Kind::Command),
            "http" => Some(Kind::Http),
            _ => None,
        }
    }
}

/// A module that passed validation and has a compiled artifact on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// sha256 of the module binary: its name in the cache.
    pub digest: String,
    /// What kind of function it is.
    pub kind: Kind,
    /// Size of the module binary, in bytes.
    pub size: u64,
    /// Whether this call compiled it (false: the artifact was cached).
    pub compiled: bool,
}

/// A function loaded from its artifact and pre-instantiated: what a warm
/// function keeps in memory. Cloning is cheap.
#[derive(Clone)]
pub struct Loaded(pub(crate) Pre);

#[derive(Clone)]
pub(crate) enum Pre {
    Command(InstancePre<CommandState>),
    CommandComponent(wasmtime_wasi::p2::bindings::CommandPre<ComponentState>),
    Http(wasmtime_wasi_http::p2::bindings::ProxyPre<ComponentState>),
}

/// Export of a `wasi:http/proxy` component.
const HTTP_HANDLER: &str = "wasi:http/incoming-handler@0.2";
/// Export of a `wasi:cli/command` component.
const CLI_RUN: &str = "wasi:cli/run@0.2";

/// Whether a binary is a core module or a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Core,
    Component,
}
/// Import namespace of WASI preview 1.
const WASI_P1: &str = "wasi_snapshot_preview1";

/// One per node: the wasmtime engine with its sandbox pool and epoch clock,
/// the linkers that define what guests may import, and the artifact cache.
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
    fingerprint: String,
    dirs: ArtifactDirs,
    command_linker: wasmtime::Linker<CommandState>,
    component_linker: component::Linker<ComponentState>,
    /// One lock per digest being compiled, so a module is compiled once even
    /// when two deploys of it race.
    compiling: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    compilations: AtomicU64,
    clock: Arc<EpochClock>,
    workers: Arc<Workers>,
}

impl Runtime {
    /// Builds the engine and the pool, starts the epoch clock, and opens the
    /// artifact cache under `cache_root`.
    pub fn new(config: RuntimeConfig, cache_root: &Path) -> Result<Self, PrepareError> {
        config.validate().map_err(PrepareError::Internal)?;
        let engine = build_engine(&config)?;
        let fingerprint = engine_fingerprint(&engine);
        let dirs = ArtifactDirs::create(cache_root, &fingerprint)?;
        dirs.remove_temporaries()?;

        let mut command_linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut command_linker, |s: &mut CommandState| {
            &mut s.wasi
        })
        .map_err(internal)?;

        let mut component_linker = component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker).map_err(internal)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker)
            .map_err(internal)?;
        crate::host::add_to_linker(&mut component_linker, ComponentState::host_view)
            .map_err(internal)?;

        let clock = EpochClock::start(&engine, config.epoch_tick)?;
        let workers = Arc::new(Workers::new(&engine, config.scheduler, config.workers));
        Ok(Runtime {
            engine,
            clock,
            workers,
            config,
            fingerprint,
            dirs,
            command_linker,
            component_linker,
            compiling: Mutex::new(HashMap::new()),
            compilations: AtomicU64::new(0),
        })
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Fingerprint of the engine configuration that keys compiled artifacts.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// How many modules this runtime has compiled since it started.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The node's workers, which run guests in their scheduler's order.
    pub(crate) fn workers(&self) -> &Arc<Workers> {
        &self.workers
    }

    /// How the workers stand now.
    pub fn worker_stats(&self) -> WorkerStats {
        self.workers.stats()
    }

    /// Marks a sandbox live until the guard drops: the epoch clock ticks
    /// only while one is.
    pub(crate) fn live_sandbox(&self) -> LiveSandbox {
        self.clock.enter()
    }

    /// A live sandbox must stop at `deadline`: when that is within
    /// [`SHORT_TICKS`] ticks, the epoch clock wakes then too.
    pub(crate) fn stop_at(&self, deadline: Instant) {
        let short = self.config.epoch_tick * SHORT_TICKS;
        if deadline.saturating_duration_since(Instant::now()) < short {
            self.clock.wake_at(deadline);
        }
    }

    /// Validates a module (binary or WAT text), detects its kind, checks that
    /// it imports nothing Weft does not provide, and stores it with its
    /// compiled artifact. A module whose artifact is already cached is not
    /// compiled again.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, PrepareError> {
        let binary = to_binary(bytes)?;
        let layer = detect_layer(&binary)?;
        let digest = sha256_hex(&binary);
        let size = binary.len() as u64;

        let lock = self.compile_lock(&digest);
        let guard = lock.lock();
        let artifact = self.dirs.artifact(&digest, layer == Layer::Component);
        let cached = if artifact.exists() && self.dirs.module(&digest).exists() {
            self.load_artifact(&artifact, layer).ok()
        } else {
            None
        };
        let (kind, compiled) = match cached {
            Some(loaded) => (loaded.kind(), false),
            None => {
                let code = self.compile(&binary, layer)?;
                // Check before storing: only modules Weft can run reach the cache.
                let kind = self.check(layer, &code)?.kind();
                write_atomic(&self.dirs.module(&digest), &binary)?;
                write_atomic(&artifact, &code)?;
                (kind, true)
            }
        };
        drop(guard);
        self.compiling.lock().remove(&digest);
        Ok(Prepared {
            digest,
            kind,
            size,
            compiled,
        })
    }

    /// Loads a prepared function from its on-disk artifact and
    /// pre-instantiates it. Recompiles from the stored module when the
    /// artifact is missing or was built by another engine configuration.
    pub fn load(&self, digest: &str) -> Result<Loaded, PrepareError> {
        let core = self.dirs.artifact(digest, false);
        let (path, layer) = if core.exists() {
            (core, Layer::Core)
        } else {
            (self.dirs.artifact(digest, true), Layer::Component)
        };
        match self.load_artifact(&path, layer) {
            Ok(loaded) => Ok(loaded),
            Err(first) => {
                let module = self.dirs.module(digest);
                let binary = std::fs::read(&module).map_err(|e| {
                    PrepareError::Internal(format!(
                        "artifact {} unusable ({first}) and module {} unreadable: {e}",
                        path.display(),
                        module.display()
                    ))
                })?;
                tracing::warn!(digest, error = %first, "recompiling artifact");
                let layer = detect_layer(&binary)?;
                let code = self.compile(&binary, layer)?;
                let path = self.dirs.artifact(digest, layer == Layer::Component);
                write_atomic(&path, &code)?;
                self.load_artifact(&path, layer)
            }
        }
    }

    /// Whether the module with this digest is stored.
    pub fn has_module(&self, digest: &str) -> bool {
        self.dirs.module(digest).exists()
    }

    /// The bytes of a stored module, as uploaded (binary form).
    pub fn module_bytes(&self, digest: &str) -> Result<Vec<u8>, PrepareError> {
        std::fs::read(self.dirs.module(digest))
            .map_err(|e| PrepareError::Internal(format!("module sha256:{digest} unreadable: {e}")))
    }

    /// Digests of every stored module.
    pub fn stored_modules(&self) -> Result<Vec<String>, PrepareError> {
        Ok(self.dirs.module_digests()?)
    }

    /// Deletes a stored module and its artifact.
    pub fn remove_module(&self, digest: &str) -> Result<(), PrepareError> {
        Ok(self.dirs.remove(digest)?)
    }

    fn compile_lock(&self, digest: &str) -> Arc<Mutex<()>> {
        self.compiling
            .lock()
            .entry(digest.to_string())
            .or_default()
            .clone()
    }

    fn compile(&self, binary: &[u8], layer: Layer) -> Result<Vec<u8>, PrepareError> {
        let code = match layer {
            Layer::Core => self.engine.precompile_module(binary),
            Layer::Component => self.engine.precompile_component(binary),
        }
        .map_err(|e| PrepareError::InvalidModule(format!("{e:#}")))?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        Ok(code)
    }

    /// Checks a freshly compiled artifact: right world, nothing ungranted.
    #[allow(unsafe_code)] // wasmtime's deserialization of our own artifacts
    fn check(&self, layer: Layer, code: &[u8]) -> Result<Loaded, PrepareError> {
        match layer {
            Layer::Core => {
                // SAFETY: `code` was produced by `Engine::precompile_module` of
                // this very engine a moment ago and has not left memory.
                let module =
                    unsafe { Module::deserialize(&self.engine, code) }.map_err(internal)?;
                self.instantiate_command(&module)
            }
            Layer::Component => {
                // SAFETY: as above, for `precompile_component`.
                let component =
                    unsafe { Component::deserialize(&self.engine, code) }.map_err(internal)?;
                self.instantiate_component(&component)
            }
        }
    }

    #[allow(unsafe_code)] // wasmtime's deserialization of our own artifacts
    fn load_artifact(&self, path: &Path, layer: Layer) -> Result<Loaded, PrepareError> {
        match layer {
            Layer::Core => {
                // SAFETY: the artifact cache only holds files this process
                // wrote with `write_atomic` from `Engine::precompile_module`,
                // under a directory keyed by this engine's fingerprint; the
                // data directory is the node's own.
                let module =
                    unsafe { Module::deserialize_file(&self.engine, path) }.map_err(internal)?;
                self.instantiate_command(&module)
            }
            Layer::Component => {
                // SAFETY: as above, for `Engine::precompile_component`.
                let component =
                    unsafe { Component::deserialize_file(&self.engine, path) }.map_err(internal)?;
                self.instantiate_component(&component)
            }
        }
    }

    fn instantiate_command(&self, module: &Module) -> Result<Loaded, PrepareError> {
        if module.get_export("_start").is_none() {
            return Err(PrepareError::UnsupportedWorld(
                "a core module must be a WASI preview 1 command exporting `_start`".into(),
            ));
        }
        for import in module.imports() {
            if import.module() != WASI_P1 {
                return Err(PrepareError::ImportNotGranted(format!(
                    "`{}::{}`: a command may import only `{WASI_P1}`",
                    import.module(),
                    import.name()
                )));
            }
        }
        let pre = self
            .command_linker
            .instantiate_pre(module)
            .map_err(|e| PrepareError::ImportNotGranted(format!("{e:#}")))?;
        Ok(Loaded(Pre::Command(pre)))
    }

    fn instantiate_component(&self, component: &Component) -> Result<Loaded, PrepareError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let exports_http = exports.iter().any(|n| n.starts_with(HTTP_HANDLER));
        let exports_run = exports.iter().any(|n| n.starts_with(CLI_RUN));
        if !exports_http && !exports_run {
            return Err(PrepareError::UnsupportedWorld(format!(
                "a component must export `{HTTP_HANDLER}.x` (the wasi:http/proxy world) \
                 or `{CLI_RUN}.x` (the wasi:cli/command world); it exports [{}]",
                exports.join(", ")
            )));
        }
        for (name, _) in ty.imports(&self.engine) {
            if !name.starts_with("wasi:") && !name.starts_with("weft:fabric/") {
                return Err(PrepareError::ImportNotGranted(format!(
                    "`{name}`: a component may import only WASI interfaces and `weft:fabric` \
                     (see the `wit/` package)"
                )));
            }
        }
        let pre = self
            .component_linker
            .instantiate_pre(component)
            .map_err(|e| PrepareError::ImportNotGranted(format!("{e:#}")))?;
        if exports_http {
            let proxy = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
                .map_err(|e| PrepareError::UnsupportedWorld(format!("{e:#}")))?;
            Ok(Loaded(Pre::Http(proxy)))
        } else {
            let command = wasmtime_wasi::p2::bindings::CommandPre::new(pre)
                .map_err(|e| PrepareError::UnsupportedWorld(format!("{e:#}")))?;
            Ok(Loaded(Pre::CommandComponent(command)))
        }
    }
}

fn internal(e: wasmtime::Error) -> PrepareError {
    PrepareError::Internal(format!("{e:#}"))
}

/// Accepts WAT text as well as binaries, like wasmtime does.
fn to_binary(bytes: &[u8]) -> Result<Vec<u8>, PrepareError> {
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes.to_vec());
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if text.trim_start().starts_with('(') || text.trim_start().starts_with(";;") => {
            wat::parse_str(text).map_err(|e| PrepareError::InvalidModule(format!("WAT: {e}")))
        }
        _ => Err(PrepareError::InvalidModule(
            "not a WebAssembly binary (no `\\0asm` header) nor WAT text".into(),
        )),
    }
}

fn detect_layer(binary: &[u8]) -> Result<Layer, PrepareError> {
    // `\0asm`, then a 16-bit version and a 16-bit layer: layer 0 is a core
    // module (version 1), layer 1 a component.
    match binary.get(4..8) {
        Some([1, 0, 0, 0]) => Ok(Layer::Core),
        Some([_, _, 1, 0]) => Ok(Layer::Component),
        _ => Err(PrepareError::InvalidModule(
            "unknown WebAssembly binary version or layer".into(),
        )),
    }
}

/// Bytes of each linear memory slot kept mapped between instances when
/// only dirtied pages are reset: covers a Rust guest's 1 MiB stack and its
/// first heap pages.
const MEMORY_KEEP_RESIDENT: usize = 2 << 20;

fn build_engine(config: &RuntimeConfig) -> Result<Engine, PrepareError> {
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memories_per_module(1)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX));
    // A slot is reset for its next instance. Where the kernel has the
    // PAGEMAP_SCAN ioctl (Linux 6.7+), only the pages the last instance
    // dirtied, within the first MEMORY_KEEP_RESIDENT bytes, are reset and
    // stay mapped: no madvise, no page faults, no TLB shootdowns on the
    // next request. Elsewhere a little is kept resident and reset by memset,
    // the rest given back with madvise.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(64 << 10);
    } else {
        pool.linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10);
    }

    let mut cfg = wasmtime::Config::new();
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .consume_fuel(config.fuel)
        .memory_init_cow(true)
        .wasm_component_model(true)
        .max_wasm_stack(config.max_wasm_stack)
        .async_stack_size(config.max_wasm_stack + (1 << 20));
    Engine::new(&cfg).map_err(|e| PrepareError::Internal(format!("building the engine: {e:#}")))
}

/// Ticks the epoch clock keeps sleeping through after the last sandbox
/// ends, before it parks: a steady flow of short requests does not pay a
/// wake-up each.
const IDLE_TICKS: u32 = 100;

/// A thread that advances the engine's epoch every `tick` while any sandbox
/// is live, and sleeps otherwise: an idle node uses no CPU (after
/// `IDLE_TICKS` ticks). It ends once the engine is gone.
pub(crate) struct EpochClock {
    live: AtomicUsize,
    thread: std::thread::Thread,
    /// Deadlines of live sandboxes close enough to end between ticks
    /// (`SHORT_TICKS`): the clock also wakes at each, so a short timeout
    /// stops its guest at once rather than at the next tick.
    wakes: parking_lot::Mutex<std::collections::BinaryHeap<std::cmp::Reverse<Instant>>>,
}

/// Timeouts shorter than this many ticks get a wake of the clock at their
/// deadline: a tick late is a large share of them (24 % at 5 ms, measured).
/// Longer ones are stopped at the next tick, a small share of them, and
/// keep the heap of wakes small.
pub(crate) const SHORT_TICKS: u32 = 100;

impl EpochClock {
    fn start(engine: &Engine, tick: Duration) -> Result<Arc<EpochClock>, PrepareError> {
        let weak = engine.weak();
        let (tx, rx) = std::sync::mpsc::channel::<Arc<EpochClock>>();
        let handle = std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                let Ok(clock) = rx.recv() else { return };
                let mut idle = 0u32;
                while let Some(engine) = weak.upgrade() {
                    if clock.live.load(Ordering::Acquire) == 0 {
                        drop(engine);
                        idle = idle.saturating_add(1);
                        if idle <= IDLE_TICKS {
                            // Between requests of a steady flow: no need
                            // for `enter` to wake us.
                            std::thread::sleep(tick);
                        } else {
                            // Woken by `enter`; the timeout only notices a
                            // dropped engine.
                            std::thread::park_timeout(Duration::from_secs(1));
                        }
                        continue;
                    }
                    idle = 0;
                    engine.increment_epoch();
                    drop(engine);
                    // Until the next tick, or a short deadline before it.
                    let next_tick = Instant::now() + tick;
                    loop {
                        let until = clock.earliest().map_or(next_tick, |w| w.min(next_tick));
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        std::thread::park_timeout(until - now);
                    }
                    clock.passed(Instant::now());
                }
            })
            .map_err(|e| PrepareError::Internal(format!("starting the epoch clock: {e}")))?;
        let clock = Arc::new(EpochClock {
            live: AtomicUsize::new(0),
            thread: handle.thread().clone(),
            wakes: parking_lot::Mutex::default(),
        });
        tx.send(clock.clone())
            .map_err(|_| PrepareError::Internal("the epoch clock thread died".into()))?;
        Ok(clock)
    }

    /// Wakes the clock (and so every sandbox's epoch check) at `at`.
    pub(crate) fn wake_at(&self, at: Instant) {
        let mut w = self.wakes.lock();
        let first = w.peek().is_none_or(|e| at < e.0);
        w.push(std::cmp::Reverse(at));
        drop(w);
        if first {
            self.thread.unpark();
        }
    }

    fn earliest(&self) -> Option<Instant> {
        self.wakes.lock().peek().map(|e| e.0)
    }

    /// Forgets the wakes at or before `now`.
    fn passed(&self, now: Instant) {
        let mut w = self.wakes.lock();
        while w.peek().is_some_and(|e| e.0 <= now) {
            w.pop();
        }
    }

    fn enter(self: &Arc<Self>) -> LiveSandbox {
        if self.live.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        LiveSandbox(self.clone())
    }
}

/// Keeps the epoch clock ticking while held.
pub(crate) struct LiveSandbox(Arc<EpochClock>);

impl Drop for LiveSandbox {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 8) "hi")
        (func (export "_start")
            (i32.store (i32.const 0) (i32.const 8))
            (i32.store (i32.const 4) (i32.const 2))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20)))))"#;

    fn runtime(dir: &Path) -> Runtime {
        let cfg = RuntimeConfig {
            max_instances: 4,
            ..RuntimeConfig::default()
        };
        Runtime::new(cfg, dir).unwrap()
    }

    async fn run(rt: &Runtime, loaded: &Loaded) -> Vec<u8> {
        let out = loaded
            .run_command(rt, bytes::Bytes::new(), crate::Invocation::new("t"))
            .await;
        out.result.unwrap().to_vec()
    }

    #[tokio::test]
    async fn compiles_once_and_recovers_a_lost_or_corrupt_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        let p = rt.prepare(HELLO.as_bytes()).unwrap();
        assert!(p.compiled);
        assert_eq!(p.kind, Kind::Command);
        assert!(!rt.prepare(HELLO.as_bytes()).unwrap().compiled);
        assert_eq!(rt.compilations(), 1);
        assert_eq!(run(&rt, &rt.load(&p.digest).unwrap()).await, b"hi");

        // A corrupt artifact is rebuilt from the stored module.
        let artifact = rt.dirs.artifact(&p.digest, false);
        std::fs::write(&artifact, b"garbage").unwrap();
        assert_eq!(run(&rt, &rt.load(&p.digest).unwrap()).await, b"hi");
        assert_eq!(rt.compilations(), 2);
        // So is a missing one.
        std::fs::remove_file(&artifact).unwrap();
        assert_eq!(run(&rt, &rt.load(&p.digest).unwrap()).await, b"hi");
        assert_eq!(rt.compilations(), 3);

        // A new runtime on the same cache (a restart) compiles nothing.
        drop(rt);
        let rt = runtime(dir.path());
        assert!(!rt.prepare(HELLO.as_bytes()).unwrap().compiled);
        assert_eq!(run(&rt, &rt.load(&p.digest).unwrap()).await, b"hi");
        assert_eq!(rt.compilations(), 0);
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        let err = |b: &[u8]| rt.prepare(b).unwrap_err().code().as_str();
        assert_eq!(err(b"nope"), "invalid_module");
        assert_eq!(err(b"\0asm\x02\0\0\0"), "invalid_module");
        assert_eq!(err(b"(module)"), "unsupported_world");
        assert_eq!(err(b"(component)"), "unsupported_world");
        assert_eq!(
            err(br#"(module (import "env" "f" (func)) (func (export "_start")))"#),
            "import_not_granted"
        );
        // Nothing refused was stored.
        assert!(rt.stored_modules().unwrap().is_empty());
    }
}
