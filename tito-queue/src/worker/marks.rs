//! Removing the ready marks of keys left without pending events.
//!
//! A mark goes, with its key's latest position, only if that position is still the one the
//! worker handled up to, in a transaction that reads it: a publish committing meanwhile writes
//! the position and makes the removal conflict, so a key with pending events always keeps its
//! mark. Marks are removed in small transactions, so that such a conflict keeps only a few of
//! them, for a later sweep to offer again.

use tito_core::event::decode_ready;
use tito_core::{Backend, TitoError};
use tracing::debug;

use super::runtime::Runtime;
use super::state::KeyProgress;

/// Most ready marks removed in one transaction.
const CHUNK: usize = 256;

/// The ready mark of a key with nothing pending up to its latest position.
#[derive(Debug, Clone)]
pub(crate) struct Stale {
    /// The mark's key.
    pub mark: Vec<u8>,
    /// The key of the partition key's latest position.
    pub last: Vec<u8>,
    /// The latest position the worker saw (and handled up to); `None` if there was none.
    pub position: Option<u64>,
    pub partition: u32,
    pub partition_key: String,
}

/// Removes each of `stale` whose latest position is unchanged. Once a mark goes, the key's next
/// event may take a position below the ones handled (positions are ordered among a key's
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
            if let (false, Some(after)) = (removed, mark.position) {
                let progress = KeyProgress {
                    after,
                    not_before: 0,
                };
                state.learned(mark.partition, &mark.partition_key, Some(progress));
            }
        }
    }
}

/// Removes the marks of `chunk` whose latest position is unchanged, in one transaction; returns
/// which were removed.
async fn retire_chunk<B: Backend>(
    rt: &Runtime<B>,
    chunk: &[Stale],
) -> Result<Vec<bool>, TitoError> {
    let keys: Vec<Vec<u8>> = chunk.iter().map(|mark| mark.last.clone()).collect();
    let tx = rt.engine.begin().await?;
    let outcome = async {
        let mut removed = Vec::with_capacity(chunk.len());
        for (mark, found) in chunk.iter().zip(tx.batch_get(&keys).await?) {
            let latest = found
                .map(|bytes| decode_ready(&mark.last, &bytes))
                .transpose()?;
            let unchanged = latest == mark.position;
            if unchanged {
                tx.delete(mark.mark.clone()).await?;
                tx.delete(mark.last.clone()).await?;
            }
            removed.push(unchanged);
        }
        Ok(removed)
    }
    .await;
    match outcome {
        Ok(removed) => tx.commit().await.map(|()| removed),
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}
