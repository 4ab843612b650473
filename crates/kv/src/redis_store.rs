//! The Redis backend: keys stored as `{prefix}{key}` as plain strings, on a
//! [`ConnectionManager`] that connects lazily and reconnects after a failure.
//!
//! Availability: a connection is made on first use. While the server is
//! down an operation fails with [`KvError::Unavailable`], typically within
//! 0.6 s when the connection is refused and never later than [`DEADLINE`];
//! each failure starts the next reconnection (up to 1 + [`RETRIES`]
//! attempts with exponential backoff: 50 ms, then 100 ms, each plus up to
//! 100 % jitter; each attempt bounded by [`CONNECT_TIMEOUT`], each command
//! by [`RESPONSE_TIMEOUT`]), so the store recovers on its own once the
//! server is back, without reopening.
//!
//! An operation that fails because the connection was refused or dropped
//! is retried once on a fresh connection if it is idempotent (all but
//! `increment`, which is retried only when refused, that is when it cannot
//! have reached the server); so the first operation after a restart of the
//! server normally succeeds.

use crate::{Bucket, KeyPage, KvError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, ServerErrorKind};
use std::io;
use std::time::Duration;

/// Reconnection attempts after the first, with exponential backoff.
const RETRIES: usize = 2;
/// One TCP (and handshake) connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// One command's reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// A whole operation, including reconnecting and one retry.
const DEADLINE: Duration = Duration::from_secs(2);
/// `SCAN … COUNT`.
const SCAN_COUNT: usize = 1000;

/// Whether a failed command may be sent again.
#[derive(Clone, Copy)]
enum Retry {
    /// Sending twice is harmless: retry when the connection was refused or dropped.
    Idempotent,
    /// Retry only when the command cannot have reached the server.
    IfNotSent,
}

impl Retry {
    fn allows(self, e: &RedisError) -> bool {
        match self {
            Retry::Idempotent => e.is_connection_refusal() || e.is_connection_dropped(),
            Retry::IfNotSent => e.is_connection_refusal(),
        }
    }
}

/// One Redis store.
pub(crate) struct RedisBucket {
    label: String,
    prefix: String,
    /// The URL without credentials or query, for messages.
    shown_url: String,
    conn: ConnectionManager,
}

