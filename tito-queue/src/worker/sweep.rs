//! The sweep: finds the due events of the partitions this worker holds and hands each
//! partition's work to a task.
//!
//! Work is found through ready marks, not by visiting partitions. The event that finds its
//! partition key with nothing pending writes the key's mark (`keys::ready_key`, holding its
//! position, below every pending event of the key), in the same transaction; a worker removes a
//! mark only in a transaction that finds the key's latest position still the one it handled up
//! to (see `marks`). So a key with pending events always has a mark, and one read of the marks
//! of all held partitions tells where the work is: a *full* sweep pays the same two round trips
//! (a snapshot and that read) whatever the number of partitions, and the marks it reads change
//! once per busy period of a key, not once per event.
//!
//! Most sweeps need not read the marks: commits through this worker's engine announce their
//! keys (`TitoEngine::published`), and keys with more events than a sweep read are noted too;
//! such *hints* are read directly. Full sweeps find what was published elsewhere: every poll
//! interval while they find such work, backing off to the idle poll interval otherwise.
//!
//! Pending events are stored per partition key, in position order, and each partition key's
//! events are read from just after the last one the worker took off (`KeyProgress`), or from its
//! mark's position: a sweep steps over no handled event, and an event that commits late, behind events of other keys
//! already handled, is found through its mark like any other. All keys are read in one
//! multi-range read, so a busy sweep also costs a fixed number of round trips.
//!
//! Everything is read in a read-only snapshot (a range read in a read-write transaction would
//! conflict with every publish), and only for partitions without a running task: a partition's
//! task ends after its acknowledgement committed, so the snapshot never shows events already
//! acknowledged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tito_core::backend::{KeyRange, KvPair};
use tito_core::event::decode_ready;
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError, TitoTransaction};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::warn;

use super::Settings;
use super::lease::now_micros;
use super::marks::{Stale, retire};
use super::partition;
use super::runtime::Runtime;
use super::state::{KeyProgress, State};

/// Most ready marks read per sweep.
const MARKS: usize = 4_096;

/// Due events and ready marks a sweep found in one partition.
#[derive(Debug, Default)]
pub(crate) struct Work {
    pub keys: Vec<KeyWork>,
}

/// The due events of one partition key.
#[derive(Debug)]
pub(crate) struct KeyWork {
    pub partition_key: String,
    /// Its due pending events, in position order.
    pub rows: Vec<KvPair>,
    /// Whether the read stopped at its limit: the key may have more due events.
    pub more: bool,
    /// Whether the read saw every pending event of the key: once `rows` are taken off, its mark
    /// can go.
    pub complete: bool,
}

/// A partition key to read.
struct Read {
    partition: u32,
    partition_key: String,
    /// The position its ready mark holds, if known: none of its pending events is below.
    mark: Option<u64>,
    /// Whether the key was hinted (its events were announced in this process).
    hinted: bool,
    progress: KeyProgress,
}

impl Read {
    /// Where the key's pending events start: after the last one taken off, or at its mark.
    fn from(&self) -> u64 {
        let after = (self.progress.after > 0).then(|| self.progress.after.saturating_add(1));
        after.max(self.mark).unwrap_or(0)
    }
}

/// What a sweep found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Found {
    /// Some work was found only through the marks: it was published elsewhere, so marks are
    /// worth reading often.
    pub unhinted: bool,
}

