//! `weft.toml`: the application manifest.

use crate::error::Error;
use crate::spec::{FunctionSpec, ModuleRef};
use crate::units::Name;
use crate::workflow::WorkflowSpec;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest format this build reads.
pub const MANIFEST_VERSION: u32 = 1;

/// An application manifest, `weft.toml`:
///
/// ```toml
/// manifest_version = 1
///
/// [functions.hello]
/// module = "hello.wasm"
/// timeout = "5s"
/// memory = "64MiB"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Version of the manifest format; this build reads `1`.
    /// TOML: `manifest_version = 1`
    pub manifest_version: u32,
    /// The functions, by name. TOML: `[functions.NAME]`
    #[serde(default)]
    pub functions: BTreeMap<Name, FunctionSpec>,
    /// The workflows, by name: durable compositions of functions (these
    /// or others on the node). TOML: `[workflows.NAME]`
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workflows: BTreeMap<Name, WorkflowSpec>,
}

/// A manifest that could not be read: the file, and the line, function and
/// field at fault.
pub type ManifestError = Error;

impl Manifest {
    /// Parses and validates manifest text; `path` is used in errors only.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, Error> {
        let m: Manifest = from_toml(text, path)?;
        if m.manifest_version != MANIFEST_VERSION {
            return Err(Error::file(
                path,
                format!(
                    "manifest_version {} is not supported; this weft reads version {MANIFEST_VERSION}",
                    m.manifest_version
                ),
            ));
        }
        if m.functions.is_empty() && m.workflows.is_empty() {
            return Err(Error::file(
                path,
                "no functions: add a `[functions.NAME]` table",
            ));
        }
        for (name, f) in &m.functions {
            f.validate()
                .map_err(|e| Error::field(path, Some(name.as_str()), e))?;
        }
        for (name, w) in &m.workflows {
            w.plan()
                .map_err(|e| Error::field(path, None, e.at(format!("workflows.{name}"))))?;
        }
        Ok(m)
    }

    /// Reads a manifest file and resolves module paths against its folder.
    pub fn load(path: &Path) -> Result<Manifest, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let mut m = Manifest::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in m.functions.values_mut() {
            if let ModuleRef::Path(p) = f.module_ref() {
                f.module = base.join(p).to_string_lossy().into_owned();
            }
        }
        Ok(m)
    }

    /// The JSON schema of the manifest.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Manifest)).unwrap_or_default()
    }
}

/// Deserializes TOML text, naming in an error the line and the path of the
/// key at fault (`functions.hello.memroy`).
pub(crate) fn from_toml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, Error> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, &e, ""))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        toml_error(file, text, e.inner(), &path)
    })
}

fn toml_error(file: &Path, text: &str, e: &toml::de::Error, path: &str) -> Error {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let path = path.trim_start_matches('.');
    let (function, field) = match path.strip_prefix("functions.") {
        Some(rest) => match rest.split_once('.') {
            Some((f, field)) => (Some(f.to_string()), Some(field.to_string())),
            None => (Some(rest.to_string()), None),
        },
        None if path.is_empty() => (None, None),
        None => (None, Some(path.to_string())),
    };
    Error {
        file: file.to_path_buf(),
        line,
        function,
        field,
        message: e.message().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Manifest, String> {
        Manifest::parse(s, Path::new("weft.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_a_function() {
        let m = parse(
            "manifest_version = 1\n[functions.hello]\nmodule = \"h.wasm\"\nmemory = \"64MiB\"\ntimeout = \"2s\"\n",
        );
        let m = m.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.functions.len(), 1);
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = parse(
            "manifest_version = 1\n[functions.hello]\nmodule = \"h.wasm\"\nmemroy = \"1MiB\"\n",
        )
        .unwrap_err();
        assert!(e.starts_with("weft.toml:"), "{e}");
        assert!(e.contains("unknown field `memroy`"), "{e}");
        let e =
            parse("manifest_version = 1\n[functions.Hello]\nmodule = \"h.wasm\"\n").unwrap_err();
        assert!(e.contains("invalid name `Hello`"), "{e}");
        let e = parse("manifest_version = 2\n[functions.a]\nmodule = \"h.wasm\"\n").unwrap_err();
        assert!(e.contains("manifest_version 2"), "{e}");
        let e = parse(
            "manifest_version = 1\n[functions.a]\nmodule = \"h.wasm\"\nmax_concurrency = 0\n",
        )
        .unwrap_err();
        assert!(e.contains("functions.a.max_concurrency"), "{e}");
        let e =
            parse("manifest_version = 1\n[functions.a]\nmodule = \"h.wasm\"\nmemory = \"lots\"\n")
                .unwrap_err();
        assert!(e.contains("invalid size `lots`"), "{e}");
    }

    #[test]
    fn workflows_are_checked_and_errors_name_their_path() {
        let m = parse("manifest_version = 1\n[workflows.thumb]\nsteps = [\"resize\", \"store\"]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(m.functions.is_empty());
        assert_eq!(m.workflows.len(), 1);
        let e = parse(
            "manifest_version = 1\n[workflows.thumb]\nsteps = [\"a\", { function = \"b\", after = [\"x\"] }]\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "weft.toml: workflows.thumb.steps[1].after[0]: no step is named `x`"
        );
        let e = parse(
            "manifest_version = 1\n[workflows.thumb]\nsteps = [{ function = \"a\", retries = 2 }]\n",
        )
        .unwrap_err();
        assert!(e.starts_with("weft.toml:3: workflows.thumb.steps"), "{e}");
        assert!(e.contains("unknown field `retries`"), "{e}");
    }

    #[test]
    fn schema_mentions_every_field() {
        let s = Manifest::json_schema().to_string();
        for f in [
            "manifest_version",
            "max_concurrency",
            "idle_ttl",
            "max_response_size",
            "clock",
        ] {
            assert!(s.contains(f), "{f} missing from schema");
        }
    }
}
