//! `weft-bench`: Weft's own invocation path against bare wasmtime, side by
//! side in one run, on the same modules; results as ratios.
//!
//! ```text
//! cargo run --release -p weft-bench -- [all|startup|memory|cold|kv|queue|mqtt|fabric|continuum|handoff|state|chains|moves|workflow|colocation|placement|sim|livesim] [--guests DIR] [--quick]
//! ```
//!
//! * **startup** — sandbox start (instantiate, no call) and a full invocation,
//!   p50 and p99 in µs.
//! * **memory** — resident memory per live sandbox, before and after running,
//!   each variant in a fresh process.
//! * **cold** — cold start of a scaled-to-zero function from its on-disk
//!   artifact (load + instantiate + run), in-process and in a fresh process.
//!
//! * **kv** — key-value get and set from a guest, embedded and Redis, against
//!   `redis-benchmark`, the `redis` crate and redb on the same server and disk.
//! * **queue** — accepted asynchronous invocations per second and
//!   enqueue-to-start latency, with the durable write in the path.
//! * **mqtt** — MQTT message to function start, against the broker's own hop.
//! * **fabric** — a remote invocation over NATS against a local one and a bare
//!   NATS request/reply (the floor).
//! * **continuum** — a latency-bound function across an emulated 20 ms
//!   edge–cloud link: placed by Weft against always-local and always-cloud.
//! * **handoff** — urgent work at a loaded edge node across an emulated
//!   10 ms link: handed off by slack against Load+net placement alone.
//! * **state** — a stateful invocation by state model (edge, function,
//!   client) against the same guest without state, and the checkpoint of an
//!   actor holding 1 MiB.
//! * **chains** — seed 003's chains of 2–10 stateful steps under each
//!   state model, on one edge node with the external store 20 ms away and
//!   the site's 1 ms away: latency and state bytes over a network per chain;
//!   then the same chains across an edge and a cloud node 20 ms apart, each
//!   step placed by Weft: latency, and how many steps ran in the cloud.
//! * **moves** — moving an actor holding 1 MiB to its next owner when its
//!   owner leaves, on loopback and over a 20 ms link, against the bare reads
//!   of its checkpoint.
//! * **workflow** — a durable workflow step (embedded store) against a
//!   direct invocation: a 3- and a 10-step run end to end, steps per
//!   second at 1 and 64 concurrent runs, and step 1,000 against step 10.
//! * **colocation** — a 5-step workflow of 1 MiB intermediates across a
//!   20 ms edge–cloud link: each step placed by Weft, against all at the
//!   edge and all in the cloud, one run at a time and 8 at once.
//! * **placement** — one `weft_sched::place` decision over 1,000 nodes: the
//!   full scan and the local fast path, p50/p99/max in µs.
//! * **sim** — the discrete-event simulator, one thread: events per second
//!   of its queue alone and of seed 003's continuum under each policy.
//! * **livesim** — a three-node continuum (two edge nodes, a cloud 10 ms
//!   away) run live and in the simulator: p50/p90 latency and placement.
//!
//! The bare side is wasmtime with the pooling allocator, `InstancePre` and
//! WASI preview 1, and no Weft code: the floor. The node benchmarks (`kv`,
//! `queue`, `mqtt`) run a node in-process, build their guests from
//! `bench/guests/rust/`, and start redis-server and mosquitto themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::error::Context as _;
use wasmtime::{
    Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig, Store,
};
use wasmtime::{Result, bail, ensure, format_err};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use weft_runtime::{Invocation, Loaded, Runtime, RuntimeConfig};

mod chains;
mod colocation;
mod continuum;
mod fabric;
mod handoff;
mod kv;
mod livesim;
mod moves;
mod mqtt;
mod node;
mod placement;
mod queue;
mod sim;
mod state;
mod workflow;

