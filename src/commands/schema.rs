use clap::Args;
use std::process::ExitCode;

/// Print the JSON schema of `weft.toml`.
#[derive(Args)]
pub(crate) struct Schema {
    /// Print the schema of the node's config file instead.
    #[arg(long)]
    node_config: bool,
    /// Accepted for symmetry with other commands: the output is JSON.
    #[arg(long)]
    json: bool,
}

impl Schema {
    pub(crate) async fn run(self) -> ExitCode {
        let _ = self.json;
        let schema = if self.node_config {
            serde_json::to_value(schemars::schema_for!(weft_manifest::NodeConfig))
                .unwrap_or_default()
        } else {
            weft_manifest::Manifest::json_schema()
        };
        crate::client::print_json(&schema);
        ExitCode::SUCCESS
    }
}
