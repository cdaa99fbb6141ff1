//! Acknowledgements: the fenced transactions that record what partition tasks did.
//!
//! An acknowledgement first rewrites each partition's lease (same owner and token, later
//! expiry). Writing it, not only reading it, makes a concurrent acquisition by another worker
//! conflict on every backend: snapshot isolation (TiKV) only detects write-write conflicts. A
//! lease that changed hands fails that partition's acknowledgement, so a worker whose lease was
//! taken cannot acknowledge. Then it applies the task's writes by exact key (deleting handled
//! events, moving failed ones to the retry area or the dead letters) and advances the
//! checkpoint. Nothing is scanned here: on the embedded backend a scanned range would conflict
//! with every publish. Nor does it read a ready mark, which publishes read and write: sweeps
//! remove the marks of keys left without pending events in transactions of their own (see
//! `marks`), whose conflicts with publishes cost nothing but a later retry.
//!
//! Partition tasks finishing together share one transaction (a group commit, see
//! [`Acks::submit`]), so a busy worker pays a few round trips per round of batches, not per
//! partition.

use std::sync::{Mutex, PoisonError};

use tito_core::keyspace::queue as keys;
use tito_core::{Backend, RetryPolicy, TitoError, TitoEvent, TitoTransaction};
use tokio::sync::oneshot;
use tracing::{Instrument, debug_span};

use super::lease::micros;
use super::runtime::Runtime;
use crate::stored::{Checkpoint, PartitionLease};

/// Acknowledgements retried on a conflict before the batch is given up (and redelivered).
pub(crate) const ACK_ATTEMPTS: u32 = 5;

/// Most partitions acknowledged in one group transaction.
const GROUP_LIMIT: usize = 256;

/// Why an acknowledgement did not commit.
#[derive(Debug, Clone)]
pub(crate) enum AckError {
    /// Another worker holds the partition now; nothing was written for it.
    LeaseLost,
    /// The store refused or failed.
    Store(TitoError),
}

impl From<TitoError> for AckError {
    fn from(e: TitoError) -> Self {
        AckError::Store(e)
    }
}

/// One write of an acknowledgement.
#[derive(Debug, Clone)]
enum Write {
    Put(Vec<u8>),
    Delete,
    /// The removal of a pending event, whose key is written once (`BackendTx::single_delete`).
    SingleDelete,
}

/// Writes a partition task has made but not yet acknowledged.
#[derive(Debug, Clone, Default)]
pub(crate) struct AckBatch {
    writes: Vec<(Vec<u8>, Write)>,
    handled: u64,
    dead_lettered: u64,
    last: Option<(u64, String)>,
}

impl AckBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((key, Write::Put(value)));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.push((key, Write::Delete));
    }

    /// Removes a pending event's key.
    pub fn delete_pending(&mut self, key: Vec<u8>) {
        self.writes.push((key, Write::SingleDelete));
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

/// One partition's acknowledgement: the lease it is fenced by and its writes.
struct Part<'a> {
    partition: u32,
    token: u64,
    batch: &'a AckBatch,
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
    let part = Part {
        partition,
        token,
        batch,
    };
    let written = match write(rt, tx, std::slice::from_ref(&part)).await {
        Ok((expires_at, held)) if held[0] => Ok(expires_at),
        Ok(_) => Err(AckError::LeaseLost),
        Err(e) => Err(e.into()),
    };
    let expires_at = tx.finish(written).await?;
    rt.counters.acknowledged(batch.handled, batch.dead_lettered);
    Ok(expires_at)
}

