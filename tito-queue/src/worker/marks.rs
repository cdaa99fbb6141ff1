//! Removing the ready marks of keys left without pending events.
//!
//! A mark goes only if it still holds the position the sweep saw, in a transaction that reads
//! it: a publish committing meanwhile rewrites the mark and makes the removal conflict, so a key
//! with pending events always keeps its mark. Marks are removed in small transactions, so that
//! such a conflict keeps only a few of them, for a later sweep to offer again.

use tito_core::event::decode_ready;
use tito_core::{Backend, TitoError};
use tracing::debug;

use super::finish;
use super::runtime::Runtime;
use super::state::KeyProgress;

/// Most ready marks removed in one transaction.
const CHUNK: usize = 256;

/// A ready mark with nothing pending up to its position.
#[derive(Debug, Clone)]
pub(crate) struct Stale {
    /// The mark's key.
    pub key: Vec<u8>,
    /// The position it held.
    pub position: u64,
    pub partition: u32,
    pub partition_key: String,
}

/// Removes each of `stale` that still holds its position. Once a mark goes, the key's next event
/// may take a position below the ones handled (positions are ordered among a key's pending
/// events only): the keys' progress is forgotten before, and given back to those whose mark
/// stays.
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
                    after: mark.position,
                    not_before: 0,
                };
                state.learned(mark.partition, &mark.partition_key, Some(progress));
            }
        }
    }
}

/// Removes the marks of `chunk` that still hold their positions, in one transaction; returns
/// which were removed.
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
                Some(bytes) => decode_ready(&mark.key, &bytes)? == mark.position,
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
    finish(&tx, outcome).await
}
