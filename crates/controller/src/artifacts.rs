//! Modules and their compiled code: uploads (validated, compiled once,
//! content-addressed), the cold path that loads a function's code (fetching
//! the module from the fabric the first time this node runs it), sharing
//! modules with the fabric, and removing modules nothing references.

use crate::error::{Error, Result};
use crate::function::Function;
use crate::metrics::Metrics;
use bytes::Bytes;
use serde::Serialize;
use std::sync::{Arc, OnceLock};
use weft_mesh::{Mesh, MeshError};
use weft_runtime::{Loaded, Runtime};
use weft_store::{ModuleRecord, Store};

/// The result of uploading a module.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// `sha256:<hex>`.
    pub module: String,
    /// `command` or `http`.
    pub kind: String,
    /// Bytes.
    pub size: u64,
    /// Whether this upload compiled it (false: it was cached).
    pub compiled: bool,
}

/// The runtime's artifact cache and the store's module records, with the
/// fabric's object store once the node joins one.
pub(crate) struct Artifacts {
    runtime: Arc<Runtime>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    mesh: OnceLock<Arc<Mesh>>,
}

/// A mesh error as the controller reports it.
pub(crate) fn unavailable(e: MeshError) -> Error {
    match e {
        MeshError::Conflict(k) => {
            Error::FabricUnavailable(format!("`{k}` kept changing concurrently; try again"))
        }
        MeshError::Unavailable(m) => Error::FabricUnavailable(m),
        other => Error::FabricUnavailable(other.to_string()),
    }
}

impl Artifacts {
    pub(crate) fn new(runtime: Arc<Runtime>, store: Arc<Store>, metrics: Arc<Metrics>) -> Self {
        Artifacts {
            runtime,
            store,
            metrics,
            mesh: OnceLock::new(),
        }
    }

    pub(crate) fn set_mesh(&self, mesh: Arc<Mesh>) {
        let _ = self.mesh.set(mesh);
    }

    /// Validates, compiles (once) and stores a module. `for_function` names
    /// the function it is meant for, in errors.
    pub(crate) async fn upload(
        &self,
        bytes: Bytes,
        for_function: Option<&str>,
    ) -> Result<ModuleInfo> {
        let rt = self.runtime.clone();
        let before = rt.compilations();
        let prepared = tokio::task::spawn_blocking(move || rt.prepare(&bytes))
            .await
            .map_err(|e| Error::Internal(format!("compile task: {e}")))?
            .map_err(|source| Error::Prepare {
                name: for_function.map(str::to_string),
                source,
            })?;
        let compiled_now = self.runtime.compilations().saturating_sub(before);
        self.metrics.compilations.inc_by(compiled_now);
        if self.store.module(&prepared.digest)?.is_none() {
            self.store.put_module(&ModuleRecord {
                digest: prepared.digest.clone(),
                kind: prepared.kind.as_str().to_string(),
                size: prepared.size,
                stored_at: weft_store::now_ms(),
            })?;
        }
        Ok(ModuleInfo {
            module: format!("sha256:{}", prepared.digest),
            kind: prepared.kind.as_str().to_string(),
            size: prepared.size,
            compiled: prepared.compiled,
        })
    }

    /// The stored module record, if both it and its bytes are here.
    pub(crate) fn module(&self, digest: &str) -> Result<Option<ModuleRecord>> {
        Ok(self
            .store
            .module(digest)?
            .filter(|_| self.runtime.has_module(digest)))
    }

    /// Stores a module in the fabric's object store.
    pub(crate) async fn share(&self, mesh: &Mesh, digest: &str) -> Result<()> {
        let rt = self.runtime.clone();
        let d = digest.to_string();
        let bytes = tokio::task::spawn_blocking(move || rt.module_bytes(&d))
            .await
            .map_err(|e| Error::Internal(format!("read task: {e}")))?
            .map_err(|source| Error::Prepare { name: None, source })?;
        mesh.artifact_put(digest, &bytes).await.map_err(unavailable)
    }

    /// Fetches a module this node does not have from the fabric, checks
    /// its digest and prepares it (validate, compile, cache).
    async fn fetch(&self, name: &str, digest: &str) -> Result<()> {
        let missing = || Error::ModuleNotFound {
            name: name.to_string(),
            digest: digest.to_string(),
        };
        let Some(mesh) = self.mesh.get() else {
            return Err(missing());
        };
        let bytes = mesh.artifact_get(digest).await.map_err(|e| match e {
            MeshError::NoArtifact(_) => missing(),
            other => unavailable(other),
        })?;
        let info = self.upload(bytes, Some(name)).await?;
        if info.module != format!("sha256:{digest}") {
            return Err(Error::Internal(format!(
                "fetched module is {} where sha256:{digest} was asked for",
                info.module
            )));
        }
        tracing::info!(function = %name, module = %digest, "fabric: module fetched");
        Ok(())
    }

    /// The function's pre-instantiated code, and whether this was a cold
    /// start: warm, or loaded from disk (fetched from the fabric first if
    /// this node never had the module).
    pub(crate) async fn load(&self, f: &Function) -> Result<(Loaded, bool)> {
        if let Some(l) = f.warm() {
            return Ok((l, false));
        }
        let _guard = f.loading.lock().await;
        if let Some(l) = f.warm() {
            return Ok((l, false));
        }
        if !self.runtime.has_module(&f.version.digest) {
            self.fetch(&f.name, &f.version.digest).await?;
        }
        let rt = self.runtime.clone();
        let digest = f.version.digest.clone();
        let loaded = tokio::task::spawn_blocking(move || rt.load(&digest))
            .await
            .map_err(|e| Error::Internal(format!("load task: {e}")))?
            .map_err(|source| Error::Prepare {
                name: Some(f.name.clone()),
                source,
            })?;
        if loaded.kind() != f.kind {
            return Err(Error::Internal(format!(
                "function `{}`: artifact {} is a {} function, the registry says {}",
                f.name,
                f.version.digest,
                loaded.kind().as_str(),
                f.kind.as_str()
            )));
        }
        if !f.set_warm(Some(loaded.clone())) {
            self.metrics.warm_functions.inc();
        }
        Ok((loaded, true))
    }

    /// Drops a function's compiled code from memory (scale to zero, or a
    /// version no longer served).
    pub(crate) fn cool(&self, f: &Function) {
        if f.set_warm(None) {
            self.metrics.warm_functions.dec();
        }
    }

    /// Deletes stored modules no function version references.
    pub(crate) fn collect_garbage(&self) -> Result<()> {
        let referenced = self.store.referenced_digests()?;
        let mut dropped = Vec::new();
        let stored = self
            .runtime
            .stored_modules()
            .map_err(|source| Error::Prepare { name: None, source })?;
        for digest in stored {
            if !referenced.contains(&digest) {
                self.runtime
                    .remove_module(&digest)
                    .map_err(|source| Error::Prepare { name: None, source })?;
                dropped.push(digest);
            }
        }
        for m in self.store.modules()? {
            if !referenced.contains(&m.digest) && !dropped.contains(&m.digest) {
                dropped.push(m.digest);
            }
        }
        if !dropped.is_empty() {
            tracing::info!(count = dropped.len(), "removed unreferenced modules");
            self.store.remove_modules(&dropped)?;
        }
        Ok(())
    }
}
