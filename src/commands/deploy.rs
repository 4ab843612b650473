use crate::client::{
    Client, ClientError, ClientOpts, ClientResult, Code, finish, human_bytes, print_json,
};
use clap::Args;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use weft_manifest::{
    ByteSize, FunctionSpec, HumanDuration, Manifest, ModuleRef, Name, Percentile, WorkflowSpec,
};

/// Deploy a function: upload its module (validated and compiled once by the
/// node), then create a new version and make it active. With a manifest,
/// its workflows are deployed after its functions.
///
///   weft deploy hello ./hello.wasm --timeout 5s --memory 64MiB
///   weft deploy --manifest weft.toml
#[derive(Args)]
pub(crate) struct Deploy {
    /// The function's name.
    #[arg(required_unless_present = "manifest")]
    name: Option<String>,
    /// The module: a .wasm (or .wat) file, or `sha256:<hex>` of one on the node.
    #[arg(required_unless_present = "manifest")]
    module: Option<String>,
    /// Deploy every function of a manifest (or only NAME, when given).
    #[arg(long, short = 'm', conflicts_with = "module")]
    manifest: Option<PathBuf>,
    /// Wall-clock limit per invocation, e.g. 500ms, 5s: stopped then.
    #[arg(long)]
    timeout: Option<HumanDuration>,
    /// Service-level deadline from arrival, e.g. 2ms (at most the timeout).
    #[arg(long)]
    deadline: Option<HumanDuration>,
    /// First estimate of the execution time, e.g. 800us, until learned.
    #[arg(long)]
    expected: Option<HumanDuration>,
    /// Percentile of execution times admission plans with, e.g. p90.
    #[arg(long)]
    admission: Option<Percentile>,
    /// Linear memory limit, e.g. 64MiB.
    #[arg(long)]
    memory: Option<ByteSize>,
    /// Fuel per invocation (the node must meter fuel).
    #[arg(long)]
    fuel: Option<u64>,
    /// Sandboxes of this function at once.
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Invocations that may wait for a slot.
    #[arg(long)]
    max_queue: Option<u32>,
    /// Idle time before scaling to zero, e.g. 5m.
    #[arg(long)]
    idle_ttl: Option<HumanDuration>,
    /// Largest request body, e.g. 1MiB.
    #[arg(long)]
    max_request_size: Option<ByteSize>,
    /// Largest response body, e.g. 8MiB.
    #[arg(long)]
    max_response_size: Option<ByteSize>,
    /// Argument of a command, after its name (repeatable, in order):
    /// `--arg 10` runs it as `NAME 10`.
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Environment variable for the guest, K=V (repeatable).
    #[arg(long = "env", short = 'e')]
    env: Vec<String>,
    /// Grant the real clocks.
    #[arg(long)]
    clock: bool,
    /// Allow invocation without the token when the node listens beyond loopback.
    #[arg(long)]
    public: bool,
    /// What the function does.
    #[arg(long)]
    description: Option<String>,
    /// Key-value store the function uses, by label (repeatable).
    #[arg(long = "kv")]
    key_value_stores: Vec<String>,
    /// Config value for `wasi:config`, K=V (repeatable).
    #[arg(long = "config-value")]
    config_values: Vec<String>,
    /// Host outbound HTTP may reach, scheme://host[:port] (repeatable).
    #[arg(long = "allow-host")]
    allowed_outbound_hosts: Vec<String>,
    /// Function this one may call (repeatable).
    #[arg(long = "call")]
    calls: Vec<String>,
    /// Topic pattern the function may publish on (repeatable).
    #[arg(long = "publish")]
    publishes: Vec<String>,
    /// Topic pattern whose events invoke the function (repeatable).
    #[arg(long = "subscribe")]
    subscribes: Vec<String>,
    /// HTTP route served by the function, e.g. /hello or /api/... (repeatable).
    #[arg(long = "route")]
    routes: Vec<String>,
    /// Cron schedule (UTC) that invokes the function (repeatable).
    #[arg(long = "cron")]
    cron: Vec<String>,
    /// MQTT topic filter whose messages invoke the function (repeatable).
    #[arg(long = "mqtt")]
    mqtt: Vec<String>,
    /// Attempts of asynchronous invocations, the first included.
    #[arg(long)]
    retries: Option<u32>,
    /// Placement: a tier it may run on (device, edge, fog, cloud; repeatable).
    #[arg(long = "tier")]
    tiers: Vec<String>,
    /// Placement: a label the node must carry, KEY=VALUE (repeatable).
    #[arg(long = "on-label", value_name = "KEY=VALUE")]
    on_labels: Vec<String>,
    /// Placement: keep the request's data in its `site` or `tier`.
    #[arg(long)]
    privacy: Option<String>,
    /// Placement: end-to-end latency target, e.g. 10ms.
    #[arg(long)]
    latency: Option<HumanDuration>,
    /// Placement: a key-value store to run near (repeatable).
    #[arg(long = "near")]
    near: Vec<String>,
    /// Running it twice does no harm: a sync invocation whose node died is
    /// retried on another node.
    #[arg(long)]
    idempotent: bool,
    /// State model of its `state` bucket: external, edge, function or client.
    #[arg(long, value_name = "MODEL")]
    state: Option<weft_manifest::StateModel>,
    /// Where an invocation's state key comes from: header:NAME (default
    /// header:x-weft-key), path:N or query:NAME.
    #[arg(long, value_name = "SOURCE", requires = "state")]
    state_key: Option<weft_manifest::KeySource>,
    /// The bucket label the function opens for its state (default `state`).
    #[arg(long, value_name = "LABEL", requires = "state")]
    state_bucket: Option<Name>,
    /// What it takes, as a JSON schema (`@FILE` reads a file): workflows
    /// whose steps would pass it something else are refused at deploy.
    #[arg(long, value_name = "SCHEMA")]
    input_schema: Option<String>,
    /// What it answers, as a JSON schema (`@FILE` reads a file).
    #[arg(long, value_name = "SCHEMA")]
    output_schema: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

/// A schema flag's value: JSON, or `@FILE` holding it.
fn schema(flag: &str, v: Option<&str>) -> ClientResult<Option<serde_json::Value>> {
    let Some(v) = v else { return Ok(None) };
    let text = match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            ClientError::local(Code::InvalidInput, format!("{flag}: reading {path}: {e}"))
        })?,
        None => v.to_string(),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ClientError::local(Code::InvalidInput, format!("{flag}: not JSON: {e}")))
}