/// Reads due events and starts a task for each partition with work; the tasks take turns at
/// handling through `permits`. A `full` sweep reads the ready marks of all idle held partitions,
/// from `cursor` on, wrapping around, so that when there are more than a sweep reads, busy low
/// partitions cannot starve high ones; any sweep reads the hinted keys (see `State::hint`).
pub(crate) async fn sweep<B: Backend>(
    rt: &Arc<Runtime<B>>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    cursor: &mut u32,
    full: bool,
) -> Result<Found, TitoError> {
    let s = &rt.settings;
    let (start, end) = (s.partitions.start, s.partitions.end);
    let now = now_micros();
    // Fixed before the snapshot begins: a partition idle now acknowledged everything before it,
    // under the lease it still holds with the same token.
    let (idle, hinted, retry_due, full) = {
        let mut state = rt.state.lock();
        let idle: HashMap<u32, u64> = (state.held.iter())
            .filter(|(p, _)| !state.busy.contains(p))
            .map(|(&p, held)| (p, held.token))
            .collect();
        let (hinted, lost) = state.take_hints(|p| idle.contains_key(&p), now);
        // Partitions whose parked keys are due, or unknown (dropped after a failed batch): their
        // task reads the retry area.
        let retry_due: Vec<u32> = (idle.keys())
            .filter(|p| {
                (state.parked.get(p)).is_none_or(|parked| parked.values().any(|&due| due <= now))
            })
            .copied()
            .collect();
        (idle, hinted, retry_due, full || lost)
    };
    let nothing = !full && hinted.is_empty() && retry_due.is_empty();
    if idle.is_empty() || start >= end || nothing {
        flush_retired(rt, tasks);
        return Ok(Found::default());
    }
    let snapshot = rt.engine.snapshot().await?;
    let marked = if full {
        read_marks(s, &snapshot, *cursor).await?
    } else {
        Vec::new()
    };
    let mut work: BTreeMap<u32, Work> = BTreeMap::new();
    let mut reads: HashMap<(u32, String), Read> = HashMap::new();
    {
        let mut state = rt.state.lock();
        // Still held with the same token, and taken by no task since (only the sweep starts
        // tasks).
        let idle = |state: &State, p: u32| idle.get(&p).is_some_and(|&token| state.holds(p, token));
        let hinted: HashSet<(u32, String)> = hinted.into_iter().collect();
        for (partition, partition_key, mark) in marked {
            if !idle(&state, partition) {
                continue;
            }
            // Announced before the snapshot began, or since: either way not found by marks
            // alone.
            let announced = hinted.contains(&(partition, partition_key.clone()))
                || state.unhint(partition, &partition_key);
            plan(
                &state,
                now,
                &mut reads,
                partition,
                partition_key,
                Some(mark),
                announced,
            );
        }
        for (partition, partition_key) in hinted {
            if idle(&state, partition) {
                plan(
                    &state,
                    now,
                    &mut reads,
                    partition,
                    partition_key,
                    None,
                    true,
                );
            }
        }
        for p in retry_due {
            if idle(&state, p) {
                work.entry(p).or_default();
            }
        }
    }
    let mut reads: Vec<Read> = reads.into_values().collect();
    find_marks(s, &snapshot, &mut reads).await?;
    let mut stale = Vec::new();
    let unhinted = read_keys(rt, &snapshot, reads, now, &mut work, &mut stale).await?;
    rt.state.lock().retired(stale);
    dispatch(rt, tasks, cursor, work, &idle, permits);
    flush_retired(rt, tasks);
    Ok(Found { unhinted })
}

/// The ready marks of the held range from `cursor` on, wrapping around: partition, partition
/// key, position.
async fn read_marks<B: Backend>(
    s: &Settings,
    snapshot: &TitoTransaction<B>,
    cursor: u32,
) -> Result<Vec<(u32, String, u64)>, TitoError> {
    let (start, end) = (s.partitions.start, s.partitions.end);
    let from = cursor.clamp(start, end);
    let ranges = [
        keys::ready_range(&s.event_type, &s.group, from, end),
        keys::ready_range(&s.event_type, &s.group, start, from),
    ];
    let prefix = keys::group_prefix(&s.event_type, &s.group, "ready").len();
    let mut marked = Vec::new();
    for (key, value) in snapshot
        .scan_many(&ranges, MARKS)
        .await?
        .into_iter()
        .flatten()
    {
        match (
            keys::ready_key_parts(&key, prefix),
            decode_ready(&key, &value),
        ) {
            (Some((partition, partition_key)), Ok(mark)) if marked.len() < MARKS => {
                marked.push((partition, partition_key, mark));
            }
            (Some(_), Ok(_)) => break,
            _ => {
                warn!(key = %tito_core::keyspace::display_key(&key), "ignoring a corrupt ready mark")
            }
        }
    }
    Ok(marked)
}

/// Plans the read of `partition_key`, whose ready mark holds `mark` if it was read.
fn plan(
    state: &State,
    now: u64,
    reads: &mut HashMap<(u32, String), Read>,
    partition: u32,
    partition_key: String,
    mark: Option<u64>,
    hinted: bool,
) {
    let progress = state.progress(partition, &partition_key);
    let id = (partition, partition_key);
    if progress.not_before > now || reads.contains_key(&id) {
        return;
    }
    let read = Read {
        partition: id.0,
        partition_key: id.1.clone(),
        mark,
        hinted,
        progress,
    };
    reads.insert(id, read);
}

/// Reads the marks of the keys to read that know neither their mark nor their progress, so that
/// they are read from their first pending event; a key without a mark has nothing pending.
async fn find_marks<B: Backend>(
    s: &Settings,
    snapshot: &TitoTransaction<B>,
    reads: &mut Vec<Read>,
) -> Result<(), TitoError> {
    let cold: Vec<usize> = (reads.iter().enumerate())
        .filter(|(_, r)| r.mark.is_none() && r.progress.after == 0)
        .map(|(i, _)| i)
        .collect();
    if cold.is_empty() {
        return Ok(());
    }
    let marks: Vec<Vec<u8>> = (cold.iter())
        .map(|&i| {
            keys::ready_key(
                &s.event_type,
                &s.group,
                reads[i].partition,
                &reads[i].partition_key,
            )
        })
        .collect();
    let mut unmarked = HashSet::new();
    for ((&i, key), found) in cold
        .iter()
        .zip(&marks)
        .zip(snapshot.batch_get(&marks).await?)
    {
        match found {
            Some(bytes) => reads[i].mark = Some(decode_ready(key, &bytes)?),
            None => {
                unmarked.insert(i);
            }
        }
    }
    let mut i = 0;
    reads.retain(|_| {
        i += 1;
        !unmarked.contains(&(i - 1))
    });
    Ok(())
}

