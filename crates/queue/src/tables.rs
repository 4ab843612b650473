//! The redb tables (see the crate docs for the layout) and the stored form
//! of a record.

use crate::{Failure, QueueError, Record, Result, RetryPolicy, State};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
pub(crate) const PAYLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("payloads");
pub(crate) const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("results");
pub(crate) const READY: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("ready");
pub(crate) const RUNNING: TableDefinition<&str, &str> = TableDefinition::new("running");
pub(crate) const DEAD: TableDefinition<(&str, &str), ()> = TableDefinition::new("dead");
pub(crate) const FINISHED: TableDefinition<(u64, &str), ()> = TableDefinition::new("finished");
pub(crate) const IDEMPOTENCY: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("idempotency");

/// A record as stored: the public [`Record`] minus the result, plus the
/// retry policy.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) id: String,
    pub(crate) function: String,
    pub(crate) state: State,
    pub(crate) trigger: String,
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff_ms: u64,
    pub(crate) max_backoff_ms: u64,
    pub(crate) created_at_ms: u64,
    pub(crate) updated_at_ms: u64,
    /// Set while queued.
    pub(crate) due_ms: Option<u64>,
    pub(crate) last_error: Option<Failure>,
    pub(crate) payload_size: u64,
}

impl Stored {
    pub(crate) fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
        }
    }

    pub(crate) fn into_record(self, result: Option<Vec<u8>>) -> Record {
        Record {
            next_attempt_at_ms: if self.state == State::Queued {
                self.due_ms
            } else {
                None
            },
            id: self.id,
            function: self.function,
            state: self.state,
            trigger: self.trigger,
            meta: self.meta,
            idempotency_key: self.idempotency_key,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            last_error: self.last_error,
            result,
            payload_size: self.payload_size,
        }
    }
}

pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<Stored> {
    serde_json::from_slice(bytes)
        .map_err(|e| QueueError::Storage(format!("corrupt record `{id}`: {e}")))
}

fn encode(rec: &Stored) -> Result<Vec<u8>> {
    serde_json::to_vec(rec)
        .map_err(|e| QueueError::Storage(format!("cannot encode record `{}`: {e}", rec.id)))
}

/// Every table, open in one write transaction.
pub(crate) struct Tables<'tx> {
    pub(crate) records: Table<'tx, &'static str, &'static [u8]>,
    pub(crate) payloads: Table<'tx, &'static str, &'static [u8]>,
    pub(crate) results: Table<'tx, &'static str, &'static [u8]>,
    pub(crate) ready: Table<'tx, (&'static str, u64, &'static str), ()>,
    pub(crate) running: Table<'tx, &'static str, &'static str>,
    pub(crate) dead: Table<'tx, (&'static str, &'static str), ()>,
    pub(crate) finished: Table<'tx, (u64, &'static str), ()>,
    pub(crate) idempotency: Table<'tx, (&'static str, &'static str), &'static str>,
}

impl<'tx> Tables<'tx> {
    pub(crate) fn open(tx: &'tx WriteTransaction) -> Result<Tables<'tx>> {
        Ok(Tables {
            records: tx.open_table(RECORDS)?,
            payloads: tx.open_table(PAYLOADS)?,
            results: tx.open_table(RESULTS)?,
            ready: tx.open_table(READY)?,
            running: tx.open_table(RUNNING)?,
            dead: tx.open_table(DEAD)?,
            finished: tx.open_table(FINISHED)?,
            idempotency: tx.open_table(IDEMPOTENCY)?,
        })
    }

    /// The record `id`, or [`QueueError::NotFound`].
    pub(crate) fn load(&self, id: &str) -> Result<Stored> {
        match self.records.get(id)? {
            Some(v) => decode(id, v.value()),
            None => Err(QueueError::NotFound(id.to_string())),
        }
    }

    /// The record `id`, if it exists.
    pub(crate) fn try_load(&self, id: &str) -> Result<Option<Stored>> {
        match self.records.get(id)? {
            Some(v) => decode(id, v.value()).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn save(&mut self, rec: &Stored) -> Result<()> {
        self.records
            .insert(rec.id.as_str(), encode(rec)?.as_slice())?;
        Ok(())
    }

    /// Makes `rec` queued, due at `due_ms`, and saves it.
    pub(crate) fn queue(&mut self, rec: &mut Stored, due_ms: u64, now_ms: u64) -> Result<()> {
        rec.state = State::Queued;
        rec.due_ms = Some(due_ms);
        rec.updated_at_ms = now_ms;
        self.ready
            .insert((rec.function.as_str(), due_ms, rec.id.as_str()), ())?;
        self.save(rec)
    }

    /// Moves `rec` to the dead-letter list and saves it.
    pub(crate) fn bury(&mut self, rec: &mut Stored, failure: Failure, now_ms: u64) -> Result<()> {
        rec.state = State::Dead;
        rec.due_ms = None;
        rec.updated_at_ms = now_ms;
        rec.last_error = Some(failure);
        self.dead
            .insert((rec.function.as_str(), rec.id.as_str()), ())?;
        self.save(rec)
    }

    /// Deletes a record with its payload, result and idempotency entry.
    /// Index entries are the caller's business.
    pub(crate) fn delete(&mut self, rec: &Stored) -> Result<()> {
        let id = rec.id.as_str();
        self.records.remove(id)?;
        self.payloads.remove(id)?;
        self.results.remove(id)?;
        if let Some(key) = &rec.idempotency_key {
            let mine = match self
                .idempotency
                .get((rec.function.as_str(), key.as_str()))?
            {
                Some(v) => v.value() == id,
                None => false,
            };
            if mine {
                self.idempotency
                    .remove((rec.function.as_str(), key.as_str()))?;
            }
        }
        Ok(())
    }
}
