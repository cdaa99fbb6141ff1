//! Keeping the group's kept entries bounded: handled events past their retention and dead
//! letters past theirs.

use std::time::Duration;

use tito_core::backend::KeyRange;
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError};

use super::lease::micros;
use super::runtime::Runtime;

/// Most pages of retained handled events removed per heartbeat.
const DONE_PAGES: usize = 16;

/// Most dead letters removed per pass.
const DEAD_PAGE: usize = 256;

/// How often dead letters are looked at, at most.
const DEAD_EVERY: Duration = Duration::from_secs(60);

/// Removes what has outlived its retention as of `now` (micros): up to [`DONE_PAGES`] pages of
/// retained handled events per call, and, at most once per minute (or per `dead_letter_retention` if shorter),
/// the dead letters of the held partitions whose events are older than `dead_letter_retention`.
pub(crate) async fn prune<B: Backend>(rt: &Runtime<B>, now: u64) -> Result<(), TitoError> {
    let s = &rt.settings;
    // The group's retained events are one range: only the holder of the first partition of
    // the worker's range prunes it, so workers do not conflict on the same page.
    let prunes_done = rt.state.lock().held.contains_key(&s.partitions.start);
    if let Some(keep) = s.retention
        && prunes_done
    {
        let queue = crate::TitoQueue {
            engine: rt.engine.clone(),
        };
        let range =
            keys::done_before_range(&s.event_type, &s.group, now.saturating_sub(micros(keep)));
        for _ in 0..DONE_PAGES {
            if queue.delete_page(range.clone()).await? < crate::queue::PAGE {
                break;
            }
        }
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
    tx.finish(outcome).await
}
