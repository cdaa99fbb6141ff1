//! End-to-end queue benchmark on the embedded backend: publish -> handle -> acknowledge.
//!
//! Run with `cargo run --release -p tito-queue --example queue_bench [events] [per_tx]`.
//!
//! Three runs, each on a fresh temporary database:
//! 1. publish only: `events` inserts with events, `per_tx` records per transaction;
//! 2. drain only: a worker handles the backlog left by run 1;
//! 3. live: publishers and a worker run together, as fast as they can; throughput is events
//!    over the time until the last acknowledgement;
//! 4. paced: one event per transaction at 2,000 events/s, to show handling latency (handling
//!    time minus publish time, p50/p99) when the worker keeps up: on a fresh database, then on
//!    the database of run 3, whose handled events left deleted keys behind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tito_core::event::micros_since_epoch;
use tito_core::{
    Embedded, RetryPolicy, TitoEngine, TitoError, TitoEventConfig, TitoModelTrait, TitoOperation,
    TitoOptions,
};
use tito_queue::{TitoQueue, Worker};

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

const PUBLISHERS: u64 = 2;
const KEYS: u64 = 4096;

async fn publish(db: &TitoEngine, events: u64, per_tx: u64) -> Result<(), TitoError> {
    let model = db.clone().model::<Tick>();
    let mut tasks = Vec::new();
    for publisher in 0..PUBLISHERS {
        let (db, model) = (db.clone(), model.clone());
        tasks.push(tokio::spawn(async move {
            let mine: Vec<u64> = (0..events)
                .filter(|n| n % PUBLISHERS == publisher)
                .collect();
            for chunk in mine.chunks(per_tx.max(1) as usize) {
                db.transaction_with_retry(RetryPolicy::default(), |tx| {
                    let model = model.clone();
                    async move {
                        for &n in chunk {
                            let tick = Tick {
                                id: format!("t{n}"),
                                key: format!("k{}", n % KEYS),
                                n,
                            };
                            let options = TitoOptions::with_events(TitoOperation::Insert);
                            model.build_with_options(tick, options, &tx).await?;
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

/// Runs a worker until `events` were handled; returns the sorted handling latencies in micros.
async fn drain(queue: Arc<TitoQueue>, events: u64) -> Result<Vec<u64>, TitoError> {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(events as usize)));
    let done = Arc::new(tokio::sync::Notify::new());
    let worker = {
        let (latencies, done) = (latencies.clone(), done.clone());
        Worker::new(queue, "tick")
            .concurrency(8)
            .batch_size(512)
            .poll_interval(Duration::from_millis(5))
            .run(move |event| {
                let now = micros_since_epoch(SystemTime::now());
                let mut all = latencies.lock().expect("latencies");
                all.push(now.saturating_sub(event.created_at));
                if all.len() as u64 == events {
                    done.notify_one();
                }
                Box::pin(async { Ok(()) })
            })
    };
    done.notified().await;
    worker.shutdown().await?;
    let mut all = latencies.lock().expect("latencies").clone();
    all.sort_unstable();
    Ok(all)
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Duration::from_micros(sorted.get(i).copied().unwrap_or(0))
}

fn rate(events: u64, took: Duration) -> String {
    let per_second = events as f64 / took.as_secs_f64();
    format!("{per_second:>8.0} events/s ({events} in {took:.2?})")
}

#[tokio::main]
async fn main() -> Result<(), TitoError> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let events = args.next().and_then(Result::ok).unwrap_or(100_000);
    let per_tx = args.next().and_then(Result::ok).unwrap_or(100);
    println!(
        "queue_bench: {events} events, {per_tx} per publish transaction, \
         {PUBLISHERS} publishers, {KEYS} partition keys"
    );

    let db = Embedded::temporary().await?;
    let start = Instant::now();
    publish(&db, events, per_tx).await?;
    println!("publish only:  {}", rate(events, start.elapsed()));
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    let start = Instant::now();
    drain(queue, events).await?;
    println!("drain only:    {}", rate(events, start.elapsed()));

    let db = Embedded::temporary().await?;
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    let start = Instant::now();
    let consumer = tokio::spawn(drain(queue, events));
    publish(&db, events, per_tx).await?;
    let latencies = consumer.await.map_err(TitoError::custom)??;
    println!("end to end:    {}", rate(events, start.elapsed()));
    print_latency("  latency", &latencies);
    let used = db;

    let latencies = paced(Embedded::temporary().await?, 0).await?;
    print_latency("paced 2k/s latency", &latencies);
    let latencies = paced(used, events).await?;
    print_latency("  after run 3", &latencies);
    Ok(())
}

/// Publishes 10,000 events numbered from `first`, one per transaction, at 2,000 per second
/// while a worker handles them; returns the sorted handling latencies in micros.
async fn paced(db: TitoEngine, first: u64) -> Result<Vec<u64>, TitoError> {
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    let paced = 10_000;
    let consumer = tokio::spawn(drain(queue, paced));
    let mut ticker = tokio::time::interval(Duration::from_micros(500));
    for n in 0..paced {
        ticker.tick().await;
        publish_one(&db, first + n).await?;
    }
    consumer.await.map_err(TitoError::custom)?
}

async fn publish_one(db: &TitoEngine, n: u64) -> Result<(), TitoError> {
    let model = db.clone().model::<Tick>();
    let tick = Tick {
        id: format!("t{n}"),
        key: format!("k{}", n % KEYS),
        n,
    };
    db.transaction(|tx| async move {
        let options = TitoOptions::with_events(TitoOperation::Insert);
        model.build_with_options(tick, options, &tx).await.map(drop)
    })
    .await
}

fn print_latency(label: &str, sorted: &[u64]) {
    println!(
        "{label}: p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        percentile(sorted, 1.0)
    );
}