impl Deploy {
    pub(crate) async fn run(self) -> ExitCode {
        let json = self.opts.json;
        finish(self.go().await, json)
    }

    /// `[placement]` from the flags, if any was given.
    fn placement(&self) -> ClientResult<Option<weft_manifest::PlacementSpec>> {
        if self.tiers.is_empty()
            && self.on_labels.is_empty()
            && self.privacy.is_none()
            && self.latency.is_none()
            && self.near.is_empty()
        {
            return Ok(None);
        }
        let mut labels = std::collections::BTreeMap::new();
        for l in &self.on_labels {
            let (k, v) = l.split_once('=').ok_or_else(|| {
                ClientError::local(
                    Code::InvalidInput,
                    format!("--on-label `{l}`: expected KEY=VALUE"),
                )
            })?;
            labels.insert(k.to_string(), v.to_string());
        }
        let near = self
            .near
            .iter()
            .map(|n| {
                Name::new(n)
                    .map_err(|e| ClientError::local(Code::InvalidInput, format!("--near: {e}")))
            })
            .collect::<ClientResult<_>>()?;
        Ok(Some(weft_manifest::PlacementSpec {
            tier: self.tiers.clone(),
            labels,
            privacy: self.privacy.clone(),
            latency: self.latency,
            near,
            cost_weight: None,
            energy_weight: None,
        }))
    }

