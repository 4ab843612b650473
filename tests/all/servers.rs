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