/// Writes `parts` in `tx`: for each, whether its lease is still held (its writes are skipped
/// otherwise), and the leases' new expiry.
async fn write<B: Backend>(
    rt: &Runtime<B>,
    tx: &TitoTransaction<B>,
    parts: &[Part<'_>],
) -> Result<(u64, Vec<bool>), TitoError> {
    let s = &rt.settings;
    let mut reads = Vec::new();
    for part in parts {
        reads.push(keys::lease_key(&s.event_type, &s.group, part.partition));
        reads.push(keys::checkpoint_key(
            &s.event_type,
            &s.group,
            part.partition,
        ));
    }
    let mut found = tx.batch_get(&reads).await?.into_iter().zip(reads);
    let now = s.now_micros();
    let expires_at = now.saturating_add(micros(s.lease_ttl));
    let mut held = Vec::with_capacity(parts.len());
    for part in parts {
        let (lease, lease_key) = found.next().unwrap_or_default();
        let (checkpoint, checkpoint_key) = found.next().unwrap_or_default();
        let is_held = match lease {
            Some(bytes) => {
                PartitionLease::decode(&lease_key, &bytes)?.is_held_by(&s.worker_id, part.token)
            }
            None => false,
        };
        held.push(is_held);
        if !is_held {
            continue;
        }
        let lease = PartitionLease {
            owner: s.worker_id.clone(),
            token: part.token,
            expires_at,
        };
        tx.put(lease_key, lease.encode()).await?;
        for (key, write) in &part.batch.writes {
            match write {
                Write::Put(value) => tx.put(key.clone(), value.clone()).await?,
                Write::Delete => tx.delete(key.clone()).await?,
                Write::SingleDelete => tx.single_delete(key.clone()).await?,
            }
        }
        if let Some((position, id)) = &part.batch.last {
            let mut checkpoint = match checkpoint {
                Some(bytes) => Checkpoint::decode(&checkpoint_key, &bytes)?,
                None => Checkpoint {
                    partition: part.partition,
                    ..Checkpoint::default()
                },
            };
            checkpoint.handled += part.batch.handled;
            checkpoint.dead_lettered += part.batch.dead_lettered;
            checkpoint.last_position = *position;
            checkpoint.last_event_id.clone_from(id);
            checkpoint.updated_at = now;
            tx.put(checkpoint_key, checkpoint.encode()?).await?;
        }
    }
    Ok((expires_at, held))
}

/// A partition task waiting for its batch to be acknowledged.
struct Request {
    partition: u32,
    token: u64,
    batch: AckBatch,
    reply: oneshot::Sender<Result<u64, AckError>>,
}

/// The group commit of a worker's acknowledgements.
#[derive(Default)]
pub(crate) struct Acks {
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    requests: Vec<Request>,
    /// Whether a task is committing; it commits what arrives meanwhile before it stops.
    leader: bool,
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Acknowledges `batch` for `partition`, together with the batches other tasks submit
    /// meanwhile. The first task to find no commit running commits for everyone, until no
    /// request is left. Returns the lease's new expiry.
    pub async fn submit<B: Backend>(
        &self,
        rt: &Runtime<B>,
        partition: u32,
        token: u64,
        batch: AckBatch,
    ) -> Result<u64, AckError> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut waiting = self.lock();
            waiting.requests.push(Request {
                partition,
                token,
                batch,
                reply,
            });
            !std::mem::replace(&mut waiting.leader, true)
        };
        if lead {
            // The leader's own request may be answered in a later group than its first.
            let mut leadership = Leadership {
                acks: self,
                armed: true,
            };
            loop {
                let group = {
                    let mut waiting = self.lock();
                    let take = waiting.requests.len().min(GROUP_LIMIT);
                    let group: Vec<Request> = waiting.requests.drain(..take).collect();
                    if group.is_empty() {
                        waiting.leader = false;
                        leadership.armed = false;
                        break;
                    }
                    group
                };
                commit_group(rt, group).await;
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(AckError::Store(TitoError::custom(
                "the acknowledgement was abandoned",
            )))
        })
    }
}

/// Hands leadership back if the leading task is cancelled (worker shutdown or abort) while
/// committing, so the next submitter leads; requests it had taken get no answer and their
/// tasks treat the batch as not acknowledged.
struct Leadership<'a> {
    acks: &'a Acks,
    armed: bool,
}

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.acks.lock().leader = false;
        }
    }
}

/// Commits one group, retrying conflicts, and answers each request.
async fn commit_group<B: Backend>(rt: &Runtime<B>, group: Vec<Request>) {
    let span = debug_span!(
        "tito.queue.ack",
        partitions = group.len(),
        events = group
            .iter()
            .map(|r| r.batch.handled + r.batch.dead_lettered)
            .sum::<u64>(),
    );
    commit_group_in(rt, group).instrument(span).await
}

async fn commit_group_in<B: Backend>(rt: &Runtime<B>, group: Vec<Request>) {
    let mut attempt = 1;
    let outcome = loop {
        let result = async {
            let tx = rt.engine.begin().await?;
            let parts: Vec<Part<'_>> = group
                .iter()
                .map(|r| Part {
                    partition: r.partition,
                    token: r.token,
                    batch: &r.batch,
                })
                .collect();
            tx.finish(write(rt, &tx, &parts).await).await
        }
        .await;
        match result {
            Err(e) if e.is_retryable() && attempt < ACK_ATTEMPTS => {
                tokio::time::sleep(RetryPolicy::default().delay(attempt)).await;
                attempt += 1;
            }
            other => break other,
        }
    };
    match outcome {
        Ok((expires_at, held)) => {
            let (mut handled, mut dead) = (0, 0);
            for (request, held) in group.into_iter().zip(held) {
                let answer = if held {
                    handled += request.batch.handled;
                    dead += request.batch.dead_lettered;
                    Ok(expires_at)
                } else {
                    Err(AckError::LeaseLost)
                };
                let _ = request.reply.send(answer);
            }
            rt.counters.acknowledged(handled, dead);
        }
        Err(e) => {
            for request in group {
                let _ = request.reply.send(Err(AckError::Store(e.clone())));
            }
        }
    }
}
