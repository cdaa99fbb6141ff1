//! A backend wrapper that injects faults: the failures a networked store produces on its own.
//!
//! An embedded database rarely conflicts, never times out and never loses a commit's reply, so
//! the code paths that handle those cases (the retrying runner, index maintenance after a failed
//! write, queue acknowledgements) would go untested. Wrap any backend in [`Faulty`] with a
//! [`FaultPlan`] to add latency, retryable conflicts, transient errors and commits whose
//! outcome is unknown, at chosen call numbers or at a seeded rate, and assert tito stays correct.
//!
//! Calls are numbered per [`CallKind`] from 1, across all transactions of the backend. A rate
//! is decided by a splitmix64 stream per rule, indexed by the call number, so the same seed
//! gives the same faults at the same call numbers. Faults on begin, reads, writes and scans are
//! returned before the call is forwarded and leave the transaction open (the caller rolls it
//! back, as after a real failed read). A failed commit is rolled back by the wrapper, so the
//! inner backend holds nothing of it, except [`Fault::UnknownApplied`], which commits for real
//! and then reports the outcome as unknown, as a lost reply would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::{Backend, BackendTx, CallCounts, KeyRange, KvPair, TxKind};
use crate::error::{Result, TitoError};

/// A kind of backend call a fault can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// Beginning a transaction.
    Begin,
    /// A point read.
    Get,
    /// A batched read.
    BatchGet,
    /// A put or a delete.
    Write,
    /// A scan, either direction.
    Scan,
    /// The commit of a read-write transaction (a read-only snapshot's commit is never faulted).
    Commit,
}

impl CallKind {
    /// Every call kind.
    pub const ALL: [CallKind; 6] = [
        CallKind::Begin,
        CallKind::Get,
        CallKind::BatchGet,
        CallKind::Write,
        CallKind::Scan,
        CallKind::Commit,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// What goes wrong at a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Sleeps this long, then forwards the call.
    Latency(Duration),
    /// Fails with the retryable [`TitoError::Conflict`].
    Conflict,
    /// Fails with the retryable [`TitoError::Unavailable`].
    Unavailable,
    /// At commit: commits for real, then fails with [`TitoError::CommitOutcomeUnknown`].
    UnknownApplied,
    /// At commit: rolls back, then fails with [`TitoError::CommitOutcomeUnknown`].
    UnknownNotApplied,
}

/// When a rule fires.
#[derive(Debug, Clone, PartialEq)]
enum Trigger {
    /// At these call numbers (1-based).
    Calls(Vec<u64>),
    /// When the rule's draw for the call is below this threshold (out of 2^64).
    Rate(u64),
    /// At every call.
    Always,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    kind: CallKind,
    fault: Fault,
    trigger: Trigger,
}

/// Which faults a [`Faulty`] backend injects and when; reproducible from its seed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    seed: u64,
    rules: Vec<Rule>,
}

/// What a plan decided for one call: the latency to add and the error fault to inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Decision {
    delay: Duration,
    fault: Option<Fault>,
}

impl FaultPlan {
    /// A plan with no faults yet, whose rates draw from `seed`.
    pub fn new(seed: u64) -> Self {
        FaultPlan {
            seed,
            rules: Vec::new(),
        }
    }

    /// Injects `fault` at the `call`-th call of `kind` (1-based: `at(Commit, 3, ..)` is the
    /// third commit).
    pub fn at(self, kind: CallKind, call: u64, fault: Fault) -> Self {
        self.at_calls(kind, &[call], fault)
    }

    /// Injects `fault` at each of the given call numbers of `kind`.
    pub fn at_calls(mut self, kind: CallKind, calls: &[u64], fault: Fault) -> Self {
        self.rules.push(Rule {
            kind,
            fault,
            trigger: Trigger::Calls(calls.to_vec()),
        });
        self
    }

