//! Keeping ready marks small and accurate: removing those of keys left without pending events,
//! and advancing where the others say reads begin when a partition is handed over.
//!
//! A mark goes only if it still holds the latest position the sweep saw, in a transaction that
//! reads it: a publish committing meanwhile rewrites the mark and makes the removal conflict,
//! so a key with pending events always keeps its mark. Marks are changed in small
//! transactions, so that such a conflict keeps only a few of them for a later sweep to offer
//! again.

use std::time::Duration;

use tito_core::event::ReadyMark;
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError};
use tracing::debug;

use super::Settings;
use super::lease::micros;
use super::runtime::Runtime;
use super::state::KeyProgress;
use crate::stored::PartitionLease;

/// Most ready marks changed in one transaction.
const CHUNK: usize = 256;

/// How long a key stays marked after its last event was taken off. Removing a mark costs a
/// commit, and the key's next event then takes a position that may be below the ones already
/// handled (positions are ordered among a marked key's events only), so the worker forgets the
/// key's progress and reads it from its new mark's start; keeping the marks of recently busy
/// keys avoids both.
const MARK_IDLE: Duration = Duration::from_secs(10);

/// A ready mark with nothing pending up to its latest position.
#[derive(Debug, Clone)]
pub(crate) struct Stale {
    /// The mark's key.
    pub key: Vec<u8>,
    /// The mark as read.
    pub mark: ReadyMark,
    pub partition: u32,
    pub partition_key: String,
}

impl Stale {
    /// The mark of `partition_key`, everything up to which was taken off, if its key has been
    /// idle for [`MARK_IDLE`] at `now` (micros).
    pub fn if_idle(
        s: &Settings,
        now: u64,
        partition: u32,
        partition_key: &str,
        mark: ReadyMark,
    ) -> Option<Stale> {
        (mark.latest <= now.saturating_sub(micros(MARK_IDLE))).then(|| Stale {
            key: keys::ready_key(&s.event_type, &s.group, partition, partition_key),
            mark,
            partition,
            partition_key: partition_key.to_string(),
        })
    }
}

/// Removes each of `stale` that still holds its latest position. Once a mark goes, the key's
/// next event may take a position below the ones handled (positions are ordered among a key's
/// pending events only): the keys' progress is forgotten before, and given back to those whose
/// mark stays.
pub(crate) async fn retire<B: Backend>(rt: &Runtime<B>, stale: &[Stale]) {
    for chunk in stale.chunks(CHUNK) {
        {
            let mut state = rt.state.lock();
            for mark in chunk {
                state.learned(mark.partition, &mark.partition_key, None);
            }
        }
        let removed = match retire_chunk(rt, chunk).await {
            Ok(removed) => removed,
            Err(e) => {
                debug!(error = %e, "removing ready marks failed; a later sweep retries");
                vec![false; chunk.len()]
            }
        };
        let mut state = rt.state.lock();
        for (mark, removed) in chunk.iter().zip(removed) {
            if !removed {
                let progress = KeyProgress {
                    after: mark.mark.latest,
                    not_before: 0,
                };
                state.learned(mark.partition, &mark.partition_key, Some(progress));
            }
        }
    }
}

/// Removes the marks of `chunk` that still hold their latest positions, in one transaction;
/// returns which were removed.
async fn retire_chunk<B: Backend>(
    rt: &Runtime<B>,
    chunk: &[Stale],
) -> Result<Vec<bool>, TitoError> {
    let keys: Vec<Vec<u8>> = chunk.iter().map(|mark| mark.key.clone()).collect();
    let tx = rt.engine.begin().await?;
    let outcome = async {
        let mut removed = Vec::with_capacity(chunk.len());
        for (mark, found) in chunk.iter().zip(tx.batch_get(&keys).await?) {
            let unchanged = match found {
                Some(bytes) => ReadyMark::decode(&mark.key, &bytes)?.latest == mark.mark.latest,
                None => false,
            };
            if unchanged {
                tx.delete(mark.key.clone()).await?;
            }
            removed.push(unchanged);
        }
        Ok(removed)
    }
    .await;
    tx.finish(outcome).await
}

/// Before the idle `partitions` are released: moves where each mark of a key this worker
/// took events of says reads begin to just after them, so the next holder steps over none of
/// the handled events, even before the store has compacted them away. Best effort: a mark a
/// publish rewrites meanwhile keeps its old start, which is only slower to read.
pub(crate) async fn hand_over<B: Backend>(rt: &Runtime<B>, partitions: &[(u32, u64)]) {
    let s = &rt.settings;
    let mut chunk: Vec<Handover> = Vec::new();
    let mut marks = 0;
    for &(partition, token) in partitions {
        let known: Vec<(Vec<u8>, u64)> = {
            let state = rt.state.lock();
            (state.keys.get(&partition).into_iter().flatten())
                .filter(|(_, progress)| progress.after > 0)
                .map(|(pk, progress)| {
                    let key = keys::ready_key(&s.event_type, &s.group, partition, pk);
                    (key, progress.after)
                })
                .collect()
        };
        if known.is_empty() {
            continue;
        }
        marks += known.len();
        chunk.push(Handover {
            partition,
            token,
            known,
        });
        if marks >= CHUNK {
            advance(rt, &std::mem::take(&mut chunk)).await;
            marks = 0;
        }
    }
    if !chunk.is_empty() {
        advance(rt, &chunk).await;
    }
}

/// The marks of one partition to advance: (mark key, position taken off up to).
struct Handover {
    partition: u32,
    token: u64,
    known: Vec<(Vec<u8>, u64)>,
}

async fn advance<B: Backend>(rt: &Runtime<B>, chunk: &[Handover]) {
    if let Err(e) = advance_chunk(rt, chunk).await {
        debug!(error = %e, "advancing ready marks failed; the next holder reads from their start");
    }
}

/// Advances the marks of `chunk` in one transaction, for the partitions whose lease this worker
/// still holds: the lease is rewritten unchanged, so a takeover meanwhile conflicts (the new
/// holder may have seen a mark removed and set again since).
async fn advance_chunk<B: Backend>(rt: &Runtime<B>, chunk: &[Handover]) -> Result<(), TitoError> {
    let s = &rt.settings;
    let mut reads = Vec::new();
    for part in chunk {
        reads.push(keys::lease_key(&s.event_type, &s.group, part.partition));
        reads.extend(part.known.iter().map(|(key, _)| key.clone()));
    }
    let tx = rt.engine.begin().await?;
    let outcome = async {
        let mut found = tx.batch_get(&reads).await?.into_iter().zip(reads);
        for part in chunk {
            let (lease, lease_key) = found.next().unwrap_or_default();
            let lease = lease
                .map(|bytes| PartitionLease::decode(&lease_key, &bytes))
                .transpose()?;
            let marks: Vec<_> = found.by_ref().take(part.known.len()).collect();
            let Some(lease) = lease.filter(|l| l.is_held_by(&s.worker_id, part.token)) else {
                continue;
            };
            tx.put(lease_key, lease.encode()).await?;
            for ((bytes, key), (_, after)) in marks.into_iter().zip(&part.known) {
                let Some(bytes) = bytes else { continue };
                let mark = ReadyMark::decode(&key, &bytes)?;
                let first = after.saturating_add(1);
                if mark.first < first {
                    tx.put(key, ReadyMark { first, ..mark }.encode()).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    tx.finish(outcome).await
}
