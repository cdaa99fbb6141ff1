//! Reading the state of a consumer group: lag, checkpoints and dead letters, and replaying dead
//! letters.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tito_core::backend::{KeyRange, key_after};
use tito_core::event::{self, PendingTimes, micros_since_epoch};
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, RetryPolicy, TitoError, TitoTransaction};

use crate::queue::{PAGE, TitoQueue};
use crate::stored::{Checkpoint, DeadLetter};

/// Dead letters replayed per transaction by [`TitoQueue::replay_dead_letters`].
const REPLAY_BATCH: usize = 64;

/// How far behind a consumer group is on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionLag {
    /// The partition.
    pub partition: u32,
    /// Events waiting to be handled, scheduled ones included.
    pub pending: u64,
    /// Events of parked keys, in the retry area.
    pub retrying: u64,
    /// How long the oldest due pending event has been due.
    pub oldest_age: Duration,
}

/// Visits every pair of `range` in a snapshot, page by page.
async fn for_each<B: Backend>(
    tx: &TitoTransaction<B>,
    range: KeyRange,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), TitoError>,
) -> Result<(), TitoError> {
    let mut range = range;
    loop {
        let rows = tx.scan(range.clone(), PAGE).await?;
        for (key, value) in &rows {
            visit(key, value)?;
        }
        match rows.last() {
            Some((last, _)) if rows.len() == PAGE => range.start = key_after(last),
            _ => return Ok(()),
        }
    }
}

impl<B: Backend> TitoQueue<B> {
    /// Per partition with work left: pending and retrying counts and the age of the oldest due
    /// event. Reads every waiting event's key: cost grows with the backlog.
    pub async fn lag(&self, event_type: &str, group: &str) -> Result<Vec<PartitionLag>, TitoError> {
        let now = micros_since_epoch(SystemTime::now());
        let tx = self.engine.snapshot().await?;
        let mut lag: BTreeMap<u32, PartitionLag> = BTreeMap::new();
        let pending = keys::group_prefix(event_type, group, "pending");
        for_each(&tx, KeyRange::prefix(&pending), |key, value| {
            let (partition, _, position) =
                keys::pending_key_parts(key, pending.len()).ok_or_else(|| bad_key(key))?;
            // Due since it was written, or since the time it was scheduled for.
            let times = PendingTimes::of(value, position);
            let since = times.created_at.max(times.due);
            let entry = lag.entry(partition).or_insert(PartitionLag {
                partition,
                ..PartitionLag::default()
            });
            entry.pending += 1;
            let age = Duration::from_micros(now.saturating_sub(since));
            entry.oldest_age = entry.oldest_age.max(age);
            Ok(())
        })
        .await?;
        let retry = keys::group_prefix(event_type, group, "retry");
        for_each(&tx, KeyRange::prefix(&retry), |key, _| {
            let partition = keys::partition_in_key(key, retry.len()).ok_or_else(|| bad_key(key))?;
            lag.entry(partition)
                .or_insert(PartitionLag {
                    partition,
                    ..PartitionLag::default()
                })
                .retrying += 1;
            Ok(())
        })
        .await?;
        Ok(lag.into_values().collect())
    }

    /// Measures the lag of `group` on `event_type` (as [`lag`](Self::lag) does) and sets the
    /// gauges `tito_queue_pending_events`, `tito_queue_retrying_events` and
    /// `tito_queue_oldest_pending_age_seconds` (labels `event_type`, `group`) through the
    /// `metrics` facade; returns the lag. It reads every pending event of the group, so call it
    /// on a schedule of your choosing (before a scrape, every few seconds), not per request.
    pub async fn record_lag(
        &self,
        event_type: &str,
        group: &str,
    ) -> Result<Vec<PartitionLag>, TitoError> {
        let lag = self.lag(event_type, group).await?;
        let labels = [
            ("event_type", event_type.to_string()),
            ("group", group.to_string()),
        ];
        let pending: u64 = lag.iter().map(|l| l.pending).sum();
        let retrying: u64 = lag.iter().map(|l| l.retrying).sum();
        let oldest = lag.iter().map(|l| l.oldest_age).max().unwrap_or_default();
        metrics::gauge!("tito_queue_pending_events", &labels).set(pending as f64);
        metrics::gauge!("tito_queue_retrying_events", &labels).set(retrying as f64);
        metrics::gauge!("tito_queue_oldest_pending_age_seconds", &labels).set(oldest.as_secs_f64());
        Ok(lag)
    }

