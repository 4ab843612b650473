//! Real third-party servers for the tests: `redis-server` and `mosquitto`,
//! each on a free loopback port, killed when dropped. A missing binary is a
//! failure naming the Debian package to install, never a skipped test.

use crate::harness::eventually;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a server may take to accept connections on this slow machine.
const READY: Duration = Duration::from_secs(30);

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The path of an executable, from `PATH` or the sbin folders (Debian puts
/// `mosquitto` in /usr/sbin); panics naming the Debian package otherwise.
pub(crate) fn binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (looked in PATH and /usr/sbin): \
                 install the Debian package `{package}` (apt-get install -y {package})"
            )
        })
}

/// Starts `cmd` with its output appended to `log`.
fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("server log");
    let err = out.try_clone().expect("server log");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// Waits until `port` accepts connections; panics with the server's log if
/// it exits or does not get there in time.
fn wait_listening(child: &mut Child, port: u16, what: &str, log: &Path) {
    let ok = eventually(READY, || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} on port {port} exited ({status}); log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(
        ok,
        "{what} does not accept connections on port {port}; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A `redis-server` without persistence: a restart starts empty.
pub(crate) struct Redis {
    pub(crate) port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// On a free port.
    pub(crate) fn start() -> Redis {
        Redis::on_port(free_port())
    }

    /// On `port` (e.g. one a node was configured with before it existed).
    pub(crate) fn on_port(port: u16) -> Redis {
        let mut r = Redis {
            port,
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        r.spawn();
        r
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(binary("redis-server", "redis-server"));
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        let log = self.log_path();
        let mut child = spawn_logged(cmd, &log);
        wait_listening(&mut child, self.port, "redis-server", &log);
        self.child = Some(child);
    }

    /// `redis://127.0.0.1:PORT`
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `kill -9`, then wait for the process to be gone.
    pub(crate) fn kill9(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts again on the same port (empty: nothing is persisted).
    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs `redis-cli -p PORT ARGS...`; returns its trimmed stdout.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary("redis-cli", "redis-tools"))
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `redis-cli MONITOR`: records every command the server runs from now.
    pub(crate) fn monitor(&self) -> Lines {
        let child = Command::new(binary("redis-cli", "redis-tools"))
            .args(["-p", &self.port.to_string(), "MONITOR"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli MONITOR");
        let lines = Lines::collect(child);
        // MONITOR answers OK once it is in place.
        assert!(
            eventually(READY, || lines.any(|l| l == "OK")),
            "redis-cli MONITOR did not start"
        );
        lines
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A `mosquitto` broker accepting anonymous clients, without persistence,
/// logging every packet (so tests can see who subscribed to what).
pub(crate) struct Mosquitto {
    pub(crate) port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    /// On a free port.
    pub(crate) fn start() -> Mosquitto {
        Mosquitto::on_port(free_port())
    }

    /// On `port` (e.g. one a node was configured with before it existed).
    pub(crate) fn on_port(port: u16) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\n\
                 persistence false\nlog_dest stderr\nlog_type all\n"
            ),
        )
        .expect("write mosquitto.conf");
        let mut m = Mosquitto {
            port,
            child: None,
            dir,
        };
        m.spawn();
        m
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(binary("mosquitto", "mosquitto"));
        cmd.arg("-c").arg(self.dir.path().join("mosquitto.conf"));
        let log = self.log_path();
        let mut child = spawn_logged(cmd, &log);
        wait_listening(&mut child, self.port, "mosquitto", &log);
        self.child = Some(child);
    }

    /// `mqtt://127.0.0.1:PORT`
    pub(crate) fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's log, over every run.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many times, over every run of the broker, a client whose id
    /// starts with `client_prefix` subscribed to exactly `filter`.
    /// (mosquitto logs each granted filter as `TIME: CLIENT QOS FILTER`.)
    pub(crate) fn subscriptions(&self, client_prefix: &str, filter: &str) -> usize {
        self.log()
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(_, rest)| rest))
            .filter(|rest| {
                let parts: Vec<&str> = rest.splitn(3, ' ').collect();
                matches!(parts.as_slice(), [client, qos, f]
                    if client.starts_with(client_prefix)
                        && qos.parse::<u8>().is_ok()
                        && *f == filter)
            })
            .count()
    }

    /// `kill -9`, then wait for the process to be gone.
    pub(crate) fn kill9(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts again on the same port (with no sessions: nothing persisted).
    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Publishes `payload` on `topic` with QoS 1 (`mosquitto_pub`), which
    /// returns once the broker acknowledged it.
    pub(crate) fn publish(&self, topic: &str, payload: &[u8]) {
        use std::io::Write;
        let mut child = Command::new(binary("mosquitto_pub", "mosquitto-clients"))
            .args(["-p", &self.port.to_string(), "-q", "1", "-t", topic, "-s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mosquitto_pub");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(payload)
            .expect("write payload");
        let out = child.wait_with_output().expect("mosquitto_pub");
        assert!(
            out.status.success(),
            "mosquitto_pub to {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Subscribes to `filter` (`mosquitto_sub`); returns once the broker
    /// granted the subscription (seen in its log: `mosquitto_sub` does not
    /// flush its own debug output).
    pub(crate) fn subscribe(&self, filter: &str) -> Subscription {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "test-{}-{}-sub",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let child = Command::new(binary("mosquitto_sub", "mosquitto-clients"))
            .args(["-p", &self.port.to_string(), "-q", "1", "-i", &id])
            .args(["-t", filter, "-F", "MSG %t %x"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run mosquitto_sub");
        let lines = Lines::collect(child);
        assert!(
            eventually(READY, || self.subscriptions(&id, filter) > 0),
            "mosquitto_sub -t {filter} did not subscribe; broker log:\n{}",
            self.log()
        );
        Subscription { lines }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The stdout lines of a helper process, read as they come; the process is
/// killed when this is dropped.
pub(crate) struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    child: Option<Child>,
}

impl Lines {
    fn collect(mut child: Child) -> Lines {
        let stdout = child.stdout.take().expect("piped stdout");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Lines {
            lines,
            child: Some(child),
        }
    }

    /// Every line so far.
    pub(crate) fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn any(&self, f: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| f(l))
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

/// The messages an MQTT subscription received.
pub(crate) struct Subscription {
    lines: Lines,
}

impl Subscription {
    /// Every message so far, as (topic, payload as text).
    pub(crate) fn messages(&self) -> Vec<(String, String)> {
        self.lines
            .all()
            .iter()
            .filter_map(|l| {
                let mut parts = l.strip_prefix("MSG ")?.splitn(2, ' ');
                let topic = parts.next()?.to_string();
                let hex = parts.next().unwrap_or_default();
                let bytes: Vec<u8> = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(b'?'))
                    .collect();
                Some((topic, String::from_utf8_lossy(&bytes).into_owned()))
            })
            .collect()
    }

    /// Waits up to `within` for a message whose payload is `payload`.
    pub(crate) fn wait_for(&self, payload: &str, within: Duration) -> bool {
        eventually(within, || self.messages().iter().any(|(_, p)| p == payload))
    }
}

// ---- nats-server and a WAN link in front of it ----------------------

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

/// A `nats-server` (Debian package `nats-server`, 2.9): a hub with
/// JetStream and a leaf-node port, or a leaf without JetStream that joins a
/// hub through a leaf-node remote. The leaf maps JetStream requests of its
/// clients (`$JS.API.>`, `$KV.>`, `$OBJ.>`) to the hub's JetStream domain
/// `hub`, so clients on either server use JetStream without a domain.
pub(crate) struct Nats {
    /// The client port.
    pub(crate) port: u16,
    /// The leaf-node port (the hub's only).
    leaf_port: Option<u16>,
    /// The HTTP monitoring port (`/varz`).
    monitor_port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// `N` distinct loopback ports nothing listens on right now.
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("local addr").port())
}

/// The hub's JetStream domain, which leaves map their clients' requests to.
const NATS_HUB_DOMAIN: &str = "hub";
/// The leaf-node address the hub advertises: nothing listens on port 1.
const NATS_UNREACHABLE: &str = "127.0.0.1:1";

impl Nats {
    /// A hub: JetStream (domain `hub`) stored in its tempdir, a client port
    /// and a leaf-node port, on free loopback ports.
    ///
    /// A leaf adds the leaf-node address its hub advertises to the ones it
    /// was configured with and reconnects to either; 2.9 has no option to
    /// stop that (`no_advertise` does not). So the hub advertises an address
    /// that refuses connections: a leaf that joined through a [`Link`] can
    /// only come back through it, not straight to the hub after a cut.
    pub(crate) fn hub() -> Nats {
        Nats::hub_with("")
    }

    /// A hub with more configuration (e.g. `authorization { … }`).
    pub(crate) fn hub_with(extra: &str) -> Nats {
        let [port, leaf_port, monitor_port] = free_ports();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("jetstream");
        let config = format!(
            "server_name: hub-{port}\n\
             listen: 127.0.0.1:{port}\n\
             http: 127.0.0.1:{monitor_port}\n\
             jetstream {{\n  store_dir: \"{}\"\n  domain: {NATS_HUB_DOMAIN}\n}}\n\
             leafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n  advertise: \"{NATS_UNREACHABLE}\"\n}}\n\
             {extra}\n",
            store.display()
        );
        Nats::launch(dir, &config, port, Some(leaf_port), monitor_port)
    }

    /// A leaf without JetStream joining the hub at `remote` (`HOST:PORT` of
    /// its leaf-node port, or of a [`Link`] in front of it), retrying every
    /// second while it cannot.
    pub(crate) fn leaf(remote: &str) -> Nats {
        let [port, monitor_port] = free_ports();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "server_name: leaf-{port}\n\
             listen: 127.0.0.1:{port}\n\
             http: 127.0.0.1:{monitor_port}\n\
             default_js_domain: {{ \"$G\": \"{NATS_HUB_DOMAIN}\" }}\n\
             leafnodes {{\n  reconnect: 1\n  remotes = [ {{ url: \"nats-leaf://{remote}\" }} ]\n}}\n"
        );
        Nats::launch(dir, &config, port, None, monitor_port)
    }

    fn launch(
        dir: tempfile::TempDir,
        config: &str,
        port: u16,
        leaf_port: Option<u16>,
        monitor_port: u16,
    ) -> Nats {
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, config).expect("write nats.conf");
        let out = Command::new(binary("nats-server", "nats-server"))
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .output()
            .expect("run nats-server -t");
        assert!(
            out.status.success(),
            "nats-server rejects its config:\n{config}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut n = Nats {
            port,
            leaf_port,
            monitor_port,
            child: None,
            dir,
        };
        n.spawn();
        n
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(binary("nats-server", "nats-server"));
        cmd.arg("-c").arg(self.dir.path().join("nats.conf"));
        let log = self.log_path();
        let mut child = spawn_logged(cmd, &log);
        wait_listening(&mut child, self.port, "nats-server", &log);
        if let Some(p) = self.leaf_port {
            wait_listening(&mut child, p, "nats-server (leaf nodes)", &log);
        }
        wait_listening(&mut child, self.monitor_port, "nats-server (monitor)", &log);
        self.child = Some(child);
    }

    /// `nats://127.0.0.1:PORT`
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The hub's leaf-node port.
    pub(crate) fn leaf_port(&self) -> u16 {
        self.leaf_port.expect("only the hub listens for leaf nodes")
    }

    /// `127.0.0.1:LEAF_PORT`, e.g. the target of a [`Link`].
    pub(crate) fn leaf_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.leaf_port()))
    }

    /// The server's log, over every run.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many leaf-node connections the server has now (`/varz`): on a
    /// leaf, 1 once it joined its hub.
    pub(crate) fn leafnodes(&self) -> u64 {
        let url = format!("http://127.0.0.1:{}/varz", self.monitor_port);
        let varz: serde_json::Value = reqwest::blocking::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {url}: {e}; log:\n{}", self.log()));
        varz["leafnodes"].as_u64().unwrap_or(0)
    }

    /// Waits until the server has a leaf-node connection; panics with its
    /// log otherwise.
    pub(crate) fn wait_leaf_connected(&self) {
        assert!(
            eventually(READY, || self.leafnodes() > 0),
            "nats-server on port {} has no leaf-node connection; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// `kill -9`, then wait for the process to be gone.
    pub(crate) fn kill9(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts again on the same ports and the same JetStream store, so
    /// streams and buckets survive.
    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A TCP proxy standing for a WAN link: it forwards every connection made
/// to [`Link::addr`] to its target, with an added one-way latency, and can
/// be cut (every connection closed, new ones closed at once) and restored.
pub(crate) struct Link {
    addr: SocketAddr,
    shared: Arc<LinkShared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

struct LinkShared {
    target: SocketAddr,
    /// One-way latency, in microseconds.
    latency_us: AtomicU64,
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both sockets of every live connection, by id.
    conns: Mutex<HashMap<u64, [TcpStream; 2]>>,
}

impl LinkShared {
    fn close_all(&self) {
        for [a, b] in self.conns.lock().unwrap().drain().map(|(_, s)| s) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

/// Bytes read at once from one side of a link.
const LINK_CHUNK: usize = 64 << 10;
/// Chunks in flight per direction before the reader waits.
const LINK_IN_FLIGHT: usize = 256;

impl Link {
    /// Listening on a free loopback port, forwarding to `target`.
    pub(crate) fn new(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind link");
        let addr = listener.local_addr().expect("link addr");
        let shared = Arc::new(LinkShared {
            target,
            latency_us: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("link-{}", addr.port()))
            .spawn(move || Link::accept_loop(&listener, &s))
            .expect("spawn link thread");
        Link {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    fn accept_loop(listener: &TcpListener, shared: &Arc<LinkShared>) {
        let mut next_id = 0u64;
        for client in listener.incoming() {
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = client else { continue };
            if shared.cut.load(Ordering::SeqCst) {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let Ok(upstream) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(5))
            else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            next_id += 1;
            Link::forward(shared, next_id, client, upstream);
        }
    }

    /// Starts both directions of one connection.
    fn forward(shared: &Arc<LinkShared>, id: u64, client: TcpStream, upstream: TcpStream) {
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let clones = (|| Some([client.try_clone().ok()?, upstream.try_clone().ok()?]))();
        let Some(clones) = clones else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        {
            let mut conns = shared.conns.lock().unwrap();
            // A cut between accept and here closes this one too.
            if shared.cut.load(Ordering::SeqCst) {
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
                return;
            }
            conns.insert(id, clones);
        }
        // The connection leaves the table when both directions ended.
        let open = Arc::new(AtomicUsize::new(2));
        let pairs = [
            (client.try_clone(), upstream.try_clone()),
            (Ok(upstream), Ok(client)),
        ];
        for (from, to) in pairs {
            let (Ok(from), Ok(to)) = (from, to) else {
                let _ = shared.conns.lock().unwrap().remove(&id).map(|[a, b]| {
                    let _ = a.shutdown(Shutdown::Both);
                    let _ = b.shutdown(Shutdown::Both);
                });
                return;
            };
            let (shared, open) = (shared.clone(), open.clone());
            std::thread::spawn(move || {
                Link::pipe(&shared, from, to);
                if open.fetch_sub(1, Ordering::SeqCst) == 1 {
                    shared.conns.lock().unwrap().remove(&id);
                }
            });
        }
    }

    /// One direction: a reader stamps each chunk with the time it is due
    /// and a writer sends it then, so latency does not divide throughput.
    fn pipe(shared: &Arc<LinkShared>, mut from: TcpStream, mut to: TcpStream) {
        use std::io::{Read, Write};
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Vec<u8>)>(LINK_IN_FLIGHT);
        let source = from.try_clone().ok();
        let writer = std::thread::spawn(move || {
            for (due, chunk) in rx {
                let wait = due.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                if to.write_all(&chunk).is_err() {
                    // The receiving side is gone: end this direction, and
                    // wake the reader if it waits for more.
                    let _ = to.shutdown(Shutdown::Both);
                    if let Some(s) = &source {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                    return;
                }
            }
            // The sender finished: pass the end of its stream on.
            let _ = to.shutdown(Shutdown::Write);
        });
        let mut buf = vec![0u8; LINK_CHUNK];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let latency = Duration::from_micros(shared.latency_us.load(Ordering::SeqCst));
            if tx
                .send((Instant::now() + latency, buf[..n].to_vec()))
                .is_err()
            {
                // The writer ended: the other side is gone.
                break;
            }
        }
        drop(tx);
        let _ = writer.join();
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One-way latency added to every chunk read from now on, in each
    /// direction (a round trip grows by twice this).
    pub(crate) fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_us.store(us, Ordering::SeqCst);
    }

    /// Drops the link: closes every live connection and, until
    /// [`Link::restore`], closes new ones right after accepting them.
    pub(crate) fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.close_all();
    }

    /// Forwards new connections again.
    pub(crate) fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Whether the link is cut.
    pub(crate) fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        self.shared.close_all();
    }
}