    fn spec_from_flags(&self, module: String) -> ClientResult<FunctionSpec> {
        let mut env = BTreeMap::new();
        for kv in &self.env {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(ClientError::local(
                    Code::InvalidInput,
                    format!("--env `{kv}` is not K=V"),
                ));
            };
            env.insert(k.to_string(), v.to_string());
        }
        let mut config = BTreeMap::new();
        for kv in &self.config_values {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(ClientError::local(
                    Code::InvalidInput,
                    format!("--config-value `{kv}` is not K=V"),
                ));
            };
            config.insert(k.to_string(), v.to_string());
        }
        let names = |flag: &str, v: &[String]| -> ClientResult<Vec<Name>> {
            v.iter()
                .map(|n| {
                    Name::new(n)
                        .map_err(|e| ClientError::local(Code::InvalidInput, format!("{flag}: {e}")))
                })
                .collect()
        };
        let spec = FunctionSpec {
            module,
            description: self.description.clone(),
            public: self.public,
            timeout: self.timeout,
            deadline: self.deadline,
            expected: self.expected,
            admission: self.admission,
            memory: self.memory,
            fuel: self.fuel,
            max_concurrency: self.max_concurrency,
            max_queue: self.max_queue,
            idle_ttl: self.idle_ttl,
            max_request_size: self.max_request_size,
            max_response_size: self.max_response_size,
            args: self.args.clone(),
            env,
            clock: self.clock,
            key_value_stores: names("--kv", &self.key_value_stores)?,
            config,
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            calls: names("--call", &self.calls)?,
            publishes: self.publishes.clone(),
            subscribes: self.subscribes.clone(),
            routes: self.routes.clone(),
            cron: self
                .cron
                .iter()
                .map(|c| weft_manifest::CronTrigger {
                    schedule: c.clone(),
                    payload: None,
                })
                .collect(),
            mqtt: self
                .mqtt
                .iter()
                .map(|t| weft_manifest::MqttTrigger {
                    topic: t.clone(),
                    response_topic: None,
                })
                .collect(),
            retry: self.retries.map(|attempts| weft_manifest::RetrySpec {
                attempts,
                ..Default::default()
            }),
            placement: self.placement()?,
            state: self.state.map(|model| weft_manifest::StateSpec {
                model,
                key: self.state_key.clone(),
                bucket: self.state_bucket.clone(),
            }),
            idempotent: self.idempotent,
            input: schema("--input-schema", self.input_schema.as_deref())?,
            output: schema("--output-schema", self.output_schema.as_deref())?,
        };
        spec.validate()
            .map_err(|e| ClientError::local(e.code(), &e).at_field(e.field()))?;
        Ok(spec)
    }

    async fn go(self) -> ClientResult<()> {
        let c = Client::new(&self.opts)?;
        let mut plan: Vec<(Name, FunctionSpec)> = Vec::new();
        let mut workflows: Vec<(Name, WorkflowSpec)> = Vec::new();
        if let Some(path) = &self.manifest {
            let m = Manifest::load(path)
                .map_err(|e| ClientError::local(Code::InvalidManifest, e.to_string()))?;
            for (name, spec) in m.functions {
                if self.name.as_deref().is_none_or(|n| n == name.as_str()) {
                    plan.push((name, spec));
                }
            }
            for (name, spec) in m.workflows {
                if self.name.as_deref().is_none_or(|n| n == name.as_str()) {
                    workflows.push((name, spec));
                }
            }
            if plan.is_empty() && workflows.is_empty() {
                return Err(ClientError::local(
                    Code::FunctionNotFound,
                    format!(
                        "{}: no function `{}`",
                        path.display(),
                        self.name.unwrap_or_default()
                    ),
                ));
            }
        } else {
            let name = self.name.clone().unwrap_or_default();
            let name = Name::new(&name).map_err(|e| ClientError::local(Code::InvalidName, e))?;
            let spec = self.spec_from_flags(self.module.clone().unwrap_or_default())?;
            plan.push((name, spec));
        }

        let mut results = Vec::new();
        for (name, mut spec) in plan {
            if let ModuleRef::Path(p) = spec.module_ref() {
                spec.module = self.upload(&c, &p, name.as_str()).await?;
            }
            let rb = c
                .request(reqwest::Method::PUT, &format!("/v1/functions/{name}"))
                .json(&spec);
            let status = c.json(rb).await?;
            if !self.opts.json {
                println!(
                    "deployed {name} version {} ({}, {})",
                    status["active"],
                    status["kind"].as_str().unwrap_or("?"),
                    short(&spec.module)
                );
            }
            results.push(status);
        }
        // After the functions: a workflow's steps must be deployed first.
        for (name, spec) in workflows {
            let rb = c
                .request(reqwest::Method::PUT, &format!("/v1/workflows/{name}"))
                .json(&spec);
            let status = c.json(rb).await?;
            if !self.opts.json {
                let how = if status["changed"].as_bool() == Some(true) {
                    "deployed"
                } else {
                    "unchanged:"
                };
                println!(
                    "{how} workflow {name} version {} ({} steps)",
                    status["version"],
                    spec.steps.len()
                );
            }
            results.push(status);
        }
        if self.opts.json {
            print_json(&Value::Array(results));
        }
        Ok(())
    }

    /// Uploads a module file and returns its `sha256:<hex>`.
    async fn upload(&self, c: &Client, path: &str, function: &str) -> ClientResult<String> {
        let bytes = std::fs::read(path).map_err(|e| {
            ClientError::local(Code::InvalidInput, format!("reading module {path}: {e}"))
        })?;
        if !self.opts.json {
            eprint!("uploading {path} ({})… ", human_bytes(bytes.len() as u64));
        }
        let started = Instant::now();
        let rb = c
            .request(
                reqwest::Method::PUT,
                &format!("/v1/modules?function={function}"),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        let v = match c.json(rb).await {
            Ok(v) => v,
            Err(e) => {
                if !self.opts.json {
                    eprintln!("failed");
                }
                return Err(e);
            }
        };
        if !self.opts.json {
            let how = if v["compiled"].as_bool() == Some(true) {
                "compiled"
            } else {
                "already compiled"
            };
            eprintln!("{how} in {:.2?}", started.elapsed());
        }
        v["module"].as_str().map(str::to_string).ok_or_else(|| {
            ClientError::local(Code::BadResponse, "the node did not return a module digest")
        })
    }
}

fn short(module: &str) -> String {
    module.chars().take(19).collect()
}