    /// The checkpoints of a consumer group, one per partition that ever handled an event.
    pub async fn checkpoints(
        &self,
        event_type: &str,
        group: &str,
    ) -> Result<Vec<Checkpoint>, TitoError> {
        let tx = self.engine.snapshot().await?;
        let mut out = Vec::new();
        let range = KeyRange::prefix(&keys::group_prefix(event_type, group, "checkpoint"));
        for_each(&tx, range, |key, value| {
            out.push(Checkpoint::decode(key, value)?);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Up to `limit` dead letters of a consumer group, by partition then position.
    pub async fn dead_letters(
        &self,
        event_type: &str,
        group: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, TitoError> {
        let tx = self.engine.snapshot().await?;
        let range = KeyRange::prefix(&keys::group_prefix(event_type, group, "dead"));
        tx.scan(range, limit)
            .await?
            .iter()
            .map(|(key, value)| DeadLetter::decode(key, value))
            .collect()
    }

    /// Up to `limit` undecodable entries a worker of the group set aside, as (original key,
    /// stored bytes), so nothing is lost and nothing blocks its partition.
    pub async fn corrupt_entries(
        &self,
        event_type: &str,
        group: &str,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, TitoError> {
        let tx = self.engine.snapshot().await?;
        let prefix = keys::group_prefix(event_type, group, "corrupt");
        tx.scan(KeyRange::prefix(&prefix), limit)
            .await?
            .into_iter()
            .map(|(key, value)| {
                let source =
                    keys::corrupt_source(&key, prefix.len()).ok_or_else(|| bad_key(&key))?;
                Ok((source, value))
            })
            .collect()
    }

    /// Puts a dead letter back in its group's queue, after the latest event of its partition
    /// key, with fresh attempts. Returns `false` if it was already replayed or removed.
    pub async fn replay_dead_letter(&self, dead: &DeadLetter) -> Result<bool, TitoError> {
        self.engine
            .transaction_with_retry(RetryPolicy::default(), |tx| async move {
                replay(&tx, dead).await
            })
            .await
    }

    /// Replays every dead letter of a consumer group; returns how many.
    pub async fn replay_dead_letters(
        &self,
        event_type: &str,
        group: &str,
    ) -> Result<usize, TitoError> {
        self.replay_dead_letters_with(event_type, group, |_| {})
            .await
    }

    /// [`replay_dead_letters`](Self::replay_dead_letters), calling `progress` with the number
    /// replayed so far after each transaction.
    pub async fn replay_dead_letters_with(
        &self,
        event_type: &str,
        group: &str,
        mut progress: impl FnMut(usize),
    ) -> Result<usize, TitoError> {
        let mut total = 0;
        loop {
            let page = self.dead_letters(event_type, group, PAGE).await?;
            // A few per transaction: each replay writes its key's mark, which publishers of the
            // key write too, and a conflict reruns the whole transaction.
            for chunk in page.chunks(REPLAY_BATCH) {
                total += self
                    .engine
                    .transaction_with_retry(RetryPolicy::default(), |tx| async move {
                        let mut replayed = 0;
                        for dead in chunk {
                            replayed += usize::from(replay(&tx, dead).await?);
                        }
                        Ok::<_, TitoError>(replayed)
                    })
                    .await?;
                progress(total);
            }
            if page.len() < PAGE {
                return Ok(total);
            }
        }
    }
}

async fn replay<B: Backend>(tx: &TitoTransaction<B>, dead: &DeadLetter) -> Result<bool, TitoError> {
    let mut event = dead.event.clone();
    let key = keys::dead_key(
        &event.event_type,
        &dead.group,
        event.partition,
        event.run_at,
        &event.id,
    );
    if tx.get(&key).await?.is_none() {
        return Ok(false);
    }
    tx.delete(key).await?;
    let now = micros_since_epoch(SystemTime::now());
    event.replayed_at = Some(now);
    event.run_at = event::claim_position(
        tx,
        &event.event_type,
        &dead.group,
        &event.partition_key,
        now,
    )
    .await?;
    // Due at once: a replay is asked for now.
    event::enqueue_for(tx, &dead.group, &event, 0).await?;
    Ok(true)
}

fn bad_key(key: &[u8]) -> TitoError {
    TitoError::Decode {
        key: tito_core::keyspace::display_key(key),
        reason: "not a queue key".into(),
    }
}
