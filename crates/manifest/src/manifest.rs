//! `weft.toml`: the application manifest.

use crate::spec::{FunctionSpec, ModuleRef};
use crate::units::Name;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
}

/// A manifest that could not be read; the message names the file, and the
/// line or the field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// What is wrong, and where.
    pub message: String,
}

impl Manifest {
    /// Parses and validates manifest text; `path` is used in errors only.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let err = |message: String| ManifestError {
            path: path.to_path_buf(),
            message,
        };
        let m: Manifest =
            toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        if m.manifest_version != MANIFEST_VERSION {
            return Err(err(format!(
                "manifest_version {} is not supported; this weft reads version {MANIFEST_VERSION}",
                m.manifest_version
            )));
        }
        if m.functions.is_empty() {
            return Err(err("no functions: add a `[functions.NAME]` table".into()));
        }
        for (name, f) in &m.functions {
            f.validate()
                .map_err(|e| err(format!("functions.{name}.{e}")))?;
        }
        Ok(m)
    }

    /// Reads a manifest file and resolves module paths against its folder.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
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