    /// Injects `fault` at each call of `kind` with probability `rate` (clamped to `0.0..=1.0`).
    pub fn rate(mut self, kind: CallKind, rate: f64, fault: Fault) -> Self {
        let trigger = if rate >= 1.0 {
            Trigger::Always
        } else if rate > 0.0 {
            // Saturating cast: the share `rate` of all 2^64 draws.
            Trigger::Rate((rate * 18_446_744_073_709_551_616.0) as u64)
        } else {
            Trigger::Rate(0)
        };
        self.rules.push(Rule {
            kind,
            fault,
            trigger,
        });
        self
    }

    /// Delays every call of `kind` by `delay` before forwarding it.
    pub fn latency(self, kind: CallKind, delay: Duration) -> Self {
        self.rate(kind, 1.0, Fault::Latency(delay))
    }

    /// The latencies of call number `call` of `kind` added up, and the first error fault (in
    /// the order the rules were added) that fires.
    fn decide(&self, kind: CallKind, call: u64) -> Decision {
        let mut decision = Decision::default();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.kind != kind || !self.fires(index, &rule.trigger, call) {
                continue;
            }
            match rule.fault {
                Fault::Latency(delay) => decision.delay = decision.delay.saturating_add(delay),
                fault => {
                    decision.fault.get_or_insert(fault);
                }
            }
        }
        decision
    }

    fn fires(&self, index: usize, trigger: &Trigger, call: u64) -> bool {
        match trigger {
            Trigger::Calls(calls) => calls.contains(&call),
            Trigger::Always => true,
            Trigger::Rate(threshold) => {
                // Each rule has its own splitmix64 stream; the call number is its position.
                let stream = splitmix64(self.seed ^ splitmix64(index as u64));
                splitmix64(stream.wrapping_add(call.wrapping_mul(GOLDEN_GAMMA))) < *threshold
            }
        }
    }
}

/// splitmix64's increment.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 output function: a well-mixed 64-bit value of `z`.
fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Faults a [`Faulty`] backend injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Calls delayed by [`Fault::Latency`].
    pub delayed: u64,
    /// [`Fault::Conflict`] errors returned.
    pub conflicts: u64,
    /// [`Fault::Unavailable`] errors returned.
    pub unavailable: u64,
    /// Commits applied, then reported unknown ([`Fault::UnknownApplied`]).
    pub unknown_applied: u64,
    /// Commits rolled back, then reported unknown ([`Fault::UnknownNotApplied`]).
    pub unknown_not_applied: u64,
}

impl FaultCounts {
    /// Errors injected: every fault but latency.
    pub fn errors(&self) -> u64 {
        self.conflicts + self.unavailable + self.unknown_applied + self.unknown_not_applied
    }
}

#[derive(Debug, Default)]
struct Counters {
    calls: [AtomicU64; 6],
    delayed: AtomicU64,
    conflicts: AtomicU64,
    unavailable: AtomicU64,
    unknown_applied: AtomicU64,
    unknown_not_applied: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    plan: FaultPlan,
    active: AtomicBool,
    counters: Counters,
}

impl Shared {
    /// Numbers this call of `kind` and sleeps its latency; returns the error fault to inject
    /// with the call's number. Inactive, it does nothing.
    async fn before(&self, kind: CallKind) -> Option<(Fault, u64)> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let call = self.counters.calls[kind.index()].fetch_add(1, Ordering::Relaxed) + 1;
        let decision = self.plan.decide(kind, call);
        if !decision.delay.is_zero() {
            self.counters.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(decision.delay).await;
        }
        decision.fault.map(|fault| (fault, call))
    }

    /// Counts `fault`, injected at call number `call` of `kind`, and returns its error.
    fn fail(&self, fault: Fault, kind: CallKind, call: u64) -> TitoError {
        let c = &self.counters;
        let (counter, error): (&AtomicU64, fn(String) -> TitoError) = match fault {
            // Latency never reaches here: `decide` keeps it out of the error fault.
            Fault::Conflict | Fault::Latency(_) => (&c.conflicts, TitoError::Conflict),
            Fault::Unavailable => (&c.unavailable, TitoError::Unavailable),
            Fault::UnknownApplied => (&c.unknown_applied, TitoError::CommitOutcomeUnknown),
            Fault::UnknownNotApplied => (&c.unknown_not_applied, TitoError::CommitOutcomeUnknown),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        error(format!("injected {fault:?} at {kind:?} call {call}"))
    }

    /// Runs the faults of a call that is forwarded only if none fires.
    async fn check(&self, kind: CallKind) -> Result<()> {
        match self.before(kind).await {
            Some((fault, call)) => Err(self.fail(fault, kind, call)),
            None => Ok(()),
        }
    }
}

