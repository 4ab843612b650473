//! What the node benchmarks (`kv`, `queue`, `mqtt`) share: a Weft node
//! in-process (the controller the `weft` binary runs), the Rust guests of
//! `bench/guests/rust/` built on demand, the servers they compare against
//! (redis-server, mosquitto) started on free ports and killed on exit, and
//! statistics.

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_controller::Controller;
use weft_manifest::{FunctionSpec, HumanDuration, NodeConfig};
use weft_router::{Request, Router, Trigger};

/// The repository's root (the bench crate is `bench/`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Builds `bench/guests/rust/` for wasm32-wasip2 (seconds when nothing
/// changed) and returns the module of `bin`.
pub(crate) fn guest(bin: &str) -> Result<Vec<u8>> {
    let repo = repo();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo.join("target"), PathBuf::from)
        .join("guests");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(repo.join("bench/guests/rust/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("running cargo to build bench/guests/rust")?;
    ensure!(status.success(), "building bench/guests/rust failed");
    let path = target.join(format!("wasm32-wasip2/release/{bin}.wasm"));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Microseconds since the UNIX epoch, the unit guests answer in.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

// ------------------------------------------------------------------ servers

/// A server process, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(child: &mut Child, port: u16, what: &str) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited at start: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what} is not listening on port {port} after 10 s")
}

/// `redis-server` on a free loopback port, without persistence.
pub(crate) fn redis_server() -> Result<Server> {
    let port = free_port()?;
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdout(Stdio::null())
        .spawn()
        .context("starting redis-server (apt-get install redis-server)")?;
    wait_listening(&mut child, port, "redis-server")?;
    Ok(Server {
        child,
        port,
        _dir: None,
    })
}

/// `mosquitto` on a free loopback port, anonymous, without persistence,
/// with `TCP_NODELAY` on its sockets when `nodelay`.
pub(crate) fn mosquitto(nodelay: bool) -> Result<Server> {
    let port = free_port()?;
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay {nodelay}\n"
        ),
    )?;
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mosquitto (apt-get install mosquitto)")?;
    wait_listening(&mut child, port, "mosquitto")?;
    Ok(Server {
        child,
        port,
        _dir: Some(dir),
    })
}

/// A `nats-server` with the config `config(client_port, leaf_port, dir)`
/// returns (its directory is the server's own tempdir); the second value is
/// the leaf-node port handed to `config` (free; used only if it listens).
pub(crate) fn nats_server(config: impl Fn(u16, u16, &Path) -> String) -> Result<(Server, u16)> {
    let (port, leaf_port) = (free_port()?, free_port()?);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nats.conf");
    std::fs::write(&path, config(port, leaf_port, dir.path()))?;
    let mut child = Command::new("nats-server")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server (apt-get install nats-server)")?;
    wait_listening(&mut child, port, "nats-server")?;
    Ok((
        Server {
            child,
            port,
            _dir: Some(dir),
        },
        leaf_port,
    ))
}

/// A node in this process joined to the fabric at `url`, beating every
/// 200 ms (so the benches converge fast).
pub(crate) async fn fabric_node(url: &str, name: &str, tier: weft_sched::Tier) -> Result<Node> {
    fabric_node_with(url, name, tier, NodeConfig::default()).await
}

/// [`fabric_node`] with a node config of its own.
pub(crate) async fn fabric_node_with(
    url: &str,
    name: &str,
    tier: weft_sched::Tier,
    config: NodeConfig,
) -> Result<Node> {
    let node = Node::open(config).await?;
    let mut m = weft_router::MeshConfig::new(url, name, tier);
    m.heartbeat = Duration::from_millis(200);
    weft_router::join_fabric(&node.r, m).await?;
    Ok(node)
}

// ------------------------------------------------------------------ the node

