//! The sweep: finds the due events of the partitions this worker holds and hands each
//! partition's work to a task.
//!
//! Work is found through ready marks, not by visiting partitions. Every published event also
//! writes its partition key's mark (`keys::ready_key`, a `ReadyMark`: the key's latest position
//! and where its pending events begin), in the same transaction; a worker removes a mark only in a transaction that finds it still
//! holding the position of the key's last event it took off (see `marks`). So a key with
//! pending events always has a mark, and one read of the marks of all held partitions tells
//! where the work is: a *full* sweep pays the same two round trips (a snapshot and that read)
//! whatever the number of partitions.
//!
//! Most sweeps need not read the marks: commits through this worker's engine announce their
//! events (`TitoEngine::published`), and keys with more events than a sweep read are noted too;
//! such *hints* are read directly. An announced event carries its key's latest position before
//! it, so when that is the last event the worker took off the key, the event is read by its key
//! (a point read, which a log-structured engine answers without stepping over the deleted keys
//! of handled events), not by range. Full sweeps find what was published elsewhere: every poll
//! interval while they find such work, backing off to the idle poll interval otherwise.
//!
//! Pending events are stored per partition key, in position order, and each partition key's
//! events are read from just after the last one the worker took off (`KeyProgress`), or, for a
//! key it knows nothing of yet, from where its mark says they begin: a sweep steps over no
//! handled event (the mark is advanced when a worker hands its partition over), and an event
//! that commits late, behind events of other keys already handled, is found through its mark
//! like any other. All keys are read in one multi-range read, so a busy sweep also costs a
//! fixed number of round trips.
//!
//! Everything is read in a read-only snapshot (a range read in a read-write transaction would
//! conflict with every publish), and only for partitions without a running task: a partition's
//! task ends after its acknowledgement committed, so the snapshot never shows events already
//! acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tito_core::backend::{KeyRange, KvPair};
use tito_core::event::{PendingTimes, Published, PublishedEvents, ReadyMark};
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError};
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;
use tracing::warn;

use super::Settings;
use super::marks::{Stale, retire};
use super::partition;
use super::runtime::Runtime;
use super::state::{Hint, KeyProgress, State};

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
}

/// A partition key to read.
struct Read {
    partition: u32,
    partition_key: String,
    /// Its ready mark, when the sweep read it.
    mark: Option<ReadyMark>,
    /// Whether the key was hinted (its events were announced in this process).
    hinted: bool,
    /// Its next pending events, when announcements tell exactly which they are: they are read
    /// by their keys, not by range.
    exact: Option<Vec<Published>>,
    progress: KeyProgress,
}

/// The keys a sweep reads, and the stale marks it found.
struct Plan {
    now: u64,
    reads: HashMap<(u32, String), Read>,
    stale: Vec<Stale>,
}

impl Plan {
    /// Plans the read of `partition_key`, whose ready mark is `mark` if it was read, and whose
    /// hint, if it had one, is `hint`.
    fn read(
        &mut self,
        state: &mut State,
        s: &Settings,
        (partition, partition_key): (u32, String),
        mark: Option<ReadyMark>,
        hint: Option<Hint>,
    ) {
        let mut progress = state.progress(partition, &partition_key);
        let planned = self.reads.contains_key(&(partition, partition_key.clone()));
        if progress.not_before > self.now || planned {
            return;
        }
        // A mark handed over past its latest position: nothing of the key is pending.
        if let Some(mark) = mark.filter(|m| m.first > m.latest && m.latest > progress.after) {
            progress.after = mark.latest;
            state.learned(partition, &partition_key, Some(progress));
        }
        let hinted = hint.is_some();
        let announced = match hint {
            Some(Hint::Announced(events)) => {
                let events: Vec<Published> = (events.into_iter())
                    .filter(|e| e.position > progress.after)
                    .collect();
                (!events.is_empty()).then_some(events)
            }
            _ => None,
        };
        if let Some(mark) = mark
            && mark.latest <= progress.after
        {
            // Everything up to the mark was taken off: the mark goes once the key is idle.
            // Events announced since the snapshot began are read by a later sweep.
            self.stale
                .extend(Stale::if_idle(s, self.now, partition, &partition_key, mark));
            if let Some(events) = announced {
                state.reannounce(&events);
            }
            return;
        }
        let exact = match announced {
            Some(events) => match next_events(events, progress.after, mark) {
                Ok(exact) => Some(exact),
                // Announced since the snapshot began: kept for a later sweep.
                Err(events) => {
                    state.reannounce(&events);
                    None
                }
            },
            None => None,
        };
        let read = Read {
            partition,
            partition_key: partition_key.clone(),
            mark,
            hinted,
            exact,
            progress,
        };
        self.reads.insert((partition, partition_key), read);
    }
}

