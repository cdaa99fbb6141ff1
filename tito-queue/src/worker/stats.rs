//! Counters of what a worker did, readable while it runs ([`WorkerHandle::stats`]).
//!
//! [`WorkerHandle::stats`]: super::WorkerHandle::stats

use std::sync::atomic::{AtomicU64, Ordering};

/// What a worker did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Events handled and acknowledged.
    pub handled: u64,
    /// Handler calls that failed or panicked (each retry counts).
    pub failed_attempts: u64,
    /// Events moved to the dead letters.
    pub dead_lettered: u64,
    /// Acknowledgement transactions committed.
    pub acknowledgements: u64,
    /// Batches not acknowledged (store errors or lost leases); their events are handled again.
    pub abandoned_batches: u64,
    /// Leases taken.
    pub leases_acquired: u64,
    /// Leases found taken by another worker.
    pub leases_lost: u64,
}

/// The live counters behind [`WorkerStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    handled: AtomicU64,
    failed_attempts: AtomicU64,
    dead_lettered: AtomicU64,
    acknowledgements: AtomicU64,
    abandoned_batches: AtomicU64,
    leases_acquired: AtomicU64,
    leases_lost: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn acknowledged(&self, handled: u64, dead_lettered: u64) {
        add(&self.acknowledgements, 1);
        add(&self.handled, handled);
        add(&self.dead_lettered, dead_lettered);
    }

    pub fn failed_attempt(&self) {
        add(&self.failed_attempts, 1);
    }

    pub fn abandoned_batch(&self) {
        add(&self.abandoned_batches, 1);
    }

    pub fn leases(&self, acquired: u64, lost: u64) {
        add(&self.leases_acquired, acquired);
        add(&self.leases_lost, lost);
    }

    pub fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            handled: get(&self.handled),
            failed_attempts: get(&self.failed_attempts),
            dead_lettered: get(&self.dead_lettered),
            acknowledgements: get(&self.acknowledgements),
            abandoned_batches: get(&self.abandoned_batches),
            leases_acquired: get(&self.leases_acquired),
            leases_lost: get(&self.leases_lost),
        }
    }
}