/// The modules measured: a null C program and MiBench-style C programs.
const MODULES: &[&str] = &["null", "basicmath", "crc32", "sha", "qsort"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("all");
    let quick = args.iter().any(|a| a == "--quick");
    let guests = args
        .iter()
        .position(|a| a == "--guests")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/guests-out"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match mode {
        "memory-child" => rt.block_on(memory_child(
            &args[1],
            &guests.join(&args[2]),
            args[3].parse()?,
        )),
        "cold-child" => rt.block_on(cold_child(&args[1], &guests.join(&args[2]))),
        "startup" | "memory" | "cold" | "kv" | "queue" | "mqtt" | "fabric" | "continuum"
        | "handoff" | "state" | "chains" | "moves" | "workflow" | "colocation" | "placement"
        | "sim" | "livesim" | "all" => {
            println!("{}", machine());
            if matches!(mode, "startup" | "all") {
                rt.block_on(startup(&guests, quick))?;
            }
            if matches!(mode, "memory" | "all") {
                memory(&guests, quick)?;
            }
            if matches!(mode, "cold" | "all") {
                rt.block_on(cold(&guests, quick))?;
            }
            if matches!(
                mode,
                "kv" | "queue"
                    | "mqtt"
                    | "fabric"
                    | "continuum"
                    | "handoff"
                    | "state"
                    | "chains"
                    | "moves"
                    | "workflow"
                    | "colocation"
                    | "livesim"
                    | "all"
            ) {
                node_benches(mode, quick).map_err(|e| format_err!("{e:#}"))?;
            }
            if matches!(mode, "placement" | "all") {
                placement::run(quick).map_err(|e| format_err!("{e:#}"))?;
            }
            if matches!(mode, "sim" | "all") {
                sim::run(quick).map_err(|e| format_err!("{e:#}"))?;
            }
            Ok(())
        }
        other => bail!(
            "unknown mode `{other}`: use all, startup, memory, cold, kv, queue, mqtt, fabric, continuum, handoff, state, chains, moves, workflow, colocation, placement, sim or livesim"
        ),
    }
}

/// The node benchmarks, on a multi-threaded runtime as `weft up` uses.
fn node_benches(mode: &str, quick: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if matches!(mode, "kv" | "all") {
        rt.block_on(kv::run(quick))?;
    }
    if matches!(mode, "queue" | "all") {
        rt.block_on(queue::run(quick))?;
    }
    if matches!(mode, "mqtt" | "all") {
        rt.block_on(mqtt::run(quick))?;
    }
    if matches!(mode, "fabric" | "all") {
        rt.block_on(fabric::run(quick))?;
    }
    if matches!(mode, "continuum" | "all") {
        rt.block_on(continuum::run(quick))?;
    }
    if matches!(mode, "state" | "all") {
        rt.block_on(state::run(quick))?;
    }
    if matches!(mode, "chains" | "all") {
        rt.block_on(chains::run(quick))?;
        rt.block_on(chains::run_fabric(quick))?;
    }
    if matches!(mode, "moves" | "all") {
        rt.block_on(moves::run(quick))?;
    }
    if matches!(mode, "workflow" | "all") {
        rt.block_on(workflow::run(quick))?;
    }
    if matches!(mode, "colocation" | "all") {
        rt.block_on(colocation::run(quick))?;
    }
    if matches!(mode, "livesim" | "all") {
        rt.block_on(livesim::run(quick))?;
    }
    if matches!(mode, "handoff" | "all") {
        // Two nodes of one worker each, the load generator and the fabric's
        // I/O: a thread more than the guests can take.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()?;
        rt.block_on(handoff::run(quick))?;
    }
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "machine: {cpu}, {cores} cores; wasmtime 48.0.8; tokio current-thread runtime (startup, memory, cold), multi-thread (kv, queue, mqtt)"
    )
}

fn module_path(guests: &Path, name: &str) -> PathBuf {
    guests.join(format!("bench-{name}.wasm"))
}

// ------------------------------------------------------------------ the two sides

/// Bare wasmtime: pooling allocator, `InstancePre`, WASI preview 1.
struct Bare {
    engine: Engine,
    linker: Linker<WasiP1Ctx>,
    epoch: bool,
}

impl Bare {
    /// `epoch`: compile with epoch interruption (as Weft must, to enforce
    /// deadlines) but never interrupt: isolates the cost of that
    /// instrumentation from the cost of Weft's own code.
    fn new(max_instances: u32, epoch: bool) -> Result<Bare> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(max_instances)
            .total_memories(max_instances)
            .total_tables(max_instances)
            .total_stacks(max_instances)
            .max_memory_size(1 << 30);
        let mut cfg = wasmtime::Config::new();
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        cfg.epoch_interruption(epoch);
        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |c| c)?;
        Ok(Bare {
            engine,
            linker,
            epoch,
        })
    }

    fn pre(&self, module: &Module) -> Result<InstancePre<WasiP1Ctx>> {
        self.linker.instantiate_pre(module)
    }

    fn store(&self, input: &Bytes) -> (Store<WasiP1Ctx>, MemoryOutputPipe) {
        let stdout = MemoryOutputPipe::new(16 << 20);
        let ctx = wasmtime_wasi::WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(input.clone()))
            .stdout(stdout.clone())
            .build_p1();
        let mut store = Store::new(&self.engine, ctx);
        if self.epoch {
            store.set_epoch_deadline(u64::MAX / 2);
        }
        (store, stdout)
    }

    async fn invoke(&self, pre: &InstancePre<WasiP1Ctx>, input: &Bytes) -> Result<Bytes> {
        let (mut store, stdout) = self.store(input);
        let instance = pre.instantiate_async(&mut store).await?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        exit_ok(start.call_async(&mut store, ()).await)?;
        Ok(stdout.contents())
    }
}