/// Wraps backend `B`, injecting the faults of a [`FaultPlan`].
#[derive(Debug, Clone)]
pub struct Faulty<B> {
    inner: B,
    shared: Arc<Shared>,
}

impl<B: Backend> Faulty<B> {
    /// Wraps `inner`, injecting `plan`'s faults from the first call on.
    pub fn new(inner: B, plan: FaultPlan) -> Self {
        Faulty {
            inner,
            shared: Arc::new(Shared {
                plan,
                active: AtomicBool::new(true),
                counters: Counters::default(),
            }),
        }
    }

    /// The wrapped backend, which sees no faults.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Turns injection on or off; calls made while it is off pass through and are not numbered.
    pub fn set_active(&self, active: bool) {
        self.shared.active.store(active, Ordering::Relaxed);
    }

    /// Calls numbered so far (made while active), per kind.
    pub fn calls(&self) -> CallCounts {
        let calls = &self.shared.counters.calls;
        let load = |kind: CallKind| calls[kind.index()].load(Ordering::Relaxed);
        CallCounts {
            begin: load(CallKind::Begin),
            get: load(CallKind::Get),
            batch_get: load(CallKind::BatchGet),
            write: load(CallKind::Write),
            scan: load(CallKind::Scan),
            commit: load(CallKind::Commit),
        }
    }

    /// The faults injected so far.
    pub fn injected(&self) -> FaultCounts {
        let c = &self.shared.counters;
        FaultCounts {
            delayed: c.delayed.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
            unknown_applied: c.unknown_applied.load(Ordering::Relaxed),
            unknown_not_applied: c.unknown_not_applied.load(Ordering::Relaxed),
        }
    }
}

impl<B: Backend> Backend for Faulty<B> {
    type Tx = FaultyTx<B::Tx>;

    async fn begin(&self, kind: TxKind) -> Result<Self::Tx> {
        self.shared.check(CallKind::Begin).await?;
        Ok(FaultyTx {
            inner: self.inner.begin(kind).await?,
            shared: self.shared.clone(),
            kind,
        })
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// A transaction of a [`Faulty`] backend.
pub struct FaultyTx<T> {
    inner: T,
    shared: Arc<Shared>,
    kind: TxKind,
}

impl<T: BackendTx> BackendTx for FaultyTx<T> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.shared.check(CallKind::Get).await?;
        self.inner.get(key).await
    }

