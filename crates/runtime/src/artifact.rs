//! The on-disk, content-addressed cache of modules and compiled artifacts.
//!
//! ```text
//! <root>/modules/<sha256>.wasm              the module as uploaded (binary)
//! <root>/artifacts/<engine>/<sha256>.cwasm  compiled by an engine whose
//!                                           configuration hashes to <engine>
//!                                           (`.component.cwasm` for components,
//!                                           so loading needs no sniffing)
//! ```
//!
//! Every file is written to a temporary name, synced, renamed into place and
//! its directory synced, so a file under its final name is always whole.

use sha2::{Digest, Sha256};
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The sha256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A [`Hasher`] that feeds sha256, so `impl Hash` values get a digest that is
/// stable across processes and Rust versions.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A short, stable fingerprint of everything in the engine's configuration
/// that affects compiled code.
pub(crate) fn engine_fingerprint(engine: &wasmtime::Engine) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    hex::encode(&h.0.finalize()[..8])
}

/// Paths of the cache for one engine.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactDirs {
    modules: PathBuf,
    artifacts: PathBuf,
}

impl ArtifactDirs {
    pub(crate) fn create(root: &Path, fingerprint: &str) -> std::io::Result<Self> {
        let dirs = ArtifactDirs {
            modules: root.join("modules"),
            artifacts: root.join("artifacts").join(fingerprint),
        };
        std::fs::create_dir_all(&dirs.modules)?;
        std::fs::create_dir_all(&dirs.artifacts)?;
        Ok(dirs)
    }

    pub(crate) fn module(&self, digest: &str) -> PathBuf {
        self.modules.join(format!("{digest}.wasm"))
    }

    pub(crate) fn artifact(&self, digest: &str, component: bool) -> PathBuf {
        let ext = if component {
            "component.cwasm"
        } else {
            "cwasm"
        };
        self.artifacts.join(format!("{digest}.{ext}"))
    }

    /// Digests of every module stored.
    pub(crate) fn module_digests(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.modules)? {
            let name = entry?.file_name();
            if let Some(d) = name.to_str().and_then(|n| n.strip_suffix(".wasm")) {
                out.push(d.to_string());
            }
        }
        Ok(out)
    }

    /// Removes the module and its artifact.
    pub(crate) fn remove(&self, digest: &str) -> std::io::Result<()> {
        for p in [
            self.module(digest),
            self.artifact(digest, false),
            self.artifact(digest, true),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Removes temporary files left by a write that was interrupted.
    pub(crate) fn remove_temporaries(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        for dir in [&self.modules, &self.artifacts] {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Writes `bytes` to `path` so that `path` is either absent or whole, even
/// across a crash: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other(format!("{} has no parent", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".tmp-{}-{name}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(std::fs::read(&p)?, b"two");
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }

    #[test]
    fn sha256_is_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
