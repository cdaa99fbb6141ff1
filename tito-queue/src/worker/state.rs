//! What a running worker knows about its partitions, shared by its loop and partition tasks.
//!
//! The store is the truth; this is a cache of it that is only ever updated after the store
//! confirmed a change (a committed acquisition or acknowledgement), and dropped for a partition
//! whenever that is in doubt, so it is read again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

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

/// The worker's view of its partitions.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Leases held.
    pub held: HashMap<u32, Held>,
    /// Partitions with a task running; only the sweep adds to it.
    pub busy: HashSet<u32>,
    /// Parked keys per held partition; absent means "read the retry area first".
    pub parked: HashMap<u32, Parked>,
    /// Per held partition, the position normal sweeps read from: every pending event below it
    /// either was handled or committed later than the late window (see `sweep`).
    pub floors: HashMap<u32, u64>,
    /// Held partitions owed a read from their first pending key (a deep sweep).
    pub deep: HashSet<u32>,
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
    /// keys are read again and it is owed a deep sweep.
    pub fn acquired(&mut self, partition: u32, held: Held) {
        self.held.insert(partition, held);
        self.parked.remove(&partition);
        self.floors.remove(&partition);
        self.deep.insert(partition);
    }

    /// Forgets `partition` if it is still held with `token` (the lease was lost).
    pub fn forget(&mut self, partition: u32, token: u64) {
        if self.holds(partition, token) {
            self.held.remove(&partition);
            self.parked.remove(&partition);
            self.floors.remove(&partition);
            self.deep.remove(&partition);
        }
    }

    /// Raises the floor of the held `partition` to `floor` (floors never go down).
    pub fn raise_floor(&mut self, partition: u32, floor: u64) {
        if self.held.contains_key(&partition) {
            let current = self.floors.entry(partition).or_insert(floor);
            *current = (*current).max(floor);
        }
    }

    /// Owes every held partition a deep sweep, to find events that committed below its floor.
    pub fn owe_deep_sweep(&mut self) {
        self.deep = self.held.keys().copied().collect();
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
    fn floors_only_rise_and_a_new_lease_owes_a_deep_sweep() {
        let mut state = State::default();
        let held = Held {
            token: 1,
            expires_at: 0,
        };
        state.raise_floor(3, 50);
        assert!(state.floors.is_empty(), "no floor for a partition not held");
        state.acquired(3, held);
        assert!(state.deep.contains(&3));
        state.raise_floor(3, 50);
        state.raise_floor(3, 40);
        assert_eq!(state.floors.get(&3), Some(&50));
        state.deep.clear();
        state.owe_deep_sweep();
        assert!(state.deep.contains(&3));
        state.acquired(3, Held { token: 2, ..held });
        assert!(state.floors.is_empty(), "a new lease forgets the floor");
        state.raise_floor(3, 60);
        state.forget(3, 2);
        assert!(state.floors.is_empty() && state.deep.is_empty());
    }
}