/// Reads the pending events of `reads` in one multi-range read and adds the due ones to `work`;
/// keys found with nothing pending go to `stale`. Returns whether a key that was not hinted had
/// due events.
async fn read_keys<B: Backend>(
    rt: &Runtime<B>,
    snapshot: &TitoTransaction<B>,
    reads: Vec<Read>,
    now: u64,
    work: &mut BTreeMap<u32, Work>,
    stale: &mut Vec<Stale>,
) -> Result<bool, TitoError> {
    if reads.is_empty() {
        return Ok(false);
    }
    let mut unhinted = false;
    let s = &rt.settings;
    // A sweep reads a bounded number of events in all, shared among the keys it found; keys
    // with more are hinted for the next sweep, which shares the budget among fewer keys.
    let budget = s.batch_size.saturating_mul(64);
    let limit = (budget / reads.len()).clamp(1, s.batch_size);
    let ranges: Vec<KeyRange> = (reads.iter())
        .map(|r| {
            keys::pending_key_range(
                &s.event_type,
                &s.group,
                r.partition,
                &r.partition_key,
                r.from(),
            )
        })
        .collect();
    let found = snapshot.scan_many(&ranges, limit).await?;
    let prefix = keys::group_prefix(&s.event_type, &s.group, "pending").len();
    let mut empty = Vec::new();
    for (read, rows) in reads.into_iter().zip(found) {
        let position = |key: &[u8]| keys::pending_key_parts(key, prefix).map(|(_, _, at)| at);
        let due = (rows.iter())
            .take_while(|(key, _)| position(key).is_none_or(|at| at <= now))
            .count();
        if rows.is_empty() {
            empty.push(read);
            continue;
        }
        if due == 0 {
            // Not due yet; nor are the key's later events.
            let not_before = rows.first().and_then(|(key, _)| position(key)).unwrap_or(0);
            let progress = KeyProgress {
                not_before,
                ..read.progress
            };
            rt.state
                .lock()
                .learned(read.partition, &read.partition_key, Some(progress));
            continue;
        }
        let more = rows.len() == limit && due == limit;
        let complete = rows.len() < limit && due == rows.len();
        unhinted |= !read.hinted;
        let mut rows = rows;
        rows.truncate(due);
        work.entry(read.partition).or_default().keys.push(KeyWork {
            partition_key: read.partition_key,
            rows,
            more,
            complete,
        });
    }
    stale.extend(drained(s, snapshot, empty).await?);
    Ok(unhinted)
}

/// The marks of keys found with nothing pending, with the latest position each was handled up
/// to: known from the worker's progress, or read in the snapshot.
async fn drained<B: Backend>(
    s: &Settings,
    snapshot: &TitoTransaction<B>,
    empty: Vec<Read>,
) -> Result<Vec<Stale>, TitoError> {
    let stale = |read: &Read, position: Option<u64>| Stale {
        mark: keys::ready_key(&s.event_type, &s.group, read.partition, &read.partition_key),
        last: keys::last_key(&s.event_type, &s.group, read.partition, &read.partition_key),
        position,
        partition: read.partition,
        partition_key: read.partition_key.clone(),
    };
    let (known, cold): (Vec<Read>, Vec<Read>) = (empty.into_iter())
        .filter(|r| r.mark.is_some())
        .partition(|r| r.progress.after > 0);
    let mut found: Vec<Stale> = (known.iter())
        .map(|r| stale(r, Some(r.progress.after)))
        .collect();
    let last: Vec<Vec<u8>> = (cold.iter())
        .map(|r| keys::last_key(&s.event_type, &s.group, r.partition, &r.partition_key))
        .collect();
    for ((read, key), value) in cold.iter().zip(&last).zip(snapshot.batch_get(&last).await?) {
        let position = value.map(|bytes| decode_ready(key, &bytes)).transpose()?;
        found.push(stale(read, position));
    }
    Ok(found)
}

/// Removes the stale marks waiting, at most once per poll interval, beside the sweeps: each
/// costs little on every full sweep until removed, and removing them costs commits.
fn flush_retired<B: Backend>(rt: &Arc<Runtime<B>>, tasks: &mut JoinSet<()>) {
    let stale = rt.state.lock().take_retired(rt.settings.poll_interval);
    if !stale.is_empty() {
        let rt = rt.clone();
        tasks.spawn(async move { retire(&rt, &stale).await });
    }
}

/// Starts a task for each partition of `work`; the next full sweep reads marks after the last.
fn dispatch<B: Backend>(
    rt: &Arc<Runtime<B>>,
    tasks: &mut JoinSet<()>,
    cursor: &mut u32,
    work: BTreeMap<u32, Work>,
    idle: &HashMap<u32, u64>,
    permits: &Arc<Semaphore>,
) {
    for (p, work) in work {
        let Some(&token) = idle.get(&p) else {
            continue;
        };
        {
            let mut state = rt.state.lock();
            if !state.holds(p, token) {
                continue;
            }
            state.busy.insert(p);
        }
        *cursor = p + 1;
        tasks.spawn(partition::process(
            rt.clone(),
            p,
            token,
            work,
            permits.clone(),
        ));
    }
}
