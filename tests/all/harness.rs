//! Starts the real `weft` binary on port 0 and drives it through its CLI and
//! HTTP API.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// The folder of built guest fixtures: `$WEFT_GUESTS`, or built once per test
/// process by `scripts/build-guests.sh`.
pub(crate) fn guests_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("WEFT_GUESTS") {
            return PathBuf::from(d);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let out = target.join("guests-out");
        let status = Command::new("bash")
            .arg(root.join("scripts/build-guests.sh"))
            .arg(&out)
            .status()
            .expect("run scripts/build-guests.sh");
        assert!(status.success(), "building guest fixtures failed");
        out
    })
}

/// Path of a guest fixture by file name, e.g. `echo.wasm`.
pub(crate) fn guest(name: &str) -> PathBuf {
    let p = guests_dir().join(name);
    assert!(p.exists(), "guest fixture {} missing", p.display());
    p
}

/// A running node.
pub(crate) struct Node {
    pub(crate) url: String,
    pub(crate) data: PathBuf,
    pub(crate) token: Option<String>,
    child: Option<Child>,
    stderr_path: PathBuf,
    _dir: Option<tempfile::TempDir>,
    listen: String,
    config: Option<PathBuf>,
    /// More `weft up` arguments (`--fabric`, `--tier`, …).
    args: Vec<String>,
}

impl Node {
    /// A node on 127.0.0.1:0 with a fresh data directory.
    pub(crate) fn start() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        Node::launch(dir, "127.0.0.1:0", None)
    }

    /// A node whose config file holds `config` (TOML).
    pub(crate) fn start_with_config(config: &str) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("node.toml");
        std::fs::write(&cfg, config).expect("write config");
        Node::launch(dir, "127.0.0.1:0", Some(cfg))
    }

    /// A node started with more `weft up` arguments (`--fabric URL`, …).
    pub(crate) fn start_args(args: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = Node::prepare(dir, "127.0.0.1:0", None);
        n.args = args.iter().map(|a| a.to_string()).collect();
        n.spawn();
        n
    }

    /// A node with a config file holding `config` and more `weft up`
    /// arguments.
    pub(crate) fn start_with_config_args(config: &str, args: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("node.toml");
        std::fs::write(&cfg, config).expect("write config");
        let mut n = Node::prepare(dir, "127.0.0.1:0", Some(cfg));
        n.args = args.iter().map(|a| a.to_string()).collect();
        n.spawn();
        n
    }

    /// A node listening on all interfaces (so the admin API needs a token).
    pub(crate) fn start_public() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        Node::launch(dir, "0.0.0.0:0", None)
    }

    fn launch(dir: tempfile::TempDir, listen: &str, config: Option<PathBuf>) -> Node {
        let mut n = Node::prepare(dir, listen, config);
        n.spawn();
        n
    }

    fn prepare(dir: tempfile::TempDir, listen: &str, config: Option<PathBuf>) -> Node {
        let data = dir.path().join("data");
        Node {
            url: String::new(),
            data,
            token: None,
            child: None,
            stderr_path: dir.path().join("node.log"),
            _dir: Some(dir),
            listen: listen.to_string(),
            config,
            args: Vec::new(),
        }
    }

    fn spawn(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("node log");
        let mut cmd = Command::new(WEFT);
        cmd.args(["up", "--listen", &self.listen, "--data"])
            .arg(&self.data)
            .env("RUST_LOG", "info,weft=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&self.args);
        let mut child = cmd.spawn().expect("spawn weft up");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).expect("read first line");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in first line {first:?}; log: {}", self.log()))
            .to_string();
        // With a non-loopback listener, clients use 127.0.0.1 with the port.
        let port = url.rsplit(':').next().unwrap_or_default().to_string();
        self.url = format!("http://127.0.0.1:{port}");
        let mut second = String::new();
        if self.listen.starts_with("0.0.0.0") && self.token.is_none() {
            reader.read_line(&mut second).expect("read token line");
            self.token = second.split_whitespace().last().map(str::to_string);
        }
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        self.child = Some(child);
    }

    /// The node's own log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9`, then wait for the process to be gone.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status.
    #[allow(unsafe_code)] // libc's kill, to send SIGTERM
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        c.wait().expect("wait")
    }

    /// Starts the node again on the same data directory (a new port).
    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs a CLI command against this node.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(WEFT);
        cmd.args(args)
            .env("WEFT_URL", &self.url)
            .env_remove("WEFT_TOKEN");
        if let Some(t) = &self.token {
            cmd.env("WEFT_TOKEN", t);
        }
        cmd.output().expect("run weft")
    }

    /// Runs a CLI command and requires success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "weft {args:?} failed: {}\nstdout: {}\nnode log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a CLI command with `--json` and parses stdout.
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let s = self.ok(&a);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}: {s}"))
    }

    /// Deploys a guest fixture under `name` with extra flags.
    pub(crate) fn deploy(&self, name: &str, fixture: &str, flags: &[&str]) -> Value {
        let path = guest(fixture);
        let mut args = vec!["deploy", name, path.to_str().expect("utf8 path")];
        args.extend_from_slice(flags);
        let v = self.json(&args);
        v[0].clone()
    }

    pub(crate) fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client")
    }

    /// POSTs `body` to `/fn/{path}`.
    pub(crate) fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> reqwest::blocking::Response {
        self.http()
            .post(format!("{}/fn/{path}", self.url))
            .body(body)
            .send()
            .expect("request")
    }

    /// GET of an admin path, with the token when there is one.
    pub(crate) fn admin_get(&self, path: &str) -> reqwest::blocking::Response {
        let mut rb = self.http().get(format!("{}{path}", self.url));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        rb.send().expect("request")
    }

    /// The value of one sample in `/metrics`, summed over matching lines.
    pub(crate) fn metric(&self, name_and_labels: &str) -> f64 {
        let text = self.admin_get("/metrics").text().expect("metrics");
        text.lines()
            .filter(|l| l.starts_with(name_and_labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The JSON error a failed `--json` command printed: the last line of its
/// stderr (progress lines may precede it).
pub(crate) fn json_error(out: &Output) -> Value {
    assert!(!out.status.success(), "the command should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON error ({e}): {stderr}"))
}

/// The error object of a JSON error response.
pub(crate) fn error_of(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().expect("JSON error body");
    (status, body["error"].clone())
}

/// Polls `f` until it returns true or `within` passes.
pub(crate) fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
