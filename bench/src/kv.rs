//! `kv`: key-value get and set from inside a guest, on the embedded store and
//! on Redis, against floors on the same servers and disk.
//!
//! The guest (`bench/guests/rust/src/bin/kv-loop.rs`) does N gets or N sets of
//! a 16-byte value in a loop; per operation = (time(N) − time(0)) / N over
//! synchronous invocations, so the invocation itself cancels out. Floors:
//! `redis-benchmark -c 1` on the same redis-server (µs/op = 1 / rps), a Rust
//! loop with the `redis` crate's `ConnectionManager` (the client Weft's Redis
//! store uses), and redb used directly on the same disk for the embedded
//! store (a set is one transaction committed durably, with fsync, as Weft's
//! is).

use crate::node::{self, Node, median, spread};
use anyhow::{Context as _, Result, bail};
use std::process::Command;
use std::time::Instant;
use weft_manifest::{FunctionSpec, KvStoreConfig, Name, NodeConfig};

struct Sizes {
    rounds: usize,
    reps: usize,
    benchmark_n: u32,
    n_get: u64,
    n_set_redis: u64,
    n_set_embedded: u64,
}

pub(crate) async fn run(quick: bool) -> Result<()> {
    let s = if quick {
        Sizes {
            rounds: 3,
            reps: 3,
            benchmark_n: 20_000,
            n_get: 500,
            n_set_redis: 500,
            n_set_embedded: 50,
        }
    } else {
        Sizes {
            rounds: 5,
            reps: 5,
            benchmark_n: 100_000,
            n_get: 2_000,
            n_set_redis: 2_000,
            n_set_embedded: 200,
        }
    };
    let redis = node::redis_server()?;
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let mut config = NodeConfig::default();
    config.kv.insert(
        Name::new("redis").map_err(anyhow::Error::msg)?,
        KvStoreConfig::Redis {
            url: url.clone(),
            prefix: None,
        },
    );
    let node = Node::open(config).await?;
    let stores = ["default", "redis"]
        .iter()
        .map(|s| Name::new(s).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    node.deploy(
        "kv",
        node::guest("kv-loop")?,
        FunctionSpec {
            key_value_stores: stores,
            ..Default::default()
        },
    )
    .await?;
    for store in ["default", "redis"] {
        for op in ["get", "set"] {
            node.invoke("kv", format!("{op} 10 {store}")).await?;
        }
    }
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_connection_manager().await?;
    let floor_dir = tempfile::tempdir_in(node.dir.path())?;

    let mut rounds: Vec<Round> = Vec::new();
    for round in 0..s.rounds {
        eprintln!("kv: round {}/{}", round + 1, s.rounds);
        let benchmark = redis_benchmark(redis.port, s.benchmark_n)?;
        let client = client_loop(&mut conn, s.n_get as usize * 5).await?;
        let (gr_get, ir_get) = per_op(&node, "get", "redis", s.n_get, s.reps).await?;
        let (gr_set, ir_set) = per_op(&node, "set", "redis", s.n_set_redis, s.reps).await?;
        let (ge_get, ie_get) = per_op(&node, "get", "default", s.n_get, s.reps).await?;
        let (ge_set, ie_set) = per_op(&node, "set", "default", s.n_set_embedded, s.reps).await?;
        let hop = redb_get_blocking_us(floor_dir.path(), s.n_get as usize * 5).await?;
        let redb = [
            redb_get_us(floor_dir.path(), s.n_get as usize * 5)?,
            node::redb_commit_us(floor_dir.path(), s.n_set_embedded as usize)?,
        ];
        rounds.push(Round {
            guest_redis: [gr_get, gr_set],
            inner_redis: [ir_get, ir_set],
            client,
            benchmark,
            guest_embedded: [ge_get, ge_set],
            inner_embedded: [ie_get, ie_set],
            redb,
            hop,
        });
    }
    node.close().await;
    drop(redis);
    print(&rounds, &s);
    Ok(())
}

/// One round's figures, µs per op, each `[get, set]`.
struct Round {
    guest_redis: [f64; 2],
    inner_redis: [f64; 2],
    client: [f64; 2],
    benchmark: [f64; 2],
    guest_embedded: [f64; 2],
    inner_embedded: [f64; 2],
    redb: [f64; 2],
    /// A redb get through `spawn_blocking`, as the embedded store runs it.
    hop: f64,
}

fn print(rounds: &[Round], s: &Sizes) {
    let col =
        |f: fn(&Round) -> [f64; 2], k: usize| median(rounds.iter().map(|r| f(r)[k]).collect());
    // Ratios per round, then their median and spread.
    let ratio = |a: fn(&Round) -> [f64; 2], b: fn(&Round) -> [f64; 2], k: usize| {
        let v: Vec<f64> = rounds.iter().map(|r| a(r)[k] / b(r)[k]).collect();
        let (lo, hi) = spread(&v);
        format!("{:.2}× [{lo:.2}–{hi:.2}]", median(v))
    };
    println!();
    println!(
        "## Key-value from a guest (µs per operation, 16-byte value; median of {} rounds; ratio spread over rounds in brackets)",
        s.rounds
    );
    println!();
    println!(
        "N per invocation: get {}, set {} (Redis) / {} (embedded); redis-benchmark -n {} -c 1.",
        s.n_get, s.n_set_redis, s.n_set_embedded, s.benchmark_n
    );
    println!();
    println!(
        "| op | guest → Redis | in-guest timer | Rust `redis` client | redis-benchmark | guest / redis-benchmark | guest / Rust client | guest → embedded | in-guest timer | redb direct | redb via `spawn_blocking` | guest / redb |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (k, op) in ["get", "set"].iter().enumerate() {
        println!(
            "| {op} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
            col(|r| r.guest_redis, k),
            col(|r| r.inner_redis, k),
            col(|r| r.client, k),
            col(|r| r.benchmark, k),
            ratio(|r| r.guest_redis, |r| r.benchmark, k),
            ratio(|r| r.guest_redis, |r| r.client, k),
            col(|r| r.guest_embedded, k),
            col(|r| r.inner_embedded, k),
            col(|r| r.redb, k),
            if k == 0 {
                format!("{:.1}", median(rounds.iter().map(|r| r.hop).collect()))
            } else {
                "–".to_string()
            },
            ratio(|r| r.guest_embedded, |r| r.redb, k),
        );
    }
}

/// (µs per op from invocation times, µs per op from the guest's own timer)
/// for `op` on `store`: medians over `reps` invocations with N and with 0.
async fn per_op(node: &Node, op: &str, store: &str, n: u64, reps: usize) -> Result<(f64, f64)> {
    let (mut zero, mut full, mut inner) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        node.invoke("kv", format!("{op} 0 {store}")).await?;
        zero.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let out = node.invoke("kv", format!("{op} {n} {store}")).await?;
        full.push(t.elapsed().as_secs_f64() * 1e6);
        let ns: f64 = std::str::from_utf8(&out)?
            .trim()
            .parse()
            .with_context(|| format!("kv-loop answered {out:?}"))?;
        inner.push(ns / 1000.0);
    }
    let n = n as f64;
    Ok(((median(full) - median(zero)) / n, median(inner) / n))
}