/// A Weft node in this process, as `weft up` assembles one (controller,
/// router, triggers), with its data directory on the same disk as the
/// repository (not a tmpfs: the durable writes are real).
pub(crate) struct Node {
    pub(crate) c: Arc<Controller>,
    pub(crate) r: Arc<Router>,
    _triggers: Arc<weft_triggers::Triggers>,
    pub(crate) dir: tempfile::TempDir,
}

impl Node {
    pub(crate) async fn open(config: NodeConfig) -> Result<Node> {
        let base = repo().join("target/bench-nodes");
        std::fs::create_dir_all(&base)?;
        let dir = tempfile::tempdir_in(&base)?;
        let c = Controller::open(dir.path(), config).await?;
        let r = weft_router::start(c.clone());
        c.start_background();
        let triggers = weft_triggers::Triggers::start(&r)?;
        Ok(Node {
            c,
            r,
            _triggers: triggers,
            dir,
        })
    }

    /// Uploads `wasm` and deploys it as `name` with `spec` (module filled
    /// in), a 60 s timeout and the clock granted.
    pub(crate) async fn deploy(&self, name: &str, wasm: Vec<u8>, spec: FunctionSpec) -> Result<()> {
        let m = self.c.upload_module(wasm.into(), Some(name)).await?;
        self.c
            .deploy(
                name,
                FunctionSpec {
                    module: m.module,
                    clock: true,
                    timeout: Some(HumanDuration(Duration::from_secs(60))),
                    ..spec
                },
            )
            .await?;
        Ok(())
    }

    /// A synchronous invocation through the router: the response body.
    pub(crate) async fn invoke(&self, name: &str, input: impl Into<Bytes>) -> Result<Bytes> {
        Ok(invoke(&self.r, name, input.into()).await?.body)
    }

    pub(crate) async fn close(self) {
        self.c.drain(Duration::from_secs(5)).await;
    }
}

/// One synchronous invocation through `router`, read whole.
pub(crate) async fn invoke(
    router: &Router,
    name: &str,
    input: Bytes,
) -> Result<weft_router::Collected> {
    let resp = router
        .invoke(Request::new(name, Trigger::Cli).with_body(input))
        .await?;
    Ok(resp.collect().await?)
}

/// A request for `name` with the state key `k`, carrying `sealed` (a
/// client state) as its header would.
pub(crate) fn keyed(name: &str, sealed: Option<&str>, body: Bytes) -> Result<Request> {
    let mut headers = http::HeaderMap::new();
    if let Some(s) = sealed {
        headers.insert("x-weft-state", s.parse()?);
    }
    Ok(Request {
        state_key: Some("k".to_string()),
        http: Some(weft_router::HttpFacts {
            method: http::Method::POST,
            path_and_query: "/".to_string(),
            headers,
        }),
        ..Request::new(name, Trigger::Cli).with_body(body)
    })
}

/// One asynchronous invocation through `router`: its id once durable.
pub(crate) async fn submit(router: &Router, name: &str) -> Result<String> {
    Ok(router
        .submit(Request::new(name, Trigger::Cli), None)
        .await?
        .id)
}

// ------------------------------------------------------------------ statistics

/// The value at quantile `p` (0..=1) of `v`, sorted here.
pub(crate) fn quantile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    quantile(&mut v, 0.5)
}

/// Minimum and maximum, for the spread of per-round figures.
pub(crate) fn spread(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// µs per durable commit of one small row in a redb file on the node's disk,
/// committed as the queue and the embedded store commit (`Immediate`: fsync):
/// the floor of every durable write.
pub(crate) fn redb_commit_us(dir: &Path, n: usize) -> Result<f64> {
    const T: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("floor");
    let db = redb::Database::create(dir.join("floor.redb"))?;
    let t = Instant::now();
    for i in 0..n {
        let tx = db.begin_write()?;
        tx.open_table(T)?
            .insert(format!("k{}", i % 16).as_str(), [7u8; 16].as_slice())?;
        tx.commit()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}
