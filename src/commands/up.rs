use clap::{Args, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weft_controller::Controller;
use weft_gateway::Auth;
use weft_manifest::NodeConfig;

/// Start a node on this machine: the HTTP gateway (admin API under /v1/,
/// invocations under /fn/NAME) and the embedded store in --data.
///
/// The first line on stdout is `weft listening on http://ADDR`. SIGTERM or
/// Ctrl-C drains in-flight invocations, then exits 0.
#[derive(Args)]
pub(crate) struct Up {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7777")]
    listen: String,
    /// Data directory (registry, modules, compiled artifacts).
    /// Default: $XDG_DATA_HOME/weft or ~/.local/share/weft.
    #[arg(long, env = "WEFT_DATA")]
    data: Option<PathBuf>,
    /// Node configuration file (TOML; `weft schema --node-config` prints its schema).
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    /// Join a fabric through this NATS server (`nats://HOST:PORT`, several
    /// comma-separated). Credentials and TLS come from `[fabric]` in
    /// --config. Without it the node is standalone.
    #[arg(long, value_name = "URL")]
    fabric: Option<String>,
    /// The node's tier in the fabric: device, edge, fog or cloud.
    #[arg(long)]
    tier: Option<String>,
    /// A label placement can match (`site=a`, `arch=x86_64`); repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The node's name in the fabric. Default: the host name and a suffix
    /// kept in the data directory (`myhost-3fa2c1`), so two nodes on one
    /// machine differ. A name another node of the fabric answers to is
    /// refused.
    #[arg(long)]
    node_name: Option<String>,
    /// Format of the node's own log on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Meta key of the admin token's hash.
const TOKEN_META: &str = "admin_token_sha256";

fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("weft");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/weft"),
        None => PathBuf::from(".weft"),
    }
}

impl Up {
    pub(crate) async fn run(self) -> ExitCode {
        match self.go().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }

    async fn go(self) -> anyhow::Result<()> {
        use anyhow::Context;
        init_tracing(self.log_format);
        let listen: SocketAddr = self.listen.parse().with_context(|| {
            format!(
                "--listen `{}` is not an address like 127.0.0.1:7777",
                self.listen
            )
        })?;
        let mut config = match &self.config {
            Some(p) => NodeConfig::load(p).map_err(anyhow::Error::msg)?,
            None => NodeConfig::default(),
        };
        self.fabric_overrides(&mut config)?;
        let drain = config
            .drain_timeout
            .map_or(Duration::from_secs(30), |d| d.0);
        let data = self.data.clone().unwrap_or_else(default_data_dir);
        let config_token = config.token.clone();
        let controller = Controller::open(&data, config)
            .await
            .context("opening the node")?;

        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let (auth, new_token) = if addr.ip().is_loopback() {
            (Auth::Open, None)
        } else {
            auth_for(&controller, config_token)?
        };

        let mut out = std::io::stdout().lock();
        writeln!(out, "weft listening on http://{addr}")?;
        if let Some(t) = new_token {
            writeln!(
                out,
                "admin token (shown once; keep it, use it as WEFT_TOKEN): {t}"
            )?;
        }
        out.flush()?;
        drop(out);
        tracing::info!(%addr, data = %controller.data_dir().display(), engine = controller.engine_fingerprint(), "node up");

        let router = weft_router::start(controller.clone());
        if let Some(f) = &controller.config().fabric {
            let default_name = default_node_name(&hostname(), &controller.node_id()?);
            let mesh = weft_router::mesh_config(f, &default_name, Some(format!("http://{addr}")))
                .map_err(anyhow::Error::msg)?;
            let name = mesh.name.clone();
            weft_router::join_fabric(&router, mesh)
                .await
                .context("joining the fabric")?;
            tracing::info!(node = %name, url = f.url.as_deref().unwrap_or(""), "in the fabric");
        }
        controller.start_background();
        let triggers = weft_triggers::Triggers::start(&router).context("starting the triggers")?;
        let workflows = weft_workflow::Workflows::start(router.clone())
            .await
            .context("starting the workflows")?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(weft_gateway::serve(
            listener,
            router.clone(),
            Some(triggers),
            workflows,
            auth,
            async move {
                let _ = stop_rx.await;
            },
        ));
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight invocations");
        router.announce_leaving().await;
        let _ = stop_tx.send(());
        let started = std::time::Instant::now();
        match tokio::time::timeout(drain, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error"),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => tracing::warn!("drain timeout: closing open connections"),
        }
        let left = controller
            .drain(drain.saturating_sub(started.elapsed()))
            .await;
        if left > 0 {
            tracing::warn!(left, "invocations still running at exit");
        }
        router.leave_fabric().await;
        tracing::info!("stopped");
        Ok(())
    }

    /// `--fabric`, `--tier`, `--label` and `--node-name` over `[fabric]`.
    fn fabric_overrides(&self, config: &mut NodeConfig) -> anyhow::Result<()> {
        let given = self.fabric.is_some()
            || self.tier.is_some()
            || !self.labels.is_empty()
            || self.node_name.is_some();
        if !given {
            return Ok(());
        }
        let f = config.fabric.get_or_insert_with(Default::default);
        if let Some(u) = &self.fabric {
            f.url = Some(u.clone());
        }
        if f.url.is_none() {
            anyhow::bail!(
                "--tier, --label and --node-name need a fabric: give --fabric nats://HOST:PORT"
            );
        }
        if let Some(t) = &self.tier {
            weft_manifest::validate_tier(t).map_err(|e| anyhow::anyhow!("--tier: {e}"))?;
            f.tier = Some(t.clone());
        }
        for l in &self.labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--label `{l}`: expected KEY=VALUE"))?;
            weft_manifest::validate_label(k, v).map_err(|e| anyhow::anyhow!("--label: {e}"))?;
            f.labels.insert(k.to_string(), v.to_string());
        }
        if let Some(n) = &self.node_name {
            f.name = Some(n.clone());
        }
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

/// The host name, made a valid node name (lowercase, `-` for the rest).
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "weft".into());
    let mut name: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() { "weft".into() } else { name }
}

/// The host name and the first six hex digits of the node's id (random at
/// first start, kept in its data directory): stable across restarts,
/// different for two nodes on one machine.
fn default_node_name(host: &str, node_id: &str) -> String {
    let suffix: String = node_id.chars().take(6).collect();
    let host: String = host.chars().take(63 - 1 - suffix.len()).collect();
    let host = host.trim_end_matches('-');
    if suffix.is_empty() {
        host.to_string()
    } else {
        format!("{host}-{suffix}")
    }
}

/// The admin token: from the config, or the stored hash, or a new one.
fn auth_for(
    c: &Arc<Controller>,
    configured: Option<String>,
) -> anyhow::Result<(Auth, Option<String>)> {
    if let Some(t) = configured {
        return Ok((Auth::from_token(&t), None));
    }
    if let Some(h) = c.store().meta(TOKEN_META)? {
        let bytes = hex::decode(h.trim())?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("stored admin token hash is corrupt"))?;
        return Ok((Auth::Token(hash), None));
    }
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("entropy: {e}"))?;
    let token = hex::encode(raw);
    let hash = weft_runtime::sha256_hex(token.as_bytes());
    c.store().set_meta(TOKEN_META, &hash)?;
    Ok((Auth::from_token(&token), Some(token)))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
