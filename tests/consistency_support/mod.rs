//! The checker's shared pieces: seeds and scale from the environment, a seeded generator, the
//! faulty database every workload runs on, operation outcomes and time spans for histories, and
//! the verdict that prints anomalies with the seed and a reproduction hint.
//!
//! A workload runs clients concurrently on tito's public API and records what each operation
//! asked, when it was invoked and completed, and what it got back. A checker then judges the
//! history alone (a pure function, so each has a unit test fed a hand-made anomaly).
#![allow(dead_code)]

pub mod bank;
pub mod counters;
pub mod list_append;
pub mod queue_order;
pub mod unique;

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use tito::backend::{CallKind, Embedded, Fault, FaultCounts, FaultPlan, Faulty};
use tito::{RetryPolicy, TitoEngine, TitoError};

/// The engine the workloads drive: every call may be delayed or fail.
pub type FaultyDb = TitoEngine<Faulty<Embedded>>;

/// An engine on the same store that sees no faults: to seed data and read final states.
pub type PlainDb = TitoEngine<Embedded>;

/// Seeds every workload runs when `TITO_CHECK_SEEDS` is not set. `0xf` injects an unknown
/// commit outcome while queue workers register their group, which once ended a worker for good.
pub const DEFAULT_SEEDS: [u64; 3] = [0x5EED_0004, 0x5EED_0019, 0xf];

/// The seeds to run: `TITO_CHECK_SEEDS` (comma-separated, decimal or `0x` hex), else the
/// defaults.
pub fn seeds() -> Vec<u64> {
    match std::env::var("TITO_CHECK_SEEDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => s.parse(),
                },
            )
            .map(|seed| seed.expect("TITO_CHECK_SEEDS holds comma-separated u64 seeds"))
            .collect(),
        _ => DEFAULT_SEEDS.to_vec(),
    }
}

/// `n` operations multiplied by `TITO_CHECK_SCALE` (default 1), at least 1.
pub fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("TITO_CHECK_SCALE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    ((n as f64 * scale).round() as usize).max(1)
}

/// A small deterministic generator (splitmix64) for the workloads' own choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An independent stream for a client task, so tasks do not share one generator.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// Latency, conflicts, transient errors and unknown commit outcomes (applied and not) at seeded
/// rates on every kind of call: what a networked store does on a bad day.
pub fn fault_plan(seed: u64) -> FaultPlan {
    let mut plan = FaultPlan::new(seed);
    for kind in CallKind::ALL {
        plan = plan
            .rate(kind, 0.02, Fault::Conflict)
            .rate(kind, 0.02, Fault::Unavailable)
            .rate(kind, 0.05, Fault::Latency(Duration::from_micros(500)));
    }
    plan.rate(CallKind::Commit, 0.04, Fault::UnknownApplied)
        .rate(CallKind::Commit, 0.04, Fault::UnknownNotApplied)
}

/// A fresh embedded database in a temporary folder, wrapped in `Faulty` with `plan`: the
/// faulty backend (to switch injection and count faults), the faulty engine and a fault-free
/// engine on the same store. Injection starts off, so a workload seeds its data first.
pub async fn databases(plan: FaultPlan) -> (Faulty<Embedded>, FaultyDb, PlainDb) {
    let inner = Embedded::temporary_builder().open_backend().unwrap();
    let plain = TitoEngine::new(inner.clone()).await.unwrap();
    let faulty = Faulty::new(inner, plan);
    faulty.set_active(false);
    let db = TitoEngine::new(faulty.clone()).await.unwrap();
    (faulty, db, plain)
}

/// The retrying runner's policy for the workloads: enough attempts that most operations get
/// through the injected faults and real conflicts, short waits to keep the run brief.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 25,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(16),
    }
}

/// Sleeps 0 to 3 ms (or only yields) between the steps of a transaction, so that concurrent
/// transactions interleave at different points on every run.
pub async fn jitter(rng: &mut Rng) {
    match rng.below(4) {
        0 => {}
        1 => tokio::task::yield_now().await,
        n => tokio::time::sleep(Duration::from_micros(n * 700 + rng.below(700))).await,
    }
}

/// The error a client returns to abort its own transaction: the runner rolls back and does not
/// retry it, and nothing it wrote may ever be seen.
pub fn abort_error() -> TitoError {
    TitoError::custom("workload abort")
}

