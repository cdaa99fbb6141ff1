//! Queue benchmark: publish -> handle -> acknowledge, on the embedded backend, optionally with a
//! network round trip added to every call that would cross the network on TiKV.
//!
//! ```text
//! cargo run --release -p tito-queue --example queue_bench -- \
//!     [--rtt 1ms] [--events N] [--per-tx N] [--history N] [--linger 0ms] [events] [per_tx]
//! ```
//!
//! Every run opens a fresh temporary database as `Latency<Counting<AnyBackend>>`: `--rtt`
//! (default 0; `0`, `500us`, `1ms`, `2.5ms`) is added to each begin, read, scan and read-write
//! commit, and the counts give the round trips the worker made. Built with `--features tikv` and
//! run with `TITO_TIKV_PD` set, the database is a fresh namespace on that TiKV cluster and only
//! the networked measures run (the throughput and paced runs are for the embedded engine).
//!
//! With `--rtt 0` (skipped otherwise: they would take minutes):
//! 1. publish only: `events` (default 100,000) inserts with events, `per_tx` (default 100)
//!    records per transaction, 2 publishers;
//! 2. drain only: a worker (concurrency 8, batches of 512, polling every 5 ms, lingering
//!    `--linger`, default 0) handles run 1's backlog;
//! 3. end to end: publishers and that worker run together, as fast as they can; events over the
//!    time until the worker stopped.
//!
//! Each line gives the phase's CPU time per event (the whole process, from `/proc/self/stat`),
//! which a busy machine disturbs far less than the rates, and the publish transactions begun.
//!
//! Paced (at rtt 0, or with `--history`): one event per transaction at 2,000 events/s, with the
//! handling latency (handling time minus the event's `created_at`, p50/p99) on a fresh database
//! and on one that has handled a history of events whose deleted keys are not compacted yet:
//! `--history N` publishes and drains N events first; without it, at rtt 0, the history is run 3.
//!
//! Always, with a worker of default settings, each on a fresh database (bounded by timeouts, so a
//! slow queue still finishes):
//! - drain: 3,000 events over 600 partition keys, published before the worker starts; events/s
//!   from the worker's start to the 3,000th handler call, and the round trips per 1,000 events;
//! - idle: the round trips per second of a worker holding all 1024 partitions of an empty queue;
//! - pickup: 20 single events published one at a time while that worker is idle; the wait from
//!   just before the publishing transaction began to the handler call, median and max.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tito_core::backend::any::TIKV_PD_ENV;
use tito_core::backend::{CallCounts, Counting, Latency};
use tito_core::event::micros_since_epoch;
use tito_core::{
    AnyBackend, Backend, Embedded, RetryPolicy, TitoEngine, TitoError, TitoEventConfig,
    TitoModelTrait, TitoOperation, TitoOptions,
};
use tito_queue::{TitoQueue, Worker, WorkerHandle};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tick {
    id: String,
    key: String,
    n: u64,
}

impl TitoModelTrait for Tick {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "tick".into()
    }
    fn events(&self) -> Vec<TitoEventConfig> {
        vec![TitoEventConfig {
            name: "tick".into(),
        }]
    }
    fn partition_key(&self) -> String {
        self.key.clone()
    }
}

/// Event `n` on one of `keys` partition keys.
fn tick(n: u64, keys: u64) -> Tick {
    Tick {
        id: format!("t{n}"),
        key: format!("k{}", n % keys),
        n,
    }
}

type Db = TitoEngine<Latency<Counting<AnyBackend>>>;

const PUBLISHERS: u64 = 2;
const KEYS: u64 = 4096;
/// Events published at 2,000 per second by a paced run.
const PACED: u64 = 10_000;
/// Networked drain: events and partition keys (8 setup publishers, one key each).
const DRAIN_EVENTS: u64 = 3_000;
const DRAIN_KEYS: u64 = 600;
const PICKUPS: u64 = 20;
const IDLE_WINDOW: Duration = Duration::from_secs(5);
/// Timeouts: a networked drain, the long drains at rtt 0, waiting for leases, one pickup,
/// stopping a worker.
const NETWORKED_DRAIN_LIMIT: Duration = Duration::from_secs(60);
const LONG_DRAIN_LIMIT: Duration = Duration::from_secs(600);
const LEASE_LIMIT: Duration = Duration::from_secs(30);
const PICKUP_LIMIT: Duration = Duration::from_secs(10);
const STOP_LIMIT: Duration = Duration::from_secs(30);

