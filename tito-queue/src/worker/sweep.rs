//! The sweep: finds due events of the partitions this worker holds and hands each partition's
//! batch to a task.
//!
//! Pending events are read in a read-only snapshot (a range read in a read-write transaction
//! would conflict with every publish to the partition). The set of idle partitions is fixed
//! *before* the snapshot begins: a partition becomes idle only after its last acknowledgement
//! committed, so the snapshot never shows events already acknowledged. Nothing here remembers a
//! high-water mark: every sweep reads each partition from its first pending key, so an event
//! that commits late, behind events already handled, is found by the next sweep.

use std::collections::BTreeSet;
use std::sync::Arc;

use tito_core::backend::KvPair;
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::lease::now_micros;
use super::partition;
use super::runtime::Runtime;

/// Reads due events and dispatches partitions until they run out or all permits are taken.
/// Partitions are visited round-robin from `cursor` so that busy low partitions cannot starve
/// high ones.
pub(crate) async fn sweep<B: Backend>(
    rt: &Arc<Runtime<B>>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    cursor: &mut u32,
) -> Result<(), TitoError> {
    let s = &rt.settings;
    let now = now_micros();
    let (idle, retry_due) = {
        let state = rt.state.lock();
        // A lease past its expiry stays usable until another worker takes it: the fencing
        // check of the acknowledgement decides, and a slow heartbeat does not stall the worker.
        let idle: BTreeSet<u32> = state
            .held
            .keys()
            .filter(|p| !state.busy.contains(p))
            .copied()
            .collect();
        let retry_due: BTreeSet<u32> = idle
            .iter()
            .copied()
            .filter(|p| {
                state
                    .parked
                    .get(p)
                    .is_none_or(|parked| parked.values().any(|&due| due <= now))
            })
            .collect();
        (idle, retry_due)
    };
    if idle.is_empty() || permits.available_permits() == 0 {
        return Ok(());
    }
    let snapshot = rt.engine.snapshot().await?;
    let prefix_len = keys::group_prefix(&s.event_type, &s.group, "pending").len();
    let (start, end) = (
        s.partitions.start,
        s.partitions.end.min(tito_core::event::PARTITIONS),
    );
    let from = (*cursor).clamp(start, end);
    let mut dispatch = |p: u32, rows: Vec<KvPair>| -> bool {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            *cursor = p;
            return false;
        };
        let token = {
            let mut state = rt.state.lock();
            state.busy.insert(p);
            state.held.get(&p).map(|h| h.token)
        };
        let Some(token) = token else {
            rt.state.lock().busy.remove(&p);
            return true;
        };
        *cursor = if p + 1 >= end { start } else { p + 1 };
        tasks.spawn(partition::process(rt.clone(), p, token, rows, permit));
        true
    };
    for (segment_start, segment_end) in [(from, end), (start, from)] {
        let mut next = segment_start;
        while next < segment_end {
            let range = keys::pending_partitions_range(&s.event_type, &s.group, next, segment_end);
            let first = snapshot.scan(range, 1).await?;
            let found = match first.first() {
                Some((key, _)) => keys::partition_in_key(key, prefix_len).ok_or_else(|| {
                    TitoError::Backend("a pending key without a partition".into())
                })?,
                None => segment_end,
            };
            // Partitions with due retries but nothing pending before the next pending one.
            for &p in retry_due.range(next..found) {
                if !dispatch(p, Vec::new()) {
                    return Ok(());
                }
            }
            if found >= segment_end {
                break;
            }
            if idle.contains(&found) {
                let due = keys::pending_due_range(&s.event_type, &s.group, found, now);
                let rows = snapshot.scan(due, s.batch_size).await?;
                if (!rows.is_empty() || retry_due.contains(&found)) && !dispatch(found, rows) {
                    return Ok(());
                }
            }
            next = found + 1;
        }
    }
    Ok(())
}