/// `redis-benchmark -p PORT -t get,set -n N -c 1 -q`: µs per GET and SET.
fn redis_benchmark(port: u16, n: u32) -> Result<[f64; 2]> {
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "get,set"])
        .args(["-n", &n.to_string(), "-c", "1", "-q"])
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = |name: &str| -> Result<f64> {
        text.split(['\r', '\n'])
            .filter_map(|l| l.trim().strip_prefix(name))
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|w| w.parse::<f64>().ok())
            .next_back()
            .with_context(|| format!("no `{name}` rate in redis-benchmark output: {text}"))
    };
    let (get, set) = (rps("GET:")?, rps("SET:")?);
    if get <= 0.0 || set <= 0.0 {
        bail!("redis-benchmark: zero rate: {text}");
    }
    Ok([1e6 / get, 1e6 / set])
}

/// A Rust loop of GET then SET with the `redis` crate: µs per op.
async fn client_loop(conn: &mut redis::aio::ConnectionManager, n: usize) -> Result<[f64; 2]> {
    let key = "floor:bench";
    let value = [7u8; 16];
    redis::cmd("SET")
        .arg(key)
        .arg(&value[..])
        .query_async::<()>(conn)
        .await?;
    let t = Instant::now();
    for _ in 0..n {
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(conn).await?;
        if v.is_none() {
            bail!("redis floor: key vanished");
        }
    }
    let get = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        redis::cmd("SET")
            .arg(key)
            .arg(&value[..])
            .query_async::<()>(conn)
            .await?;
    }
    let set = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    Ok([get, set])
}

/// µs per get of one key, one read transaction each, from redb directly.
fn redb_get_us(dir: &std::path::Path, n: usize) -> Result<f64> {
    use redb::ReadableDatabase as _;
    const T: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("get");
    let db = redb::Database::create(dir.join("get.redb"))?;
    let tx = db.begin_write()?;
    tx.open_table(T)?.insert("bench", [7u8; 16].as_slice())?;
    tx.commit()?;
    let t = Instant::now();
    for _ in 0..n {
        let tx = db.begin_read()?;
        if tx.open_table(T)?.get("bench")?.is_none() {
            bail!("redb floor: key vanished");
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// µs per get as [`redb_get_us`], each run on `spawn_blocking` and awaited:
/// the embedded store's own path, without the guest.
async fn redb_get_blocking_us(dir: &std::path::Path, n: usize) -> Result<f64> {
    use redb::ReadableDatabase as _;
    const T: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("get");
    let db = std::sync::Arc::new(redb::Database::create(dir.join("hop.redb"))?);
    let tx = db.begin_write()?;
    tx.open_table(T)?.insert("bench", [7u8; 16].as_slice())?;
    tx.commit()?;
    let t = Instant::now();
    for _ in 0..n {
        let db = db.clone();
        let found = tokio::task::spawn_blocking(move || -> Result<bool> {
            let tx = db.begin_read()?;
            Ok(tx.open_table(T)?.get("bench")?.is_some())
        })
        .await??;
        if !found {
            bail!("redb floor: key vanished");
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}