struct Args {
    rtt: Duration,
    events: u64,
    per_tx: u64,
    history: Option<u64>,
    linger: Duration,
}

const USAGE: &str = "usage: queue_bench [--rtt 1ms] [--events N] [--per-tx N] [--history N] \
                     [--linger 0ms] [events] [per_tx]";

fn parse_args() -> Result<Args, String> {
    let mut parsed = Args {
        rtt: Duration::ZERO,
        events: 100_000,
        per_tx: 100,
        history: None,
        linger: Duration::ZERO,
    };
    let mut positional = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.into())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--rtt" => parsed.rtt = parse_duration(&value()?)?,
            "--events" => parsed.events = parse_count(&value()?)?,
            "--per-tx" => parsed.per_tx = parse_count(&value()?)?.max(1),
            "--history" => parsed.history = Some(parse_count(&value()?)?),
            "--linger" => parsed.linger = parse_duration(&value()?)?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ if flag.starts_with('-') => return Err(format!("unknown flag {flag}\n{USAGE}")),
            _ => {
                match positional {
                    0 => parsed.events = parse_count(&arg)?,
                    1 => parsed.per_tx = parse_count(&arg)?.max(1),
                    _ => return Err(format!("unexpected argument {arg}\n{USAGE}")),
                }
                positional += 1;
            }
        }
    }
    Ok(parsed)
}

/// A count such as `20000`, `20_000` or `20,000`.
fn parse_count(text: &str) -> Result<u64, String> {
    text.replace(['_', ','], "")
        .parse()
        .map_err(|_| format!("not a count: {text:?}"))
}

/// A duration such as `1ms`, `500us`, `2.5ms`, `1s` or `0`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("not a duration: {text:?} (try 1ms, 500us, 2.5ms, 0)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let nanos_per_unit = match unit {
        "" if value == 0.0 => 0.0,
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return Err(bad()),
    };
    let nanos = (value * nanos_per_unit).round();
    if !nanos.is_finite() || nanos >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// A fresh temporary database whose round trips cost `rtt`.
async fn open(rtt: Duration) -> Result<Db, TitoError> {
    let backend = AnyBackend::from_env_backend(Embedded::temporary_builder()).await?;
    TitoEngine::new(Latency::new(Counting::new(backend), rtt)).await
}

