//! Keeping the group's kept entries bounded: handled events past their retention and dead
//! letters past theirs.

use std::time::Duration;

use tito_core::backend::KeyRange;
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError};

use super::finish;
use super::lease::micros;
use super::runtime::Runtime;

/// Most dead letters removed per pass.
const DEAD_PAGE: usize = 256;

/// How often dead letters are looked at, at most.
const DEAD_EVERY: Duration = Duration::from_secs(60);

/// Removes what has outlived its retention as of `now` (micros): a page of retained handled
/// events per call, and, at most once per minute (or per `dead_letter_retention` if shorter),
/// the dead letters of the held partitions whose events are older than `dead_letter_retention`.
pub(crate) async fn prune<B: Backend>(rt: &Runtime<B>, now: u64) -> Result<(), TitoError> {
    let s = &rt.settings;
    if let Some(keep) = s.retention {
        let queue = crate::TitoQueue {
            engine: rt.engine.clone(),
        };
        let before = now.saturating_sub(micros(keep));
        queue
            .delete_page(keys::done_before_range(&s.event_type, &s.group, before))
            .await?;
    }
    let keep = s.dead_letter_retention;
    if !rt.state.lock().prune_dead_due(keep.min(DEAD_EVERY)) {
        return Ok(());
    }
    let before = now.saturating_sub(micros(keep));
    if before == 0 {
        return Ok(());
    }
    prune_dead(rt, before).await
}

/// Removes up to a page of the dead letters of the held partitions with positions before
/// `before`. Only the lease holder removes a partition's dead letters; a replay racing a
/// removal conflicts and is retried, so a dead letter is replayed or removed, not both.
async fn prune_dead<B: Backend>(rt: &Runtime<B>, before: u64) -> Result<(), TitoError> {
    let s = &rt.settings;
    let held: Vec<u32> = {
        let state = rt.state.lock();
        let mut held: Vec<u32> = state.held.keys().copied().collect();
        held.sort_unstable();
        held
    };
    if held.is_empty() {
        return Ok(());
    }
    let ranges: Vec<KeyRange> = (held.iter())
        .map(|&p| keys::dead_before_range(&s.event_type, &s.group, p, before))
        .collect();
    let found = {
        let snapshot = rt.engine.snapshot().await?;
        snapshot.scan_many(&ranges, DEAD_PAGE).await?
    };
    let expired: Vec<Vec<u8>> = (found.into_iter().flatten())
        .map(|(key, _)| key)
        .take(DEAD_PAGE)
        .collect();
    if expired.is_empty() {
        return Ok(());
    }
    let tx = rt.engine.begin().await?;
    let outcome = async {
        // Read in the transaction, so a replay committing meanwhile makes this one conflict.
        for (key, found) in expired.iter().zip(tx.batch_get(&expired).await?) {
            if found.is_some() {
                tx.delete(key.clone()).await?;
            }
        }
        Ok::<_, TitoError>(())
    }
    .await;
    finish(&tx, outcome).await
}
