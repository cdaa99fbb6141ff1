//! What a running worker knows about its partitions, shared by its loop and partition tasks.
//!
//! The store is the truth; this is a cache of it that is only ever updated after the store
//! confirmed a change (a committed acquisition or acknowledgement), and dropped for a partition
//! whenever that is in doubt, so it is read again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use tito_core::event::Published;

/// A lease this worker holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// Fencing token of the acquisition.
    pub token: u64,
    /// Expiry last written, micros since the epoch.
    pub expires_at: u64,
}

/// The parked keys of a partition: partition key -> when its head event is next due.
pub(crate) type Parked = BTreeMap<String, u64>;

/// What the worker learned about one partition key with pending events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyProgress {
    /// Position of the key's last event taken off (handled, parked or dead-lettered) and
    /// acknowledged: its pending events are read from just after it, stepping over no handled
    /// event of the key.
    pub after: u64,
    /// When the key's first pending event is due, if it was not yet; the key is not read again
    /// before then (its later events wait behind it).
    pub not_before: u64,
}

/// Most partition keys remembered per partition; past it the partition's are forgotten (they
/// are read from their first pending event again).
const KEYS_PER_PARTITION: usize = 4_096;

/// The worker's view of its partitions.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Leases held.
    pub held: HashMap<u32, Held>,
    /// Partitions with a task running; only the sweep adds to it.
    pub busy: HashSet<u32>,
    /// Held partitions taken over from a holder that did not release them: it may have died in
    /// a handler, so their next batch is handled alone, each call recorded before it runs.
    pub suspect: HashSet<u32>,
    /// Parked keys per held partition; absent means "read the retry area first".
    pub parked: HashMap<u32, Parked>,
    /// Per held partition, what is known of its keys with pending events.
    pub keys: HashMap<u32, HashMap<String, KeyProgress>>,
    /// When stale ready marks were last removed.
    retired_at: Option<Instant>,
    /// When expired dead letters were last looked for.
    dead_pruned_at: Option<Instant>,
    /// Partition keys likely to have due events: published through this worker's engine, or
    /// left with more events than a sweep read. Sweeps read them without reading marks.
    hints: HashMap<(u32, String), Hint>,
    /// Hints were lost (too many, or announcements missed): the next sweep reads all marks.
    hints_lost: bool,
    /// The earliest time a key found not due yet becomes due, micros since the epoch.
    scheduled: Option<u64>,
}

/// Whether something last done at `last` is due again after `every`; if so, records it as done
/// now.
fn due_every(last: &mut Option<Instant>, every: Duration) -> bool {
    let now = Instant::now();
    let due = last.is_none_or(|at| now.duration_since(at) >= every);
    if due {
        *last = Some(now);
    }
    due
}

/// Most hinted keys kept; past it they are dropped for a read of all marks.
const HINTS: usize = 65_536;

/// Most announced events kept per hinted key; past it the key's range is read.
const ANNOUNCED_PER_KEY: usize = 64;

/// Why a partition key is hinted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hint {
    /// Events of the key committed through this worker's engine, as announced: read by their
    /// keys when they directly follow what the worker took off.
    Announced(Vec<Published>),
    /// The key's pending events are read by range (it had more than a sweep read, or too many
    /// announcements).
    Range,
}

impl State {
    /// Whether the lease of `partition` is held with `token`.
    pub fn holds(&self, partition: u32, token: u64) -> bool {
        self.held.get(&partition).is_some_and(|h| h.token == token)
    }

    /// Records a renewal of the lease of `partition` held with `token`.
    pub fn renewed(&mut self, partition: u32, token: u64, expires_at: u64) {
        if let Some(held) = self.held.get_mut(&partition).filter(|h| h.token == token) {
            held.expires_at = held.expires_at.max(expires_at);
        }
    }

    /// Records the acquisition of `partition`: nothing about it is known yet, so its parked
    /// keys and key progress are read again.
    pub fn acquired(&mut self, partition: u32, held: Held, unreleased: bool) {
        self.held.insert(partition, held);
        if unreleased {
            self.suspect.insert(partition);
        }
        self.parked.remove(&partition);
        self.keys.remove(&partition);
        // Its events were announced to nobody here: the next sweep reads all marks.
        self.hints_lost = true;
    }

    /// Forgets `partition` if it is still held with `token` (the lease was lost).
    pub fn forget(&mut self, partition: u32, token: u64) {
        if self.holds(partition, token) {
            self.held.remove(&partition);
            self.suspect.remove(&partition);
            self.parked.remove(&partition);
            self.keys.remove(&partition);
        }
    }

    /// Whether stale ready marks may be removed now, at most once per `every`; if so, records
    /// that they are.
    pub fn retire_due(&mut self, every: Duration) -> bool {
        due_every(&mut self.retired_at, every)
    }

    /// Whether expired dead letters may be looked for now, at most once per `every`; if so,
    /// records that they are.
    pub fn prune_dead_due(&mut self, every: Duration) -> bool {
        due_every(&mut self.dead_pruned_at, every)
    }