/// A command's `_start` ends with `proc_exit(0)`: that is success.
fn exit_ok(r: wasmtime::Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e)
            if e.downcast_ref::<wasmtime_wasi::I32Exit>()
                .is_some_and(|x| x.0 == 0) =>
        {
            Ok(())
        }
        Err(e) => Err(format_err!("{e:#}")),
    }
}

/// Weft: the runtime, a loaded function, and an invocation as the controller
/// makes them.
struct Weft {
    rt: Runtime,
    _cache: tempfile::TempDir,
}

impl Weft {
    fn new(max_instances: u32) -> Result<Weft> {
        let cache = tempfile::tempdir()?;
        let rt = Runtime::new(
            RuntimeConfig {
                max_instances,
                ..RuntimeConfig::default()
            },
            cache.path(),
        )?;
        Ok(Weft { rt, _cache: cache })
    }

    fn load(&self, wasm: &[u8]) -> Result<(String, Loaded)> {
        let p = self.rt.prepare(wasm)?;
        let loaded = self.rt.load(&p.digest)?;
        Ok((p.digest, loaded))
    }
}

fn invocation() -> Invocation {
    let mut inv = Invocation::new("bench");
    inv.log = Arc::new(|_| {});
    inv.limits.timeout = Duration::from_secs(60);
    inv
}

// ------------------------------------------------------------------ statistics

