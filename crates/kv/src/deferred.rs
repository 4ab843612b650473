//! A store whose backend arrives after the stores are opened (the fabric's
//! JetStream key-value, bound when the node joins). Until then every
//! operation is [`KvError::Unavailable`]: functions that use it fail
//! clearly, and nothing else is affected.

use crate::{Bucket, KeyPage, KvError};
use std::sync::{Arc, OnceLock};

/// A handle to the slot; clones share it.
#[derive(Clone)]
pub(crate) struct Deferred {
    label: String,
    inner: Arc<OnceLock<Arc<dyn Bucket>>>,
}

impl Deferred {
    pub(crate) fn new(label: &str) -> Self {
        Deferred {
            label: label.to_owned(),
            inner: Arc::new(OnceLock::new()),
        }
    }

    pub(crate) fn bind(&self, backend: Arc<dyn Bucket>) -> Result<(), KvError> {
        self.inner.set(backend).map_err(|_| KvError::Backend {
            store: self.label.clone(),
            message: "already bound".to_owned(),
        })
    }

    fn backend(&self) -> Result<&Arc<dyn Bucket>, KvError> {
        self.inner.get().ok_or_else(|| KvError::Unavailable {
            store: self.label.clone(),
            message: "its backend (the fabric) is not joined yet".to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl Bucket for Deferred {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.backend()?.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.backend()?.set(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.backend()?.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.backend()?.exists(key).await
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        self.backend()?.list_keys(cursor).await
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        self.backend()?.increment(key, delta).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        self.backend()?.get_many(keys).await
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.backend()?.set_many(entries).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        self.backend()?.delete_many(keys).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[crate::Change],
    ) -> Result<bool, KvError> {
        self.backend()?
            .compare_and_set(key, expected, value, also)
            .await
    }
}