/// How an operation ended, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed.
    Ok,
    /// `CommitOutcomeUnknown`: maybe applied.
    Unknown,
    /// The client aborted it on purpose: never applied.
    Aborted,
    /// Failed with this error: never applied.
    Failed(String),
}

impl Outcome {
    pub fn of<T>(result: &Result<T, TitoError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(TitoError::CommitOutcomeUnknown(_)) => Outcome::Unknown,
            Err(TitoError::Custom(message)) if message == "workload abort" => Outcome::Aborted,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// Whether the operation may have been applied (committed or unknown).
    pub fn maybe_applied(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Unknown)
    }
}

/// When an operation ran: micros since the workload started, from invocation to completion.
/// A commit happened inside it, if at all: the checkers use it for real-time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub invoked: u64,
    pub completed: u64,
}

impl Span {
    /// Whether this operation surely ended before `later` began.
    pub fn before(&self, later: &Span) -> bool {
        self.completed < later.invoked
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        !self.before(other) && !other.before(self)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}..{}us]", self.invoked, self.completed)
    }
}

/// The workload's clock: spans are measured from its start.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Clock(Instant::now())
    }

    pub fn now(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }

    /// Runs `op`, returning its result and its span.
    pub async fn time<T>(&self, op: impl Future<Output = T>) -> (T, Span) {
        let invoked = self.now();
        let value = op.await;
        (
            value,
            Span {
                invoked,
                completed: self.now(),
            },
        )
    }
}

/// One violation a checker found, with the history excerpt that shows it: the operations
/// touching the offending key or value.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub what: String,
    pub excerpt: Vec<String>,
}

impl Anomaly {
    pub fn new(what: impl Into<String>, excerpt: Vec<String>) -> Self {
        Anomaly {
            what: what.into(),
            excerpt,
        }
    }
}

/// What one run of a workload produced: its size, what the faults did, and what the checker
/// found.
#[derive(Debug, Default)]
pub struct RunReport {
    pub operations: usize,
    /// Operations whose commit outcome was unknown.
    pub unknown: usize,
    /// Operations that failed (faults outlasting the retries, typed refusals, aborts).
    pub failed: usize,
    pub injected: FaultCounts,
    /// Workload-specific counts for the summary line.
    pub notes: String,
    pub anomalies: Vec<Anomaly>,
}

/// The most excerpt lines printed per anomaly.
const EXCERPT_LINES: usize = 40;

/// Runs `workload` once per seed, prints one summary line, and panics after printing every
/// anomaly with its seed, workload and history excerpt.
pub async fn check_workload<F, Fut>(name: &str, test: &str, run: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = RunReport>,
{
    let (mut operations, mut unknown, mut failed, mut anomalies) = (0, 0, 0, 0);
    let mut failing = Vec::new();
    let seeds = seeds();
    for &seed in &seeds {
        let report = run(seed).await;
        eprintln!(
            "consistency {name} seed {seed:#x}: {} operations ({} unknown, {} failed), {}; \
             injected {:?}",
            report.operations, report.unknown, report.failed, report.notes, report.injected
        );
        operations += report.operations;
        unknown += report.unknown;
        failed += report.failed;
        anomalies += report.anomalies.len();
        if !report.anomalies.is_empty() {
            print_anomalies(name, test, seed, &report.anomalies);
            failing.push(seed);
        }
    }
    eprintln!(
        "consistency {name}: {} histories, {operations} operations ({unknown} unknown, {failed} \
         failed), {anomalies} anomalies",
        seeds.len()
    );
    assert!(
        failing.is_empty(),
        "{name}: anomalies with seeds {failing:x?} (details above)"
    );
}

fn print_anomalies(name: &str, test: &str, seed: u64, anomalies: &[Anomaly]) {
    eprintln!(
        "=== consistency {name}: {} anomalies, seed {seed:#x}",
        anomalies.len()
    );
    for anomaly in anomalies.iter().take(10) {
        eprintln!("--- {}", anomaly.what);
        for line in anomaly.excerpt.iter().take(EXCERPT_LINES) {
            eprintln!("    {line}");
        }
        if anomaly.excerpt.len() > EXCERPT_LINES {
            eprintln!("    ... {} more", anomaly.excerpt.len() - EXCERPT_LINES);
        }
    }
    eprintln!(
        "=== reproduce: TITO_CHECK_SEEDS={seed:#x} cargo test --all-features --test consistency \
         {test} (the faults are seeded; the interleaving is not, so rerun a few times)"
    );
}