fn micros(mut ns: Vec<u64>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

fn elapsed_ns(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

// ------------------------------------------------------------------ startup

async fn startup(guests: &Path, quick: bool) -> Result<()> {
    let weft = Weft::new(64)?;
    let bare = Bare::new(64, false)?;
    let bare_epoch = Bare::new(64, true)?;
    let input = Bytes::new();
    println!();
    println!("## Sandbox start and invocation (µs; ratios are Weft / bare at p50)");
    println!();
    println!(
        "`bare + epoch` compiles with epoch interruption, as Weft must to enforce deadlines, and never interrupts."
    );
    println!();
    println!(
        "| module | start Weft p50 / p99 | start bare p50 / p99 | start ratio | invoke Weft p50 / p99 | invoke bare p50 / p99 | ratio | invoke bare + epoch p50 / p99 | ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for name in MODULES {
        let wasm =
            std::fs::read(module_path(guests, name)).with_context(|| format!("module {name}"))?;
        let (_, loaded) = weft.load(&wasm)?;
        let module = Module::new(&bare.engine, &wasm)?;
        let pre = bare.pre(&module)?;
        let module_e = Module::new(&bare_epoch.engine, &wasm)?;
        let pre_e = bare_epoch.pre(&module_e)?;
        let inv = invocation();

        // One invocation each to check both work and to size the runs.
        let out = loaded
            .run_command(&weft.rt, input.clone(), inv.clone())
            .await;
        out.result.map_err(|e| format_err!("weft {name}: {e}"))?;
        let t = Instant::now();
        bare.invoke(&pre, &input).await?;
        let one = t.elapsed().max(Duration::from_micros(1));
        let budget = if quick {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(2)
        };
        let invoke_iters = ((budget.as_nanos() / one.as_nanos()) as usize).clamp(50, 20_000);
        let start_iters = if quick { 2_000 } else { 20_000 };
        let rounds = 10;

        let (mut ws, mut bs, mut wi, mut bi, mut ei) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            for _ in 0..start_iters / rounds {
                let t = Instant::now();
                let sb = loaded.command_sandbox(&weft.rt, input.clone(), &inv).await;
                ws.push(elapsed_ns(t));
                drop(sb.map_err(|e| format_err!("{e}"))?);
            }
            for _ in 0..start_iters / rounds {
                let t = Instant::now();
                let (mut store, _out) = bare.store(&input);
                let instance = pre.instantiate_async(&mut store).await?;
                bs.push(elapsed_ns(t));
                drop((instance, store));
            }
            for _ in 0..(invoke_iters / rounds).max(5) {
                let t = Instant::now();
                let out = loaded
                    .run_command(&weft.rt, input.clone(), inv.clone())
                    .await;
                wi.push(elapsed_ns(t));
                out.result.map_err(|e| format_err!("{e}"))?;
            }
            for _ in 0..(invoke_iters / rounds).max(5) {
                let t = Instant::now();
                bare.invoke(&pre, &input).await?;
                bi.push(elapsed_ns(t));
            }
            for _ in 0..(invoke_iters / rounds).max(5) {
                let t = Instant::now();
                bare_epoch.invoke(&pre_e, &input).await?;
                ei.push(elapsed_ns(t));
            }
        }
        let (ws, bs, wi, bi, ei) = (micros(ws), micros(bs), micros(wi), micros(bi), micros(ei));
        println!(
            "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2}× | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}× | {:.1} / {:.1} | {:.2}× |",
            ws.0,
            ws.1,
            bs.0,
            bs.1,
            ws.0 / bs.0,
            wi.0,
            wi.1,
            bi.0,
            bi.1,
            wi.0 / bi.0,
            ei.0,
            ei.1,
            wi.0 / ei.0
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ memory

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// In a fresh process: KiB per sandbox with `k` sandboxes live, before and
/// after running each.
async fn memory_child(variant: &str, path: &Path, k: usize) -> Result<()> {
    let wasm = std::fs::read(path)?;
    let input = Bytes::new();
    let (before, after) = match variant {
        "weft" => {
            let weft = Weft::new(k as u32 + 8)?;
            let (_, loaded) = weft.load(&wasm)?;
            let inv = invocation();
            loaded
                .run_command(&weft.rt, input.clone(), inv.clone())
                .await
                .result
                .map_err(|e| format_err!("{e}"))?;
            let base = rss_bytes();
            let mut live = Vec::with_capacity(k);
            for _ in 0..k {
                live.push(
                    loaded
                        .command_sandbox(&weft.rt, input.clone(), &inv)
                        .await
                        .map_err(|e| format_err!("{e}"))?,
                );
            }
            let before = rss_bytes().saturating_sub(base);
            for sb in &mut live {
                sb.call().await;
            }
            let after = rss_bytes().saturating_sub(base);
            drop(live);
            (before, after)
        }
        "bare" => {
            let bare = Bare::new(k as u32 + 8, false)?;
            let module = Module::new(&bare.engine, &wasm)?;
            let pre = bare.pre(&module)?;
            bare.invoke(&pre, &input).await?;
            let base = rss_bytes();
            let mut live = Vec::with_capacity(k);
            for _ in 0..k {
                let (mut store, out) = bare.store(&input);
                let instance = pre.instantiate_async(&mut store).await?;
                live.push((store, instance, out));
            }
            let before = rss_bytes().saturating_sub(base);
            for (store, instance, _) in &mut live {
                let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
                exit_ok(start.call_async(&mut *store, ()).await)?;
            }
            let after = rss_bytes().saturating_sub(base);
            drop(live);
            (before, after)
        }
        other => bail!("unknown variant {other}"),
    };
    println!(
        "{}",
        serde_json::json!({ "before": before as f64 / k as f64 / 1024.0, "after": after as f64 / k as f64 / 1024.0 })
    );
    Ok(())
}

fn child(args: &[&str], guests: &Path) -> Result<serde_json::Value> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(args)
        .arg("--guests")
        .arg(guests)
        .output()?;
    ensure!(
        out.status.success(),
        "child {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn memory(guests: &Path, quick: bool) -> Result<()> {
    let k = if quick { 100 } else { 500 };
    println!();
    println!(
        "## Resident memory per live sandbox (KiB; {k} live sandboxes, each variant in a fresh process)"
    );
    println!();
    println!(
        "| module | Weft before run | bare before run | ratio | Weft after run | bare after run | ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for name in MODULES {
        let file = format!("bench-{name}.wasm");
        let w = child(&["memory-child", "weft", &file, &k.to_string()], guests)?;
        let b = child(&["memory-child", "bare", &file, &k.to_string()], guests)?;
        let f = |v: &serde_json::Value, key: &str| v[key].as_f64().unwrap_or(0.0);
        println!(
            "| {name} | {:.1} | {:.1} | {:.2}× | {:.1} | {:.1} | {:.2}× |",
            f(&w, "before"),
            f(&b, "before"),
            f(&w, "before") / f(&b, "before").max(0.001),
            f(&w, "after"),
            f(&b, "after"),
            f(&w, "after") / f(&b, "after").max(0.001)
        );
    }
    Ok(())
}

// ------------------------------------------------------------------ cold start

/// One cold start from the artifact on disk, in ns: load (mmap +
/// pre-instantiate) and instantiate, until the sandbox is ready to run. The
/// run follows, untimed, to check the sandbox works.
async fn cold_once_weft(weft: &Weft, digest: &str, inv: &Invocation) -> Result<u64> {
    let t = Instant::now();
    let loaded = weft.rt.load(digest)?;
    let mut sandbox = loaded
        .command_sandbox(&weft.rt, Bytes::new(), inv)
        .await
        .map_err(|e| format_err!("{e}"))?;
    let ns = elapsed_ns(t);
    sandbox.call().await;
    sandbox.finish().result.map_err(|e| format_err!("{e}"))?;
    Ok(ns)
}

#[allow(unsafe_code)] // bare wasmtime's deserialization, as the floor
async fn cold_once_bare(bare: &Bare, artifact: &Path) -> Result<u64> {
    let t = Instant::now();
    // SAFETY: the artifact was written by `Engine::precompile_module` of this
    // engine, into a private temporary directory.
    let module = unsafe { Module::deserialize_file(&bare.engine, artifact)? };
    let pre = bare.pre(&module)?;
    let (mut store, _out) = bare.store(&Bytes::new());
    let instance = pre.instantiate_async(&mut store).await?;
    let ns = elapsed_ns(t);
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
    exit_ok(start.call_async(&mut store, ()).await)?;
    Ok(ns)
}

/// In a fresh process: the first cold start, µs (engine set-up excluded).
async fn cold_child(variant: &str, path: &Path) -> Result<()> {
    let wasm = std::fs::read(path)?;
    let ns = match variant {
        "weft" => {
            let weft = Weft::new(16)?;
            let p = weft.rt.prepare(&wasm)?;
            cold_once_weft(&weft, &p.digest, &invocation()).await?
        }
        "bare" => {
            let bare = Bare::new(16, false)?;
            let dir = tempfile::tempdir()?;
            let artifact = dir.path().join("m.cwasm");
            std::fs::write(&artifact, bare.engine.precompile_module(&wasm)?)?;
            cold_once_bare(&bare, &artifact).await?
        }
        other => bail!("unknown variant {other}"),
    };
    println!("{}", serde_json::json!({ "us": ns as f64 / 1000.0 }));
    Ok(())
}

async fn cold(guests: &Path, quick: bool) -> Result<()> {
    let n = if quick { 50 } else { 300 };
    let fresh = if quick { 3 } else { 10 };
    let weft = Weft::new(16)?;
    let bare = Bare::new(16, false)?;
    let bare_epoch = Bare::new(16, true)?;
    let dir = tempfile::tempdir()?;
    let inv = invocation();
    println!();
    println!(
        "## Cold start from the on-disk artifact (µs: load, pre-instantiate, instantiate: ready to run; ratio = Weft / bare, p50)"
    );
    println!();
    println!(
        "| module | in-process Weft p50 / p99 | in-process bare p50 / p99 | ratio | in-process bare + epoch p50 / p99 | ratio | fresh process Weft median | fresh process bare median | ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for name in MODULES {
        let wasm = std::fs::read(module_path(guests, name))?;
        let digest = weft.rt.prepare(&wasm)?.digest;
        let artifact = dir.path().join(format!("{name}.cwasm"));
        std::fs::write(&artifact, bare.engine.precompile_module(&wasm)?)?;
        let artifact_e = dir.path().join(format!("{name}.epoch.cwasm"));
        std::fs::write(&artifact_e, bare_epoch.engine.precompile_module(&wasm)?)?;
        let (mut w, mut b, mut e) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            w.push(cold_once_weft(&weft, &digest, &inv).await?);
            b.push(cold_once_bare(&bare, &artifact).await?);
            e.push(cold_once_bare(&bare_epoch, &artifact_e).await?);
        }
        let (w, b, e) = (micros(w), micros(b), micros(e));
        let file = format!("bench-{name}.wasm");
        let median = |variant: &str| -> Result<f64> {
            let mut v = Vec::new();
            for _ in 0..fresh {
                v.push(
                    child(&["cold-child", variant, &file], guests)?["us"]
                        .as_f64()
                        .unwrap_or(0.0),
                );
            }
            v.sort_by(f64::total_cmp);
            Ok(v[v.len() / 2])
        };
        let (fw, fb) = (median("weft")?, median("bare")?);
        println!(
            "| {name} | {:.0} / {:.0} | {:.0} / {:.0} | {:.2}× | {:.0} / {:.0} | {:.2}× | {:.0} | {:.0} | {:.2}× |",
            w.0,
            w.1,
            b.0,
            b.1,
            w.0 / b.0,
            e.0,
            e.1,
            w.0 / e.0,
            fw,
            fb,
            fw / fb
        );
    }
    Ok(())
}
