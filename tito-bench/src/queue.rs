//! The queue workload: `n` posts written with events, 100 per transaction, then one worker
//! (the `tito-queue` defaults, with batches of 512 and 8 partitions in flight) handles and
//! acknowledges them all.
//!
//! The floor is the raw backend writing what a minimal queue needs on top of the same record
//! writes (one pending key holding the encoded event, and the partition key's position), then
//! consuming by scanning the pending keys 512 at a time, decoding each event and deleting the
//! batch in one transaction. tito's worker does more (leases, per-key ordering, retries), so the
//! ratio measures what those guarantees cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tito_core::backend::{Backend, BackendTx, KeyRange, TxKind};
use tito_core::event::{
    DEFAULT_GROUP, ReadyMark, TitoEvent, decode_event, encode_event, micros_since_epoch,
    partition_of,
};
use tito_core::keyspace::queue as keys;
use tito_core::{Durability, TitoError, TitoOperation, TitoOptions};
use tito_queue::{TitoQueue, Worker};

use crate::data::{BATCH, Plan};
use crate::system::Result;
use crate::systems::raw::Raw;
use crate::systems::tito::Tito;

/// The event type the posts publish.
pub const EVENT_TYPE: &str = "post";
/// Events handled per worker batch, and read per raw scan.
const WORKER_BATCH: usize = 512;
/// How long a drain may take before the benchmark gives up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Publish and drain times of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueRun {
    /// Time to publish all events.
    pub publish: Duration,
    /// Time for the worker to handle and acknowledge all of them.
    pub drain: Duration,
}

/// Publishes `plan.ops` events through tito and drains them with a `tito-queue` worker.
pub async fn tito(plan: &Plan, durability: Durability) -> Result<QueueRun> {
    let system = Tito::open(durability).await?;
    let events = plan.ops;
    let started = Instant::now();
    for batch in 0..events.div_ceil(BATCH) {
        let posts: Vec<_> = (batch * BATCH..((batch + 1) * BATCH).min(events))
            .map(|i| plan.post(i))
            .collect();
        let model = system.posts().clone();
        system
            .engine()
            .transaction(|tx| async move {
                for post in posts {
                    let options = TitoOptions::with_events(TitoOperation::Insert);
                    model.build_with_options(post, options, &tx).await?;
                }
                Ok::<_, TitoError>(())
            })
            .await?;
    }
    let publish = started.elapsed();
    let started = Instant::now();
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let queue = Arc::new(TitoQueue {
        engine: system.engine().clone(),
    });
    let worker = {
        let (handled, done) = (handled.clone(), done.clone());
        Worker::new(queue, EVENT_TYPE)
            .concurrency(8)
            .batch_size(WORKER_BATCH)
            .poll_interval(Duration::from_millis(5))
            .run(move |_event| {
                if handled.fetch_add(1, Ordering::Relaxed) + 1 == events {
                    done.notify_one();
                }
                Box::pin(async { Ok(()) })
            })
    };
    let finished = tokio::time::timeout(DRAIN_TIMEOUT, done.notified()).await;
    let drain = started.elapsed();
    worker.shutdown().await?;
    finished.map_err(|_| "the worker did not drain the queue in time")?;
    Ok(QueueRun { publish, drain })
}