/// The round trips counted on `db` since the last call, which starts the count again.
fn take_counts(db: &Db) -> CallCounts {
    db.backend().inner().take()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Publishes events `range` on `keys` partition keys, `per_tx` per transaction, from
/// `publishers` concurrent tasks (event `n` goes to publisher `n % publishers`).
/// Publish transactions begun, retries included.
static PUBLISH_ATTEMPTS: AtomicU64 = AtomicU64::new(0);

async fn publish<B: Backend>(
    db: &TitoEngine<B>,
    range: Range<u64>,
    per_tx: u64,
    keys: u64,
    publishers: u64,
) -> Result<(), TitoError> {
    let model = db.clone().model::<Tick>();
    let mut tasks = Vec::new();
    for publisher in 0..publishers {
        let (db, model, range) = (db.clone(), model.clone(), range.clone());
        tasks.push(tokio::spawn(async move {
            let mine: Vec<u64> = range.filter(|n| n % publishers == publisher).collect();
            for chunk in mine.chunks(per_tx.max(1) as usize) {
                db.transaction_with_retry(RetryPolicy::default(), |tx| {
                    let model = model.clone();
                    PUBLISH_ATTEMPTS.fetch_add(1, Ordering::Relaxed);
                    async move {
                        for &n in chunk {
                            let options = TitoOptions::with_events(TitoOperation::Insert);
                            model
                                .build_with_options(tick(n, keys), options, &tx)
                                .await?;
                        }
                        Ok::<_, TitoError>(())
                    }
                })
                .await?;
            }
            Ok::<_, TitoError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(TitoError::custom)??;
    }
    Ok(())
}

/// Publishes `record` alone in its own transaction.
async fn publish_one<B: Backend>(db: &TitoEngine<B>, record: Tick) -> Result<(), TitoError> {
    let model = db.clone().model::<Tick>();
    db.transaction_with_retry(RetryPolicy::default(), |tx| {
        let (model, record) = (model.clone(), record.clone());
        async move {
            let options = TitoOptions::with_events(TitoOperation::Insert);
            model
                .build_with_options(record, options, &tx)
                .await
                .map(drop)
        }
    })
    .await
}

/// The worker of the rtt-0 throughput and paced runs.
fn tuned<B: Backend>(db: &TitoEngine<B>, linger: Duration) -> Worker<B> {
    Worker::new(TitoQueue::new(db.clone()), "tick")
        .concurrency(8)
        .batch_size(512)
        .poll_interval(Duration::from_millis(5))
        .linger(linger)
}

/// What a drain saw.
#[derive(Default)]
struct Drained {
    /// Handling latencies in micros (handler call minus `created_at`), sorted.
    latencies: Vec<u64>,
    /// From the worker's start to the last expected handler call; `None` if it never came.
    took: Option<Duration>,
}

/// Starts `worker` and waits (up to `limit`) until its handler was called `events` times.
/// Returns the running worker: stop it with [`stop`].
async fn drain<B: Backend>(
    worker: Worker<B>,
    events: u64,
    limit: Duration,
) -> (Drained, WorkerHandle) {
    let seen = Arc::new(Mutex::new(Drained::default()));
    let done = Arc::new(tokio::sync::Notify::new());
    let start = Instant::now();
    let handle = {
        let (seen, done) = (seen.clone(), done.clone());
        worker.run(move |event| {
            let now = micros_since_epoch(SystemTime::now());
            let mut seen = lock(&seen);
            seen.latencies.push(now.saturating_sub(event.created_at));
            if seen.latencies.len() as u64 == events {
                seen.took = Some(start.elapsed());
                done.notify_one();
            }
            Box::pin(async { Ok(()) })
        })
    };
    // A timeout leaves `took` empty; the caller reports how far the drain got.
    let _ = tokio::time::timeout(limit, done.notified()).await;
    let mut seen = std::mem::take(&mut *lock(&seen));
    seen.latencies.sort_unstable();
    (seen, handle)
}

/// Stops `worker`, aborting it if it does not stop within [`STOP_LIMIT`].
async fn stop(mut worker: WorkerHandle) -> Result<(), TitoError> {
    worker.stop();
    match tokio::time::timeout(STOP_LIMIT, &mut worker).await {
        Ok(result) => result,
        Err(_) => {
            println!("  (the worker did not stop within {STOP_LIMIT:?}: aborted)");
            worker.abort();
            Ok(())
        }
    }
}

fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// An rtt as given on the command line: `0`, `500µs`, `1ms`.
fn show(rtt: Duration) -> String {
    if rtt.is_zero() {
        "0".into()
    } else {
        format!("{rtt:?}")
    }
}

fn rate(events: u64, took: Duration) -> String {
    let per_second = events as f64 / took.as_secs_f64();
    format!("{per_second:>8.0} events/s ({events} in {took:.2?})")
}

/// A phase being measured: its wall time and the CPU time the whole process spends in it,
/// which a busy machine disturbs far less than the wall time.
struct Phase {
    start: Instant,
    cpu: Option<Duration>,
    attempts: u64,
}

impl Phase {
    fn start() -> Self {
        Phase {
            start: Instant::now(),
            cpu: cpu_time(),
            attempts: PUBLISH_ATTEMPTS.load(Ordering::Relaxed),
        }
    }

    /// Its rate over `events`, with the publish transactions it began (retries included) and
    /// its CPU time per event where the system reports it.
    fn rate(&self, events: u64) -> String {
        let rate = rate(events, self.start.elapsed());
        let rate = match PUBLISH_ATTEMPTS.load(Ordering::Relaxed) - self.attempts {
            0 => rate,
            attempts => format!("{rate}, {attempts} publish attempts"),
        };
        match (self.cpu, cpu_time()) {
            (Some(before), Some(after)) => {
                let cpu = after.saturating_sub(before);
                let per_event = cpu.as_secs_f64() * 1e6 / events as f64;
                format!("{rate}, cpu {cpu:.2?} ({per_event:.1} us/event)")
            }
            _ => rate,
        }
    }
}

/// The user and system CPU time of this process so far, on Linux (`/proc/self/stat`, in
/// clock ticks of 10 ms, the kernel's USER_HZ on every mainstream architecture).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// How far a drain that gave up got.
fn gave_up(drained: &Drained, events: u64, limit: Duration) -> String {
    format!(
        "gave up after {limit:?}: {} of {events} events handled",
        drained.latencies.len()
    )
}

fn latency(sorted: &[u64]) -> String {
    let at = |p| Duration::from_micros(percentile(sorted, p));
    format!(
        "p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

#[tokio::main]
async fn main() -> Result<(), TitoError> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) if message == USAGE => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let (rtt, events, per_tx) = (args.rtt, args.events, args.per_tx);
    let probe = open(rtt).await?;
    let embedded = matches!(probe.backend().inner().inner(), AnyBackend::Embedded(_));
    drop(probe);
    if !embedded {
        println!("queue_bench: on TiKV ({TIKV_PD_ENV}), networked measures only");
        return networked(rtt).await;
    }
    let history = match args.history {
        Some(0) => "none".into(),
        Some(n) => format!("{n} events"),
        None if rtt.is_zero() => "run 3".into(),
        None => "none".into(),
    };
    let runs = if rtt.is_zero() {
        format!(
            "{events} events, {per_tx} per publish transaction, {PUBLISHERS} publishers, \
             {KEYS} partition keys"
        )
    } else {
        "throughput runs skipped (rtt > 0)".into()
    };
    println!(
        "queue_bench: rtt {}; {runs}; paced history: {history}",
        show(rtt)
    );

    // Run 3's database, the default history of the paced run.
    let mut after_run_3 = None;
    if rtt.is_zero() {
        let db = open(rtt).await?;
        let phase = Phase::start();
        publish(&db, 0..events, per_tx, KEYS, PUBLISHERS).await?;
        println!("publish only:  {}", phase.rate(events));
        let phase = Phase::start();
        let (drained, worker) = drain(tuned(&db, args.linger), events, LONG_DRAIN_LIMIT).await;
        stop(worker).await?;
        match drained.took {
            Some(_) => println!("drain only:    {}", phase.rate(events)),
            None => println!(
                "drain only:    {}",
                gave_up(&drained, events, LONG_DRAIN_LIMIT)
            ),
        }

        let db = open(rtt).await?;
        let phase = Phase::start();
        let consumer = tokio::spawn({
            let db = db.clone();
            async move {
                let (drained, worker) =
                    drain(tuned(&db, args.linger), events, LONG_DRAIN_LIMIT).await;
                stop(worker).await.map(|()| drained)
            }
        });
        publish(&db, 0..events, per_tx, KEYS, PUBLISHERS).await?;
        let drained = consumer.await.map_err(TitoError::custom)??;
        match drained.took {
            Some(_) => println!("end to end:    {}", phase.rate(events)),
            None => println!(
                "end to end:    {}",
                gave_up(&drained, events, LONG_DRAIN_LIMIT)
            ),
        }
        println!("  latency: {}", latency(&drained.latencies));
        after_run_3 = Some(db);
    }

    let used = match args.history {
        Some(0) => None,
        Some(n) => {
            let db = open(rtt).await?;
            publish(&db, 0..n, per_tx, KEYS, PUBLISHERS).await?;
            let (drained, worker) = drain(tuned(&db, Duration::ZERO), n, LONG_DRAIN_LIMIT).await;
            stop(worker).await?;
            if drained.took.is_none() {
                println!("history: {}", gave_up(&drained, n, LONG_DRAIN_LIMIT));
            }
            Some((db, n))
        }
        None => after_run_3.map(|db| (db, events)),
    };
    if let Some((used, handled)) = used {
        let fresh = paced(open(rtt).await?, 0).await?;
        println!("paced 2k/s, fresh:        {}", latency(&fresh));
        let after = paced(used, handled).await?;
        let ratio = percentile(&after, 0.5) as f64 / percentile(&fresh, 0.5).max(1) as f64;
        println!(
            "paced 2k/s, after {handled}: {}  (p50 x{ratio:.1} of fresh)",
            latency(&after)
        );
    }

    networked(rtt).await
}

/// Publishes [`PACED`] events numbered from `first`, one per transaction, at 2,000 per second
/// (each from its own task, so a slow round trip does not slow the pace) while a worker handles
/// them; returns the sorted handling latencies in micros.
async fn paced(db: Db, first: u64) -> Result<Vec<u64>, TitoError> {
    let consumer = tokio::spawn({
        let db = db.clone();
        async move {
            let (drained, worker) =
                drain(tuned(&db, Duration::ZERO), PACED, NETWORKED_DRAIN_LIMIT).await;
            stop(worker).await.map(|()| drained)
        }
    });
    let mut ticker = tokio::time::interval(Duration::from_micros(500));
    let mut publishers = Vec::new();
    for n in first..first + PACED {
        ticker.tick().await;
        let db = db.clone();
        publishers.push(tokio::spawn(async move {
            publish_one(&db, tick(n, KEYS)).await
        }));
    }
    for publisher in publishers {
        publisher.await.map_err(TitoError::custom)??;
    }
    let drained = consumer.await.map_err(TitoError::custom)??;
    if drained.took.is_none() {
        println!(
            "  paced: {}",
            gave_up(&drained, PACED, NETWORKED_DRAIN_LIMIT)
        );
    }
    Ok(drained.latencies)
}

/// The three measures of a worker with default settings, as a networked deployment pays them.
async fn networked(rtt: Duration) -> Result<(), TitoError> {
    println!(
        "networked, rtt {}, default worker settings, fresh database each:",
        show(rtt)
    );

    // Drain.
    let db = open(rtt).await?;
    publish(&db, 0..DRAIN_EVENTS, 100, DRAIN_KEYS, 8).await?;
    take_counts(&db);
    let worker = Worker::new(TitoQueue::new(db.clone()), "tick");
    let (drained, worker) = drain(worker, DRAIN_EVENTS, NETWORKED_DRAIN_LIMIT).await;
    let counts = take_counts(&db);
    stop(worker).await?;
    let handled = drained.latencies.len() as u64;
    let per_1k = |n: u64| n * 1_000 / handled.max(1);
    let reached = match drained.took {
        Some(took) => rate(DRAIN_EVENTS, took),
        None => gave_up(&drained, DRAIN_EVENTS, NETWORKED_DRAIN_LIMIT),
    };
    println!(
        "  drain   {reached}, {DRAIN_KEYS} keys; per 1,000 events: {} round trips, {} begins",
        per_1k(counts.round_trips()),
        per_1k(counts.begin)
    );

    // Idle, then pickup, with the same worker.
    let db = open(rtt).await?;
    let published: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (called, mut waits) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let worker = {
        let published = published.clone();
        Worker::new(TitoQueue::new(db.clone()), "tick").run(move |event| {
            let now = Instant::now();
            // A redelivery finds nothing: each event is timed once.
            if let Some(at) = lock(&published).remove(&event.record_id) {
                let _ = called.send(now - at);
            }
            Box::pin(async { Ok(()) })
        })
    };
    let start = Instant::now();
    while worker.stats().leases_acquired < 1024 && start.elapsed() < LEASE_LIMIT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leases = worker.stats().leases_acquired;
    let leased_in = start.elapsed();
    take_counts(&db);
    tokio::time::sleep(IDLE_WINDOW).await;
    let counts = take_counts(&db);
    let per_second = |n: u64| n as f64 / IDLE_WINDOW.as_secs_f64();
    println!(
        "  idle    {:>8.0} round trips/s, {:.0} begins/s ({leases} leases after {leased_in:.2?})",
        per_second(counts.round_trips()),
        per_second(counts.begin)
    );

    let mut pickups = Vec::new();
    for n in 0..PICKUPS {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let record = Tick {
            id: format!("pickup-{n}"),
            key: format!("pickup-{n}"),
            n,
        };
        lock(&published).insert(record.id.clone(), Instant::now());
        publish_one(&db, record).await?;
        if let Ok(Some(wait)) = tokio::time::timeout(PICKUP_LIMIT, waits.recv()).await {
            pickups.push(wait);
        }
    }
    stop(worker).await?;
    pickups.sort_unstable();
    let missed = match PICKUPS - pickups.len() as u64 {
        0 => String::new(),
        missed => format!(", {missed} not handled within {PICKUP_LIMIT:?}"),
    };
    println!(
        "  pickup  median {:.2?}  max {:.2?} ({} single events{missed})",
        percentile(&pickups, 0.5),
        percentile(&pickups, 1.0),
        pickups.len()
    );
    Ok(())
}
