//! The declarative inputs of Weft: application manifests (`weft.toml`, what
//! functions need) and node configuration (what the operator provides), and
//! the validation of every value in them — names, sizes, durations, topics,
//! routes, hosts, cron schedules, MQTT filters, server URLs — so that a bad input is
//! refused, naming its file, function and field, before anything is
//! uploaded.
//!
//! ```
//! use weft_manifest::Manifest;
//! let m = Manifest::parse(
//!     "manifest_version = 1\n[functions.hello]\nmodule = \"hello.wasm\"\ntimeout = \"5s\"\n",
//!     "weft.toml".as_ref(),
//! ).unwrap();
//! assert!(m.functions.contains_key(&"hello".parse().unwrap()));
//! ```

pub mod addr;
mod caps;
mod cron;
mod error;
mod manifest;
pub mod mqtt;
mod node;
mod placement;
mod spec;
mod state;
pub mod types;
mod units;
mod workflow;

pub use caps::{
    CronTrigger, HostPattern, MAX_TOPIC_LEN, MqttTrigger, RetrySpec, topic_matches, topics_provide,
    validate_config_key, validate_route, validate_topic, validate_topic_pattern,
};
pub use cron::{CronError, Schedule};
pub use error::{Error, FieldError};
pub use manifest::{MANIFEST_VERSION, Manifest, ManifestError};
pub use node::{
    Defaults, KvStoreConfig, MAX_WORKERS, MqttConfig, NodeConfig, QueueConfig, Scheduler,
    Unmeetable,
};
pub use placement::{
    FabricConfig, PRIVACIES, PlacementSpec, TIERS, valid_node_name, validate_label,
    validate_privacy, validate_tier,
};
pub use spec::{FunctionSpec, ModuleRef, bounds};
pub use state::{
    DEFAULT_KEY_HEADER, DEFAULT_STATE_BUCKET, KeySource, MAX_CLIENT_STATE, MAX_STATE_KEY,
    StateConfig, StateModel, StateSpec, validate_state_key,
};
pub use types::{at_pointer, conforms, fits};
pub use units::{ByteSize, HumanDuration, Name, Percentile};
pub use workflow::{
    Condition, DEFAULT_MAP_CONCURRENCY, MAX_MAP_CONCURRENCY, MAX_MAP_ITEMS, MAX_RUN_DEADLINE,
    MAX_STEPS, MapPlan, Plan, PlannedStep, StepDecl, StepSpec, WorkflowSpec,
};