/// The same writes and consumption on the raw backend (see the module docs).
pub async fn raw(plan: &Plan, durability: Durability) -> Result<QueueRun> {
    let raw = Raw::open(durability).await?;
    let backend = raw.backend().clone();
    let events = plan.ops;
    let started = Instant::now();
    for batch in 0..events.div_ceil(BATCH) {
        let mut tx = backend.begin(TxKind::Optimistic).await?;
        for i in batch * BATCH..((batch + 1) * BATCH).min(events) {
            let post = plan.post(i);
            Raw::write_new(&mut tx, &post).await?;
            let now = micros_since_epoch(SystemTime::now());
            let partition = partition_of(&post.id);
            let event = TitoEvent {
                id: format!("{now:016x}-{}", post.id),
                event_type: EVENT_TYPE.into(),
                action: TitoOperation::Insert,
                entity: format!("post:{}", post.id),
                table: "post".into(),
                record_id: post.id.clone(),
                partition_key: post.id.clone(),
                partition,
                payload: serde_json::to_value(&post)?,
                created_at: now,
                run_at: now,
                replayed_at: None,
            };
            let key = keys::pending_key(
                EVENT_TYPE,
                DEFAULT_GROUP,
                partition,
                &post.id,
                now,
                &event.id,
            );
            tx.put(key, encode_event(&event)?).await?;
            let mark = ReadyMark {
                first: now,
                latest: now,
            };
            tx.put(
                keys::ready_key(EVENT_TYPE, DEFAULT_GROUP, partition, &post.id),
                mark.encode(),
            )
            .await?;
        }
        tx.commit().await?;
    }
    let publish = started.elapsed();
    let started = Instant::now();
    let pending = KeyRange::prefix(&keys::group_prefix(EVENT_TYPE, DEFAULT_GROUP, "pending"));
    let mut handled = 0;
    while handled < events {
        let mut tx = backend.begin(TxKind::Optimistic).await?;
        let batch = tx.scan(pending.clone(), WORKER_BATCH).await?;
        if batch.is_empty() {
            return Err("the raw queue lost events".into());
        }
        for (key, value) in batch {
            decode_event(&key, &value)?;
            tx.single_delete(key).await?;
            handled += 1;
        }
        tx.commit().await?;
    }
    Ok(QueueRun {
        publish,
        drain: started.elapsed(),
    })
}

impl QueueRun {
    fn total(&self) -> Duration {
        self.publish + self.drain
    }
}

/// Queue runs of tito and of the raw floor, alternated.
#[derive(Debug, Clone, Default)]
pub struct QueueFigures {
    /// Events per run.
    pub events: u64,
    /// tito's runs.
    pub tito: Vec<QueueRun>,
    /// The raw floor's runs.
    pub raw: Vec<QueueRun>,
}

/// Runs the workload `rounds` times on each, alternating, each run on a fresh database.
pub async fn measure(plan: &Plan, durability: Durability, rounds: u64) -> Result<QueueFigures> {
    let mut figures = QueueFigures {
        events: plan.ops,
        ..QueueFigures::default()
    };
    for _ in 0..rounds.max(1) {
        figures.tito.push(tito(plan, durability).await?);
        figures.raw.push(raw(plan, durability).await?);
    }
    Ok(figures)
}

/// The median run by total time.
fn median(runs: &[QueueRun]) -> Option<QueueRun> {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(QueueRun::total);
    sorted.get(sorted.len() / 2).copied()
}

/// The figures as a Markdown table (the median run of each system).
pub fn markdown(f: &QueueFigures) -> String {
    let rate = |d: Duration| f.events as f64 / d.as_secs_f64().max(1e-9);
    let mut out = format!(
        "{} events, published 100 per transaction, then drained by one worker; median of {} \
         runs.\n\n| system | publish events/s | handle + ack events/s | end to end events/s |\n\
         |---|---:|---:|---:|\n",
        f.events,
        f.tito.len()
    );
    let rows = [("tito + tito-queue", &f.tito), ("raw floor", &f.raw)];
    for (name, runs) in rows {
        if let Some(run) = median(runs) {
            out.push_str(&format!(
                "| {name} | {:.0} | {:.0} | {:.0} |\n",
                rate(run.publish),
                rate(run.drain),
                rate(run.total())
            ));
        }
    }
    if let (Some(t), Some(r)) = (median(&f.tito), median(&f.raw)) {
        out.push_str(&format!(
            "\ntito/raw end-to-end time: {:.2}x (publish {:.2}x, drain {:.2}x).\n",
            t.total().as_secs_f64() / r.total().as_secs_f64(),
            t.publish.as_secs_f64() / r.publish.as_secs_f64(),
            t.drain.as_secs_f64() / r.drain.as_secs_f64()
        ));
    }
    out
}
