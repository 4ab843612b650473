//! The one place where [`KvLimits`] are enforced: a [`Bucket`] wrapper that
//! validates every argument before the backend sees it.

use crate::{Bucket, KeyPage, KvError, KvLimits};

/// Checks limits, then delegates to the backend.
pub(crate) struct Limited<B> {
    inner: B,
    limits: KvLimits,
}

impl<B: Bucket> Limited<B> {
    pub(crate) fn new(inner: B, limits: KvLimits) -> Self {
        Limited { inner, limits }
    }

    fn key(&self, key: &str) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(KvError::InvalidKey("the key is empty".to_owned()));
        }
        if key.len() > self.limits.max_key {
            return Err(KvError::KeyTooLarge {
                len: key.len(),
                limit: self.limits.max_key,
            });
        }
        Ok(())
    }

    fn value(&self, value: &[u8]) -> Result<(), KvError> {
        if value.len() > self.limits.max_value {
            return Err(KvError::ValueTooLarge {
                len: value.len(),
                limit: self.limits.max_value,
            });
        }
        Ok(())
    }

    fn batch(&self, len: usize) -> Result<(), KvError> {
        if len > self.limits.max_batch {
            return Err(KvError::BatchTooLarge {
                len,
                limit: self.limits.max_batch,
            });
        }
        Ok(())
    }

    fn keys(&self, keys: &[String]) -> Result<(), KvError> {
        self.batch(keys.len())?;
        keys.iter().try_for_each(|k| self.key(k))
    }
}

#[async_trait::async_trait]
impl<B: Bucket> Bucket for Limited<B> {
    fn label(&self) -> &str {
        self.inner.label()
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.key(key)?;
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.key(key)?;
        self.value(value)?;
        self.inner.set(key, value).await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.key(key)?;
        self.inner.delete(key).await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.key(key)?;
        self.inner.exists(key).await
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        self.inner.list_keys(cursor).await
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        self.key(key)?;
        self.inner.increment(key, delta).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        self.keys(keys)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.get_many(keys).await
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.batch(entries.len())?;
        for (key, value) in entries {
            self.key(key)?;
            self.value(value)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        self.inner.set_many(entries).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        self.keys(keys)?;
        if keys.is_empty() {
            return Ok(());
        }
        self.inner.delete_many(keys).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[crate::Change],
    ) -> Result<bool, KvError> {
        self.key(key)?;
        self.value(value)?;
        self.batch(also.len() + 1)?;
        for (k, v) in also {
            self.key(k)?;
            if let Some(v) = v {
                self.value(v)?;
            }
        }
        self.inner.compare_and_set(key, expected, value, also).await
    }
}

/// A shared bucket is a bucket: so a view kept by its owner (a held state)
/// can be checked by [`Limited`] too.
#[async_trait::async_trait]
impl<B: Bucket + ?Sized> Bucket for std::sync::Arc<B> {
    fn label(&self) -> &str {
        (**self).label()
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        (**self).get(key).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        (**self).set(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        (**self).delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        (**self).exists(key).await
    }
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        (**self).list_keys(cursor).await
    }
    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        (**self).increment(key, delta).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        (**self).get_many(keys).await
    }
    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        (**self).set_many(entries).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        (**self).delete_many(keys).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[crate::Change],
    ) -> Result<bool, KvError> {
        (**self).compare_and_set(key, expected, value, also).await
    }
}

/// `bucket`, with `limits` checked before each operation.
pub fn limited(bucket: std::sync::Arc<dyn Bucket>, limits: KvLimits) -> std::sync::Arc<dyn Bucket> {
    std::sync::Arc::new(Limited::new(bucket, limits))
}