/// `events` (announced, after `after`) in position order, if they are exactly the key's next
/// pending events: the first directly follows `after` (or no event of the key was pending when
/// it was written) and each next one directly follows the one before; and, if the key's mark
/// was read, the last of them is its latest event (announced events commit before their
/// announcement, but may have committed after the snapshot). Otherwise gives them back.
fn next_events(
    mut events: Vec<Published>,
    after: u64,
    mark: Option<ReadyMark>,
) -> Result<Vec<Published>, Vec<Published>> {
    events.sort_by_key(|e| e.position);
    events.dedup_by_key(|e| e.position);
    let mut before = None;
    for event in &events {
        let follows = match before {
            None => event.after.is_none() || (after > 0 && event.after == Some(after)),
            Some(b) => event.after == Some(b),
        };
        if !follows {
            return Err(events);
        }
        before = Some(event.position);
    }
    if mark.is_some_and(|m| before != Some(m.latest)) {
        return Err(events);
    }
    Ok(events)
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
    published: &mut broadcast::Receiver<PublishedEvents>,
    cursor: &mut u32,
    full: bool,
) -> Result<Found, TitoError> {
    let s = &rt.settings;
    let (start, end) = (s.partitions.start, s.partitions.end);
    let now = s.now_micros();
    // Fixed before the snapshot begins: a partition idle now acknowledged everything before it,
    // under the lease it still holds with the same token.
    let (idle, mut hinted, retry_due, full) = {
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
    if idle.is_empty() || start >= end || (!full && hinted.is_empty() && retry_due.is_empty()) {
        return Ok(Found::default());
    }
    let snapshot = rt.engine.snapshot().await?;
    let marks = if full {
        let from = (*cursor).clamp(start, end);
        let ranges = [
            keys::ready_range(&s.event_type, &s.group, from, end),
            keys::ready_range(&s.event_type, &s.group, start, from),
        ];
        snapshot.scan_many(&ranges, MARKS).await?
    } else {
        Vec::new()
    };
    // Events announced since the snapshot began may have committed after it: they only tell
    // which keys the marks found were announced (see `Found::unhinted`), and stay hints. Taken
    // after the marks were read, so that even a publisher slow to announce is seen.
    rt.take_announced(published);
    // Every event announced so far is due by now, unless scheduled later.
    let now = s.now_micros();
    let mark_prefix = keys::group_prefix(&s.event_type, &s.group, "ready").len();
    let mut marked = Vec::new();
    let mut read = 0;
    // When there are more marks than a sweep reads, the next full sweep goes on after the last
    // partition read, whether or not this one finds work there.
    let mut resume = None;
    for (key, value) in marks.into_iter().flatten().take(MARKS) {
        read += 1;
        if read == MARKS {
            resume = keys::partition_in_key(&key, mark_prefix).map(|p| p + 1);
        }
        let parts = keys::ready_key_parts(&key, mark_prefix);
        match (parts, ReadyMark::decode(&key, &value)) {
            (Some((partition, partition_key)), Ok(mark)) => {
                marked.push((partition, partition_key, mark));
            }
            _ => {
                warn!(key = %tito_core::keyspace::display_key(&key), "ignoring a corrupt ready mark")
            }
        }
    }
    let mut work: BTreeMap<u32, Work> = BTreeMap::new();
    let mut plan = Plan {
        now,
        reads: HashMap::new(),
        stale: Vec::new(),
    };
    {
        let mut state = rt.state.lock();
        // Still held with the same token, and taken by no task since (only the sweep starts
        // tasks).
        let idle = |state: &State, p: u32| idle.get(&p).is_some_and(|&token| state.holds(p, token));
        for (partition, partition_key, mark) in marked {
            if !idle(&state, partition) {
                continue;
            }
            // Announced before the snapshot began, or since: either way not found by marks
            // alone.
            let hint = (hinted.remove(&(partition, partition_key.clone())))
                .or_else(|| state.take_hint(partition, &partition_key));
            plan.read(&mut state, s, (partition, partition_key), Some(mark), hint);
        }
        for (id, hint) in hinted {
            if idle(&state, id.0) {
                plan.read(&mut state, s, id, None, Some(hint));
            }
        }
        for p in retry_due {
            if idle(&state, p) {
                work.entry(p).or_default();
            }
        }
    }
    // A key to read by range that the worker knows nothing of is read from where its mark says
    // its events begin, not from its first key.
    let unknown: Vec<(u32, String)> = (plan.reads.values())
        .filter(|r| r.mark.is_none() && r.exact.is_none() && r.progress.after == 0)
        .map(|r| (r.partition, r.partition_key.clone()))
        .collect();
    if !unknown.is_empty() {
        let mark_keys: Vec<Vec<u8>> = (unknown.iter())
            .map(|(p, pk)| keys::ready_key(&s.event_type, &s.group, *p, pk))
            .collect();
        let found = snapshot.batch_get(&mark_keys).await?;
        for ((id, key), bytes) in unknown.into_iter().zip(&mark_keys).zip(found) {
            let mark = bytes
                .map(|bytes| ReadyMark::decode(key, &bytes))
                .transpose();
            match mark {
                // No mark: nothing is pending (the announcement came after the mark went).
                Ok(None) => {
                    plan.reads.remove(&id);
                }
                Ok(Some(mark)) => {
                    if let Some(read) = plan.reads.get_mut(&id) {
                        read.mark = Some(mark);
                    }
                }
                Err(e) => warn!(error = %e, "ignoring a corrupt ready mark"),
            }
        }
    }
    let Plan {
        reads, mut stale, ..
    } = plan;
    let reads: Vec<Read> = reads.into_values().collect();
    let unhinted = read_keys(rt, &snapshot, reads, now, &mut work, &mut stale).await?;
    let found = Found { unhinted };
    dispatch(rt, tasks, cursor, work, &idle, permits);
    if let Some(next) = resume {
        *cursor = if next >= end { start } else { next };
    }
    // Stale marks cost a little on every full sweep until removed, and removing them costs
    // commits: they are removed together, at most once per poll interval, beside the sweeps.
    if !stale.is_empty() && rt.state.lock().retire_due(s.poll_interval) {
        let rt = rt.clone();
        tasks.spawn(async move { retire(&rt, &stale).await });
    }
    Ok(found)
}

/// Reads the pending events of `reads`, by range in one multi-range read and by key in one
/// batched read, and adds the due ones to `work`. Returns whether a key that was not hinted had
/// due events.
async fn read_keys<B: Backend>(
    rt: &Runtime<B>,
    snapshot: &tito_core::TitoTransaction<B>,
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
    let (exact, ranged): (Vec<Read>, Vec<Read>) =
        reads.into_iter().partition(|r| r.exact.is_some());
    let ranges: Vec<KeyRange> = ranged
        .iter()
        .map(|r| {
            let after = match r.progress.after {
                0 => 0,
                after => after.saturating_add(1),
            };
            let from = r.mark.map_or(after, |mark| after.max(mark.first));
            keys::pending_key_range(&s.event_type, &s.group, r.partition, &r.partition_key, from)
        })
        .collect();
    let mut found: Vec<(Read, Vec<KvPair>)> = if ranges.is_empty() {
        Vec::new()
    } else {
        let found = snapshot.scan_many(&ranges, limit).await?;
        ranged.into_iter().zip(found).collect()
    };
    found.extend(read_exact(rt, snapshot, exact, now, limit).await?);
    let prefix = keys::group_prefix(&s.event_type, &s.group, "pending").len();
    // An unreadable key is taken as due: its task sets it aside.
    let due_at = |(key, value): &KvPair| {
        keys::pending_key_parts(key, prefix).map(|(_, _, at)| PendingTimes::of(value, at).due)
    };
    for (read, rows) in found {
        let due = rows
            .iter()
            .take_while(|row| due_at(row).is_none_or(|at| at <= now))
            .count();
        if due == 0 && !rows.is_empty() {
            // Not due yet; nor are the key's later events.
            let not_before = rows.first().and_then(due_at).unwrap_or(0);
            let progress = KeyProgress {
                not_before,
                ..read.progress
            };
            rt.state
                .lock()
                .learned(read.partition, &read.partition_key, Some(progress));
            continue;
        }
        if rows.is_empty() {
            // Nothing pending up to the mark: while the mark stays, later events of the key
            // take later positions, so reads can start after it.
            let Some(mark) = read.mark.filter(|_| read.exact.is_none()) else {
                continue;
            };
            match Stale::if_idle(s, now, read.partition, &read.partition_key, mark) {
                Some(idle) => stale.push(idle),
                None => {
                    let progress = KeyProgress {
                        after: mark.latest,
                        not_before: 0,
                    };
                    let mut state = rt.state.lock();
                    state.learned(read.partition, &read.partition_key, Some(progress));
                }
            }
            continue;
        }
        let more = read.exact.is_none() && rows.len() == limit && due == limit;
        unhinted |= !read.hinted;
        let mut rows = rows;
        rows.truncate(due);
        work.entry(read.partition).or_default().keys.push(KeyWork {
            partition_key: read.partition_key,
            rows,
            more,
        });
    }
    Ok(unhinted)
}

/// Reads the announced events of `reads` by their keys: the due ones, at most `limit` per key,
/// and the first one not due (it tells when the key is next due). Events left over stay hints;
/// an event found missing makes its key read by range.
async fn read_exact<B: Backend>(
    rt: &Runtime<B>,
    snapshot: &tito_core::TitoTransaction<B>,
    reads: Vec<Read>,
    now: u64,
    limit: usize,
) -> Result<Vec<(Read, Vec<KvPair>)>, TitoError> {
    if reads.is_empty() {
        return Ok(Vec::new());
    }
    let s = &rt.settings;
    let mut wanted: Vec<Vec<u8>> = Vec::new();
    let mut counts = Vec::with_capacity(reads.len());
    for read in &reads {
        let events = read.exact.as_deref().unwrap_or_default();
        let due = events.iter().take_while(|e| e.due <= now).count();
        let count = if due < limit {
            (due + 1).min(events.len())
        } else {
            limit
        };
        wanted.extend(events[..count].iter().map(|e| {
            keys::pending_key(
                &s.event_type,
                &s.group,
                read.partition,
                &read.partition_key,
                e.position,
                &e.id,
            )
        }));
        counts.push(count);
    }
    let mut values = snapshot.batch_get(&wanted).await?.into_iter();
    let mut wanted = wanted.into_iter();
    let mut found = Vec::with_capacity(reads.len());
    let mut state = rt.state.lock();
    for (read, count) in reads.into_iter().zip(counts) {
        let mut rows = Vec::with_capacity(count);
        let mut missing = false;
        for (key, value) in wanted.by_ref().take(count).zip(values.by_ref()) {
            match value {
                Some(value) if !missing => rows.push((key, value)),
                _ => missing = true,
            }
        }
        let events = read.exact.as_deref().unwrap_or_default();
        if missing {
            state.hint(read.partition, &read.partition_key);
        } else if events.len() > rows.len() {
            state.reannounce(&events[rows.len()..]);
        }
        found.push((read, rows));
    }
    Ok(found)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: u64, after: Option<u64>) -> Published {
        Published {
            partition: 1,
            partition_key: "k".into(),
            position,
            id: format!("e{position}"),
            due: 0,
            after,
        }
    }

    fn positions(events: &[Published]) -> Vec<u64> {
        events.iter().map(|e| e.position).collect()
    }

    fn mark(latest: u64) -> Option<ReadyMark> {
        Some(ReadyMark { first: 0, latest })
    }

    #[test]
    fn announced_events_are_next_only_as_an_unbroken_chain_from_what_was_taken_off() {
        let chain = vec![event(30, Some(20)), event(20, Some(10))];
        let next = next_events(chain.clone(), 10, None).expect("follows 10");
        assert_eq!(positions(&next), [20, 30], "in position order");
        assert!(next_events(chain.clone(), 10, mark(30)).is_ok());
        // The mark holds a later event: one not announced (published elsewhere).
        assert!(next_events(chain.clone(), 10, mark(40)).is_err());
        // The mark was read before the last one committed.
        assert!(next_events(chain.clone(), 10, mark(20)).is_err());
        // An event between 10 and 20 was not announced.
        assert!(next_events(chain.clone(), 5, None).is_err());
        // Nothing is known of the key: only an event written with no mark at all can start.
        assert!(next_events(chain, 0, None).is_err());
        let first = vec![event(7, None), event(9, Some(7))];
        assert_eq!(positions(&next_events(first, 0, None).unwrap()), [7, 9]);
        // A later event written with no mark follows an unknown gap.
        assert!(next_events(vec![event(7, None), event(9, None)], 0, None).is_err());
        assert!(next_events(vec![event(7, Some(5)), event(9, Some(8))], 5, None).is_err());
        let repeated = vec![event(7, Some(5)), event(7, Some(5)), event(9, Some(7))];
        assert_eq!(positions(&next_events(repeated, 5, None).unwrap()), [7, 9]);
    }
}
