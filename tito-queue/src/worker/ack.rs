//! Acknowledgements: the fenced transaction that records what a partition task did.
//!
//! The transaction first rewrites the partition's lease (same owner and token, later expiry).
//! Writing it, not only reading it, makes a concurrent acquisition by another worker conflict
//! on every backend: snapshot isolation (TiKV) only detects write-write conflicts. A lease that
//! changed hands fails the acknowledgement, so a worker whose lease was taken cannot
//! acknowledge. Then it applies the task's writes by exact key (deleting handled events, moving
//! failed ones to the retry area or the dead letters) and advances the checkpoint. Nothing is
//! scanned here: on the embedded backend a scanned range would conflict with every publish.

use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError, TitoEvent, TitoTransaction};

use super::lease::{micros, now_micros};
use super::runtime::Runtime;
use crate::stored::{Checkpoint, PartitionLease};

/// Why an acknowledgement did not commit.
#[derive(Debug)]
pub(crate) enum AckError {
    /// Another worker holds the partition now; nothing was written.
    LeaseLost,
    /// The store refused or failed.
    Store(TitoError),
}

impl From<TitoError> for AckError {
    fn from(e: TitoError) -> Self {
        AckError::Store(e)
    }
}

/// Writes a partition task has made but not yet acknowledged.
#[derive(Debug, Clone, Default)]
pub(crate) struct AckBatch {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    handled: u64,
    dead_lettered: u64,
    last: Option<(u64, String)>,
}

impl AckBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((key, Some(value)));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.push((key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Counts `event` as handled in the checkpoint.
    pub fn handled(&mut self, event: &TitoEvent) {
        self.handled += 1;
        self.last = Some((event.run_at, event.id.clone()));
    }

    /// Counts `event` as dead-lettered in the checkpoint.
    pub fn dead_lettered(&mut self, event: &TitoEvent) {
        self.dead_lettered += 1;
        self.last = Some((event.run_at, event.id.clone()));
    }
}

/// Acknowledges `batch` for `partition` in `tx` (which may hold a handler's writes) and commits
/// it; rolls it back on failure. Returns the lease's new expiry.
pub(crate) async fn acknowledge<B: Backend>(
    rt: &Runtime<B>,
    partition: u32,
    token: u64,
    tx: &TitoTransaction<B>,
    batch: &AckBatch,
) -> Result<u64, AckError> {
    let outcome = write(rt, partition, token, tx, batch).await;
    match outcome {
        Ok(expires_at) => {
            tx.commit().await?;
            rt.counters.acknowledged(batch.handled, batch.dead_lettered);
            Ok(expires_at)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn write<B: Backend>(
    rt: &Runtime<B>,
    partition: u32,
    token: u64,
    tx: &TitoTransaction<B>,
    batch: &AckBatch,
) -> Result<u64, AckError> {
    let s = &rt.settings;
    let lease_key = keys::lease_key(&s.event_type, &s.group, partition);
    let checkpoint_key = keys::checkpoint_key(&s.event_type, &s.group, partition);
    let found = tx
        .batch_get(&[lease_key.clone(), checkpoint_key.clone()])
        .await?;
    let mut found = found.into_iter();
    let held = match found.next().flatten() {
        Some(bytes) => PartitionLease::decode(&lease_key, &bytes)?.is_held_by(&s.worker_id, token),
        None => false,
    };
    if !held {
        return Err(AckError::LeaseLost);
    }
    let now = now_micros();
    let expires_at = now.saturating_add(micros(s.lease_ttl));
    let lease = PartitionLease {
        owner: s.worker_id.clone(),
        token,
        expires_at,
    };
    tx.put(lease_key, lease.encode()).await?;
    for (key, value) in &batch.writes {
        match value {
            Some(value) => tx.put(key.clone(), value.clone()).await?,
            None => tx.delete(key.clone()).await?,
        }
    }
    if let Some((position, id)) = &batch.last {
        let mut checkpoint = match found.next().flatten() {
            Some(bytes) => Checkpoint::decode(&checkpoint_key, &bytes)?,
            None => Checkpoint {
                partition,
                ..Checkpoint::default()
            },
        };
        checkpoint.handled += batch.handled;
        checkpoint.dead_lettered += batch.dead_lettered;
        checkpoint.last_position = *position;
        checkpoint.last_event_id.clone_from(id);
        checkpoint.updated_at = now;
        tx.put(checkpoint_key, checkpoint.encode()?).await?;
    }
    Ok(expires_at)
}