    async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.shared.check(CallKind::BatchGet).await?;
        self.inner.batch_get(keys).await
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.shared.check(CallKind::Write).await?;
        self.inner.put(key, value).await
    }

    async fn put_unique(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.shared.check(CallKind::Write).await?;
        self.inner.put_unique(key, value).await
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.shared.check(CallKind::Write).await?;
        self.inner.delete(key).await
    }

    async fn single_delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.shared.check(CallKind::Write).await?;
        self.inner.single_delete(key).await
    }

    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.shared.check(CallKind::Scan).await?;
        self.inner.scan(range, limit).await
    }

    async fn scan_many(&mut self, ranges: &[KeyRange], limit: usize) -> Result<Vec<Vec<KvPair>>> {
        self.shared.check(CallKind::Scan).await?;
        self.inner.scan_many(ranges, limit).await
    }

    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.shared.check(CallKind::Scan).await?;
        self.inner.scan_reverse(range, limit).await
    }

    async fn commit(self) -> Result<()> {
        // A read-only snapshot has nothing to send, so nothing to lose.
        if self.kind == TxKind::ReadOnly {
            return self.inner.commit().await;
        }
        let Some((fault, call)) = self.shared.before(CallKind::Commit).await else {
            return self.inner.commit().await;
        };
        if fault == Fault::UnknownApplied {
            // A real failure of the commit itself is reported as it is: nothing was applied.
            self.inner.commit().await?;
        } else {
            self.inner.rollback().await?;
        }
        Err(self.shared.fail(fault, CallKind::Commit, call))
    }

    async fn rollback(self) -> Result<()> {
        self.inner.rollback().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Embedded;

    fn fired(plan: &FaultPlan, kind: CallKind, calls: u64) -> Vec<u64> {
        (1..=calls)
            .filter(|&call| plan.decide(kind, call).fault.is_some())
            .collect()
    }

    #[test]
    fn call_number_faults_fire_exactly_at_those_calls() {
        let plan = FaultPlan::new(7)
            .at(CallKind::Commit, 3, Fault::Conflict)
            .at_calls(CallKind::Commit, &[5, 8], Fault::UnknownApplied)
            .at(CallKind::Get, 1, Fault::Unavailable);
        assert_eq!(fired(&plan, CallKind::Commit, 20), vec![3, 5, 8]);
        assert_eq!(
            plan.decide(CallKind::Commit, 5).fault,
            Some(Fault::UnknownApplied)
        );
        assert_eq!(fired(&plan, CallKind::Get, 20), vec![1]);
        assert!(fired(&plan, CallKind::Scan, 20).is_empty());
    }

    #[test]
    fn the_same_seed_injects_the_same_faults() {
        let plan = |seed| {
            FaultPlan::new(seed)
                .rate(CallKind::Get, 0.2, Fault::Conflict)
                .rate(CallKind::Get, 0.1, Fault::Unavailable)
                .rate(CallKind::Scan, 0.2, Fault::Conflict)
        };
        let draws = |plan: &FaultPlan| -> Vec<Decision> {
            (1..=2_000)
                .map(|call| plan.decide(CallKind::Get, call))
                .collect()
        };
        assert_eq!(draws(&plan(42)), draws(&plan(42)));
        assert_ne!(draws(&plan(42)), draws(&plan(43)));
        // Rules draw independently: the scans' faults are not the gets'.
        assert_ne!(
            fired(&plan(42), CallKind::Get, 2_000),
            fired(&plan(42), CallKind::Scan, 2_000)
        );
        let conflicts = fired(&plan(42), CallKind::Scan, 10_000);
        assert!(
            (1_700..2_300).contains(&conflicts.len()),
            "{}",
            conflicts.len()
        );
    }

    #[test]
    fn rates_of_zero_and_one_never_and_always_fire() {
        let plan = FaultPlan::new(1)
            .rate(CallKind::Get, 0.0, Fault::Conflict)
            .rate(CallKind::Scan, 1.0, Fault::Unavailable)
            .latency(CallKind::Scan, Duration::from_millis(2))
            .latency(CallKind::Scan, Duration::from_millis(3));
        assert!(fired(&plan, CallKind::Get, 1_000).is_empty());
        assert_eq!(fired(&plan, CallKind::Scan, 1_000).len(), 1_000);
        assert_eq!(
            plan.decide(CallKind::Scan, 9),
            Decision {
                delay: Duration::from_millis(5),
                fault: Some(Fault::Unavailable),
            }
        );
    }

    async fn committed(backend: &Embedded, key: &[u8]) -> Option<Vec<u8>> {
        let mut tx = backend.begin(TxKind::ReadOnly).await.unwrap();
        tx.get(key).await.unwrap()
    }

    async fn write(backend: &Faulty<Embedded>, key: &[u8]) -> Result<()> {
        let mut tx = backend.begin(TxKind::Optimistic).await?;
        tx.put(key.to_vec(), b"v".to_vec()).await?;
        tx.commit().await
    }

    #[tokio::test]
    async fn failed_commits_leave_nothing_and_an_applied_unknown_commit_lands() {
        let inner = Embedded::temporary_builder().open_backend().unwrap();
        let plan = FaultPlan::new(0)
            .at(CallKind::Commit, 1, Fault::Conflict)
            .at(CallKind::Commit, 2, Fault::Unavailable)
            .at(CallKind::Commit, 3, Fault::UnknownNotApplied)
            .at(CallKind::Commit, 4, Fault::UnknownApplied);
        let faulty = Faulty::new(inner.clone(), plan);
        let e = write(&faulty, b"k1").await.unwrap_err();
        assert!(matches!(e, TitoError::Conflict(_)), "{e:?}");
        let e = write(&faulty, b"k2").await.unwrap_err();
        assert!(matches!(e, TitoError::Unavailable(_)), "{e:?}");
        let e = write(&faulty, b"k3").await.unwrap_err();
        assert!(matches!(e, TitoError::CommitOutcomeUnknown(_)), "{e:?}");
        let e = write(&faulty, b"k4").await.unwrap_err();
        assert!(matches!(e, TitoError::CommitOutcomeUnknown(_)), "{e:?}");
        write(&faulty, b"k5").await.unwrap();
        for key in [b"k1", b"k2", b"k3"] {
            assert_eq!(committed(&inner, key).await, None);
        }
        assert!(committed(&inner, b"k4").await.is_some());
        assert!(committed(&inner, b"k5").await.is_some());
        assert_eq!(
            faulty.injected(),
            FaultCounts {
                delayed: 0,
                conflicts: 1,
                unavailable: 1,
                unknown_applied: 1,
                unknown_not_applied: 1,
            }
        );
        assert_eq!(faulty.calls().commit, 5);
    }

    #[tokio::test]
    async fn read_faults_are_returned_before_forwarding_and_latency_delays() {
        let inner = Embedded::temporary_builder().open_backend().unwrap();
        let plan = FaultPlan::new(0)
            .at(CallKind::Begin, 1, Fault::Unavailable)
            .at(CallKind::Get, 1, Fault::Conflict)
            .at(CallKind::Write, 1, Fault::Unavailable)
            .latency(CallKind::Scan, Duration::from_millis(20));
        let faulty = Faulty::new(inner.clone(), plan);
        assert!(matches!(
            faulty.begin(TxKind::Optimistic).await,
            Err(TitoError::Unavailable(_))
        ));
        let mut tx = faulty.begin(TxKind::Optimistic).await.unwrap();
        assert!(matches!(tx.get(b"k").await, Err(TitoError::Conflict(_))));
        assert_eq!(tx.get(b"k").await.unwrap(), None);
        let failed = tx.put(b"k".to_vec(), b"lost".to_vec()).await;
        assert!(matches!(failed, Err(TitoError::Unavailable(_))));
        assert_eq!(
            tx.get(b"k").await.unwrap(),
            None,
            "the write was not forwarded"
        );
        let started = std::time::Instant::now();
        tx.scan(KeyRange::prefix(b"k"), 10).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
        tx.rollback().await.unwrap();
        let counts = faulty.injected();
        assert_eq!((counts.errors(), counts.delayed), (3, 1));
    }

    #[tokio::test]
    async fn an_inactive_wrapper_passes_calls_through_unnumbered() {
        let inner = Embedded::temporary_builder().open_backend().unwrap();
        let plan = FaultPlan::new(0).at(CallKind::Commit, 1, Fault::Conflict);
        let faulty = Faulty::new(inner, plan);
        faulty.set_active(false);
        write(&faulty, b"a").await.unwrap();
        assert_eq!(faulty.calls(), CallCounts::default());
        faulty.set_active(true);
        assert!(
            write(&faulty, b"b").await.is_err(),
            "the first numbered commit"
        );
        write(&faulty, b"c").await.unwrap();
        assert_eq!(faulty.injected().conflicts, 1);
    }
}
