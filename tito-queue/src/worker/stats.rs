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

/// The live counters behind [`WorkerStats`], mirrored to the `metrics` facade with the
/// worker's event type and group as labels (`tito_queue_events_handled_total`, ...; the README's
/// "Observability" lists them).
#[derive(Debug)]
pub(crate) struct Counters {
    handled: AtomicU64,
    failed_attempts: AtomicU64,
    dead_lettered: AtomicU64,
    acknowledgements: AtomicU64,
    abandoned_batches: AtomicU64,
    leases_acquired: AtomicU64,
    leases_lost: AtomicU64,
    metrics: Metrics,
}

/// The metric handles of one worker, registered once.
#[derive(Debug)]
struct Metrics {
    handled: metrics::Counter,
    failed_attempts: metrics::Counter,
    dead_lettered: metrics::Counter,
    acknowledgements: metrics::Counter,
    abandoned_batches: metrics::Counter,
    leases_acquired: metrics::Counter,
    leases_lost: metrics::Counter,
    handler_seconds: metrics::Histogram,
}

fn add(counter: &AtomicU64, metric: &metrics::Counter, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
    metric.increment(n);
}

impl Counters {
    pub fn new(event_type: &str, group: &str) -> Self {
        let labels = [
            ("event_type", event_type.to_string()),
            ("group", group.to_string()),
        ];
        let counter = |name: &'static str| metrics::counter!(name, &labels);
        Counters {
            handled: AtomicU64::default(),
            failed_attempts: AtomicU64::default(),
            dead_lettered: AtomicU64::default(),
            acknowledgements: AtomicU64::default(),
            abandoned_batches: AtomicU64::default(),
            leases_acquired: AtomicU64::default(),
            leases_lost: AtomicU64::default(),
            metrics: Metrics {
                handled: counter("tito_queue_events_handled_total"),
                failed_attempts: counter("tito_queue_failed_attempts_total"),
                dead_lettered: counter("tito_queue_events_dead_lettered_total"),
                acknowledgements: counter("tito_queue_acknowledgements_total"),
                abandoned_batches: counter("tito_queue_abandoned_batches_total"),
                leases_acquired: counter("tito_queue_leases_acquired_total"),
                leases_lost: counter("tito_queue_leases_lost_total"),
                handler_seconds: metrics::histogram!(
                    "tito_queue_handler_duration_seconds",
                    &labels
                ),
            },
        }
    }

    pub fn acknowledged(&self, handled: u64, dead_lettered: u64) {
        let m = &self.metrics;
        add(&self.acknowledgements, &m.acknowledgements, 1);
        add(&self.handled, &m.handled, handled);
        add(&self.dead_lettered, &m.dead_lettered, dead_lettered);
    }

    pub fn failed_attempt(&self) {
        add(&self.failed_attempts, &self.metrics.failed_attempts, 1);
    }

    pub fn abandoned_batch(&self) {
        add(&self.abandoned_batches, &self.metrics.abandoned_batches, 1);
    }

    pub fn leases(&self, acquired: u64, lost: u64) {
        add(
            &self.leases_acquired,
            &self.metrics.leases_acquired,
            acquired,
        );
        add(&self.leases_lost, &self.metrics.leases_lost, lost);
    }

    /// A handler call took `took`.
    pub fn handler_ran(&self, took: std::time::Duration) {
        self.metrics.handler_seconds.record(took);
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