impl RedisBucket {
    /// Parses `url` and prepares a lazy connection; nothing is sent yet.
    pub(crate) fn open(label: &str, url: &str, prefix: &str) -> Result<Self, KvError> {
        let shown_url = redact(url);
        let invalid = |e: RedisError| KvError::Backend {
            store: label.to_owned(),
            message: format!("invalid redis url `{shown_url}`: {e}"),
        };
        let client = redis::Client::open(url).map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(RETRIES)
            .set_min_delay(Duration::from_millis(50))
            .set_exponent_base(2.0)
            .set_max_delay(Duration::from_secs(1))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?;
        tracing::debug!(store = label, url = %shown_url, "redis store configured");
        Ok(RedisBucket {
            label: label.to_owned(),
            prefix: prefix.to_owned(),
            shown_url,
            conn,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Sends `cmd`, retrying once if `retry` allows, within [`DEADLINE`].
    async fn exchange<T: FromRedisValue>(&self, cmd: &Cmd, retry: Retry) -> redis::RedisResult<T> {
        let attempt = async {
            match cmd.query_async(&mut self.conn.clone()).await {
                Err(e) if retry.allows(&e) => {
                    tracing::debug!(store = %self.label, error = %e, "redis: retrying on a new connection");
                    cmd.query_async(&mut self.conn.clone()).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(DEADLINE, attempt).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no reply within {DEADLINE:?}"),
            )
            .into()),
        }
    }

    /// Maps a Redis failure: unreachable server → `Unavailable`, else `Backend`.
    fn fail(&self, e: RedisError) -> KvError {
        let transient = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || matches!(
                e.kind(),
                ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ClusterDown
                )
            );
        if transient {
            KvError::Unavailable {
                store: self.label.clone(),
                message: format!("redis at {}: {e}", self.shown_url),
            }
        } else {
            KvError::Backend {
                store: self.label.clone(),
                message: format!("redis at {}: {e}", self.shown_url),
            }
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd, retry: Retry) -> Result<T, KvError> {
        self.exchange(cmd, retry).await.map_err(|e| self.fail(e))
    }
}

#[async_trait::async_trait]
impl Bucket for RedisBucket {
    fn label(&self) -> &str {
        &self.label
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let cmd = redis::cmd("GET").arg(self.key(key)).to_owned();
        self.query(&cmd, Retry::Idempotent).await
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let cmd = redis::cmd("SET").arg(self.key(key)).arg(value).to_owned();
        self.query(&cmd, Retry::Idempotent).await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let cmd = redis::cmd("DEL").arg(self.key(key)).to_owned();
        self.query::<u64>(&cmd, Retry::Idempotent).await.map(drop)
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        let cmd = redis::cmd("EXISTS").arg(self.key(key)).to_owned();
        Ok(self.query::<u64>(&cmd, Retry::Idempotent).await? > 0)
    }

    /// The cursor is Redis's `SCAN` cursor.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, KvError> {
        let cmd = redis::cmd("SCAN")
            .arg(cursor.unwrap_or(0))
            .arg("MATCH")
            .arg(format!("{}*", escape_glob(&self.prefix)))
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .to_owned();
        let (next, raw): (u64, Vec<Vec<u8>>) = self.query(&cmd, Retry::Idempotent).await?;
        let keys = raw
            .into_iter()
            .filter_map(|k| {
                let key = k.strip_prefix(self.prefix.as_bytes())?;
                let key = String::from_utf8(key.to_vec()).ok();
                if key.is_none() {
                    tracing::debug!(store = %self.label, "redis: skipping a key that is not UTF-8");
                }
                key
            })
            .collect();
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        let overflow = || KvError::Overflow {
            key: key.to_owned(),
        };
        let delta = i64::try_from(delta).map_err(|_| overflow())?;
        let cmd = redis::cmd("INCRBY")
            .arg(self.key(key))
            .arg(delta)
            .to_owned();
        match self.exchange::<i64>(&cmd, Retry::IfNotSent).await {
            Ok(sum) => u64::try_from(sum).map_err(|_| overflow()),
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError) => {
                let detail = e.detail().unwrap_or_default();
                if detail.contains("not an integer") {
                    Err(KvError::NotANumber {
                        key: key.to_owned(),
                    })
                } else if detail.contains("overflow") {
                    Err(overflow())
                } else {
                    Err(self.fail(e))
                }
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        let values: Vec<Option<Vec<u8>>> = self.query(&cmd, Retry::Idempotent).await?;
        Ok(keys
            .iter()
            .zip(values)
            .map(|(k, v)| v.map(|v| (k.clone(), v)))
            .collect())
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let mut cmd = redis::cmd("MSET");
        for (key, value) in entries {
            cmd.arg(self.key(key)).arg(value.as_slice());
        }
        self.query(&cmd, Retry::Idempotent).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        let mut cmd = redis::cmd("DEL");
        for key in keys {
            cmd.arg(self.key(key));
        }
        self.query::<u64>(&cmd, Retry::Idempotent).await.map(drop)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        also: &[crate::Change],
    ) -> Result<bool, KvError> {
        // One script: Redis runs it alone, so the comparison and the
        // writes are one step. A missing key reads as `false`.
        // KEYS: the key, then the ones to set (ARGV[4] of them, values
        // from ARGV[5]), then the ones to remove.
        const SCRIPT: &str = "local cur = redis.call('GET', KEYS[1]) \
            if ARGV[1] == '0' then if cur then return 0 end \
            elseif cur ~= ARGV[2] then return 0 end \
            local n = tonumber(ARGV[4]) \
            for i = 1, n do redis.call('SET', KEYS[i + 1], ARGV[i + 4]) end \
            for i = n + 2, #KEYS do redis.call('DEL', KEYS[i]) end \
            redis.call('SET', KEYS[1], ARGV[3]) return 1";
        let (sets, dels) = crate::last_changes(also);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT)
            .arg(1 + sets.len() + dels.len())
            .arg(self.key(key));
        for k in sets.iter().map(|(k, _)| k).chain(&dels) {
            cmd.arg(self.key(k));
        }
        cmd.arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(value)
            .arg(sets.len());
        for (_, v) in &sets {
            cmd.arg(v.as_slice());
        }
        self.query::<i64>(&cmd, Retry::IfNotSent)
            .await
            .map(|done| done == 1)
    }
}

/// Escapes the characters that are special in a `SCAN MATCH` pattern.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `url` without user, password or query (which may carry a password).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable url>".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::{escape_glob, redact};

    #[test]
    fn glob_characters_in_prefixes_are_escaped() {
        assert_eq!(escape_glob("weft:a*b?[c]\\:"), "weft:a\\*b\\?\\[c\\]\\\\:");
        assert_eq!(escape_glob("weft:plain:"), "weft:plain:");
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact("redis://user:s3cret@db.local:6380/2"),
            "redis://db.local:6380/2"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("unix:///run/redis.sock?pass=s3cret"),
            "unix:///run/redis.sock"
        );
        assert_eq!(redact("not a url"), "<unparsable url>");
    }
}
