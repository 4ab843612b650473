//! Helpers: a `redis-server` child process, and opening one-store `Stores`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_kv::{BackendSpec, Bucket, KvLimits, Stores};

/// A port nothing listens on (bound to 127.0.0.1:0, then released).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A `redis-server` child process without persistence, killed on drop.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// The server's working directory, removed on drop.
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port.
    pub(crate) fn start() -> RedisServer {
        RedisServer::start_on(free_port())
    }

    /// Starts a server on `port` and waits until it answers.
    pub(crate) fn start_on(port: u16) -> RedisServer {
        RedisServer::start_with(port, &[])
    }

    /// Starts a server on `port` with extra arguments and waits until it
    /// answers.
    pub(crate) fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("redis.log");
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`redis-server` is not installed (not found on PATH): the Redis tests need a real \
                 server; install the `redis-server` Debian package (`apt-get install redis-server`)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let mut server = RedisServer {
            child: Some(child),
            port,
            _dir: dir,
        };
        server.wait_ready(&log);
        server
    }

    fn wait_ready(&mut self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(self.port) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "redis-server on port {} did not start ({exited:?}); its log:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis server on `port` answers `PING` (`+PONG`, or `-NOAUTH`
/// when it requires a password).
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok()
        && s.read_exact(&mut buf).is_ok()
        && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH"))
}

/// Opens `Stores` with the given stores and default limits.
pub(crate) async fn open(path: &Path, specs: &[(&str, BackendSpec)]) -> Stores {
    let specs: BTreeMap<String, BackendSpec> = specs
        .iter()
        .map(|(label, spec)| (label.to_string(), spec.clone()))
        .collect();
    Stores::open(path, specs, KvLimits::default())
        .await
        .expect("open stores")
}

/// A Redis spec.
pub(crate) fn redis_spec(url: &str, prefix: &str) -> BackendSpec {
    BackendSpec::Redis {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
    }
}

/// The bucket with `label`, which must exist.
pub(crate) fn bucket(stores: &Stores, label: &str) -> Arc<dyn Bucket> {
    stores.bucket(label).expect("configured label")
}
