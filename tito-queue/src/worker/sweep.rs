//! The sweep: finds due events of the partitions this worker holds and hands each partition's
//! batch to a task.
//!
//! Pending events are read in a read-only snapshot (a range read in a read-write transaction
//! would conflict with every publish to the partition). The set of idle partitions is fixed
//! *before* the snapshot begins: a partition becomes idle only after its last acknowledgement
//! committed, so the snapshot never shows events already acknowledged.
//!
//! There is no high-water mark: an event that commits late, behind events already handled, is
//! still delivered. But a handled event leaves a deleted key that a read from the start of its
//! partition steps over until compaction (~200 ns each on the embedded backend), so a normal
//! sweep *looks for work* in each idle partition only from its *floor*, in a range bounded to
//! that partition. A partition with due events is then read from its first key, so its batch
//! starts at its first pending event whatever the floor: an event that committed late below the
//! floor is handled before the later events of its key (per-key order), and only that busy
//! partition's own deleted keys are stepped over. The floor:
//! - after a batch whose last event taken off was at position X, the floor rises to X minus the
//!   late window; after a read that found nothing due at sweep time T, to T minus the late
//!   window. Every pending event committed before that read and below X (or T) was in it, so an
//!   event that later shows up below the floor was committed more than the late window after
//!   its position (a slow transaction, a publisher clock behind by more than the window, or a
//!   `run_at` in the past).
//! - such an event is taken with the next batch of its partition, and, if nothing else arrives
//!   there, found by a *deep sweep*, which reads each held partition once from its first key: every `deep_sweep_interval` and after a lease is acquired. A partition stays
//!   owed its deep read until one found nothing due or was dispatched (its batch starts at the
//!   partition's first key), so no event is skipped; a late event waits at most that interval.
//!
//! Every idle partition is read each sweep (a bounded read costs a few microseconds: 1-5 ms for
//! 1024 partitions on the embedded backend, whatever the number of handled events), so a new
//! event in a quiet partition waits only for the next sweep; a sweep ends early once all
//! permits are taken. Reading only recently active partitions between poll intervals was
//! measured too: it made handling latency worse (quiet partitions waited for the poll). On a
//! networked backend (TiKV) each of these reads is a round trip, so an idle worker holding many
//! partitions costs that many requests per poll interval: raise the interval there.

use std::sync::Arc;

use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::lease::{micros, now_micros};
use super::partition;
use super::runtime::Runtime;

/// What a sweep reads of one idle partition.
struct Idle {
    partition: u32,
    /// Where its read starts: `None` is the partition's first key (a deep read).
    floor: Option<u64>,
    retry_due: bool,
}

/// Reads due events and dispatches partitions until they run out or all permits are taken.
/// Partitions are visited round-robin from `cursor` so that busy low partitions cannot starve
/// high ones. A partition whose read fails is skipped, and the first such error is returned
/// once the others have been read.
pub(crate) async fn sweep<B: Backend>(
    rt: &Arc<Runtime<B>>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    cursor: &mut u32,
) -> Result<(), TitoError> {
    let s = &rt.settings;
    let now = now_micros();
    let mut idle: Vec<Idle> = {
        let state = rt.state.lock();
        // A lease past its expiry stays usable until another worker takes it: the fencing
        // check of the acknowledgement decides, and a slow heartbeat does not stall the worker.
        (state.held.keys())
            .filter(|p| !state.busy.contains(p))
            .map(|&p| Idle {
                partition: p,
                floor: if state.deep.contains(&p) {
                    None
                } else {
                    state.floors.get(&p).copied()
                },
                retry_due: (state.parked.get(&p))
                    .is_none_or(|parked| parked.values().any(|&due| due <= now)),
            })
            .collect()
    };
    if idle.is_empty() || permits.available_permits() == 0 {
        return Ok(());
    }
    idle.sort_unstable_by_key(|i| (i.partition < *cursor, i.partition));
    let floor_if_empty = now.saturating_sub(micros(s.late_window));
    let snapshot = rt.engine.snapshot().await?;
    let mut failed = None;
    for Idle {
        partition: p,
        floor,
        retry_due,
    } in idle
    {
        let range = match floor {
            Some(floor) => keys::pending_due_range_from(&s.event_type, &s.group, p, floor, now),
            None => keys::pending_due_range(&s.event_type, &s.group, p, now),
        };
        let mut rows = match snapshot.scan(range, s.batch_size).await {
            Ok(rows) => rows,
            Err(e) => {
                skip_failed(cursor, p, e, &mut failed);
                continue;
            }
        };
        if rows.is_empty() {
            let mut state = rt.state.lock();
            state.deep.remove(&p);
            state.raise_floor(p, floor_if_empty);
            if !retry_due {
                continue;
            }
        }
        if floor.is_some() {
            // The batch starts at the partition's first pending event, not at the floor: an
            // event that committed late below the floor goes before the later events of its key.
            let from_first = keys::pending_due_range(&s.event_type, &s.group, p, now);
            rows = match snapshot.scan(from_first, s.batch_size).await {
                Ok(rows) => rows,
                Err(e) => {
                    skip_failed(cursor, p, e, &mut failed);
                    continue;
                }
            };
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            *cursor = p;
            return Ok(());
        };
        let token = {
            let mut state = rt.state.lock();
            state.deep.remove(&p);
            state.busy.insert(p);
            state.held.get(&p).map(|h| h.token)
        };
        let Some(token) = token else {
            rt.state.lock().busy.remove(&p);
            continue;
        };
        *cursor = p + 1;
        tasks.spawn(partition::process(rt.clone(), p, token, rows, permit));
    }
    failed.map_or(Ok(()), Err)
}

/// Moves the sweep past partition `p`, whose read failed, keeping the first error: one
/// unreadable partition must not stop the partitions after it from being read.
fn skip_failed(cursor: &mut u32, p: u32, error: TitoError, failed: &mut Option<TitoError>) {
    *cursor = p + 1;
    failed.get_or_insert(error);
}