    /// Notes that `partition_key` of `partition` likely has due events, to be read by range.
    pub fn hint(&mut self, partition: u32, partition_key: &str) {
        self.make_room();
        self.hints
            .insert((partition, partition_key.to_string()), Hint::Range);
    }

    /// Notes the committed event `published` announces.
    pub fn announced(&mut self, published: &Published) {
        let id = (published.partition, published.partition_key.clone());
        match self.hints.get_mut(&id) {
            Some(Hint::Announced(events)) if events.len() < ANNOUNCED_PER_KEY => {
                events.push(published.clone());
            }
            Some(hint) => *hint = Hint::Range,
            None => {
                self.make_room();
                self.hints
                    .insert(id, Hint::Announced(vec![published.clone()]));
            }
        }
    }

    /// Drops every hint for a read of all marks when there are too many.
    fn make_room(&mut self) {
        if self.hints.len() >= HINTS {
            self.hints.clear();
            self.hints_lost = true;
        }
    }

    /// Gives back announced `events` that were taken but not read, as if announced again.
    pub fn reannounce(&mut self, events: &[Published]) {
        for event in events {
            self.announced(event);
        }
    }

    /// Takes the hint of `partition_key` of `partition`, if any.
    pub fn take_hint(&mut self, partition: u32, partition_key: &str) -> Option<Hint> {
        self.hints.remove(&(partition, partition_key.to_string()))
    }

    /// Notes that hints may have been missed.
    pub fn hints_lost(&mut self) {
        self.hints_lost = true;
    }

    /// When a sweep is next owed: the earliest due retry or scheduled event, micros since the
    /// epoch.
    pub fn next_due(&self) -> Option<u64> {
        let retries = (self.parked.iter())
            .filter(|(p, _)| !self.busy.contains(p))
            .flat_map(|(_, parked)| parked.values().copied());
        retries.chain(self.scheduled).min()
    }

    /// Takes the hints of the partitions `idle` accepts, and whether hints were lost since the
    /// last call (or a key found not due yet is due now: only a read of all marks finds it);
    /// hints of partitions not held are dropped, those of busy ones kept.
    pub fn take_hints(
        &mut self,
        idle: impl Fn(u32) -> bool,
        now: u64,
    ) -> (HashMap<(u32, String), Hint>, bool) {
        let (taken, kept) = std::mem::take(&mut self.hints)
            .into_iter()
            .filter(|((p, _), _)| self.held.contains_key(p))
            .partition(|((p, _), _)| idle(*p));
        self.hints = kept;
        let scheduled_due = self.scheduled.is_some_and(|at| at <= now);
        if scheduled_due {
            self.scheduled = None;
        }
        (taken, std::mem::take(&mut self.hints_lost) || scheduled_due)
    }

    /// What is known of `partition_key` in `partition`.
    pub fn progress(&self, partition: u32, partition_key: &str) -> KeyProgress {
        (self.keys.get(&partition))
            .and_then(|keys| keys.get(partition_key))
            .copied()
            .unwrap_or_default()
    }

    /// Records what was learned of `partition_key` in the held `partition`; `None` forgets it
    /// (its ready mark is gone).
    pub fn learned(&mut self, partition: u32, partition_key: &str, progress: Option<KeyProgress>) {
        if !self.held.contains_key(&partition) {
            return;
        }
        match progress {
            Some(progress) => {
                if progress.not_before > 0 {
                    let at = self
                        .scheduled
                        .map_or(progress.not_before, |at| at.min(progress.not_before));
                    self.scheduled = Some(at);
                }
                let keys = self.keys.entry(partition).or_default();
                if keys.len() >= KEYS_PER_PARTITION && !keys.contains_key(partition_key) {
                    keys.clear();
                }
                keys.insert(partition_key.to_string(), progress);
            }
            None => {
                if let Some(keys) = self.keys.get_mut(&partition) {
                    keys.remove(partition_key);
                }
            }
        }
    }
}

/// The shared state behind a mutex that is never held across an await.
#[derive(Debug, Default)]
pub(crate) struct SharedState(Mutex<State>);

impl SharedState {
    /// Locks the state; a panic while it was locked cannot leave it torn (every update is a
    /// single assignment), so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_progress_is_kept_only_for_held_partitions() {
        let mut state = State::default();
        let held = Held {
            token: 1,
            expires_at: 0,
        };
        let progress = KeyProgress {
            after: 50,
            not_before: 0,
        };
        state.learned(3, "k", Some(progress));
        assert_eq!(state.progress(3, "k"), KeyProgress::default(), "not held");
        state.acquired(3, held, false);
        state.learned(3, "k", Some(progress));
        assert_eq!(state.progress(3, "k"), progress);
        state.learned(3, "k", None);
        assert_eq!(state.progress(3, "k"), KeyProgress::default());
        state.learned(3, "k", Some(progress));
        state.acquired(3, Held { token: 2, ..held }, false);
        assert_eq!(
            state.progress(3, "k"),
            KeyProgress::default(),
            "a new lease forgets"
        );
        state.learned(3, "k", Some(progress));
        state.forget(3, 2);
        assert!(state.keys.is_empty());
    }
}
