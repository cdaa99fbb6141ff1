//! Scenarios `queue` (publish, transactional and plain handling, lease takeover across
//! restarts, retention) and `replay` (handlers failing into dead letters, replayed while the
//! process may die): the children, and the parent's record and checks.
//!
//! The publisher commits each event with its record and the owner's publish count in one
//! transaction, on an engine without faults; the workers run on the same store behind a
//! [`Faulty`] wrapper whose commits (acknowledgements, leases, replays) sometimes report an
//! unknown outcome, applied or not, or conflict: a handler that succeeded and whose
//! acknowledgement failed, or an acknowledgement applied but reported as an error.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tito::backend::{CallKind, Embedded, Fault, FaultPlan, Faulty};
use tito::queue::{DEFAULT_GROUP, TitoQueue, Worker, WorkerHandle};
use tito::types::partition_of;
use tito::{
    Backend, KeyRange, PartitionConfig, RetryPolicy, TitoEngine, TitoError, TitoEvent, TitoModel,
    TitoOperation, TitoOptions, TitoTransaction, keyspace,
};

use super::checks::{
    check_first_handlings, check_ledger_in_order, check_ledger_once, check_published,
};
use super::models::{EVENT, Ledger, Order, Published};
use super::writes::{load_all, verified};
use super::{Rng, anomaly, emit};

/// The plain (at-least-once) consumer group of scenario `queue`.
pub const AUDIT: &str = "audit";
/// The partitions the workers take: few, so sweeps and heartbeats stay small.
const PARTITIONS: PartitionConfig = PartitionConfig { start: 0, end: 32 };
/// Publishes per child run at most.
const PUBLISHES: u64 = 400;

/// Six partition keys whose events fall in [`PARTITIONS`].
pub fn owners() -> Vec<String> {
    (0..)
        .map(|i| format!("owner-{i}"))
        .filter(|key| partition_of(key) < PARTITIONS.end)
        .take(6)
        .collect()
}

/// In scenario `replay`, the events whose handler fails until they are replayed.
pub fn fails_until_replayed(seq: u64) -> bool {
    seq % 4 == 1
}

// ---------------------------------------------------------------------------------------------
// Handlers, shared by the children and the parent's final drain
// ---------------------------------------------------------------------------------------------

fn order_of(event: &TitoEvent) -> Order {
    serde_json::from_value(event.payload.clone()).expect("an order")
}

/// Appends the event to its owner's ledger in the acknowledging transaction: the effect that
/// must happen exactly once. `r` marks an event applied from a replay.
async fn apply_to_ledger<B: Backend>(
    ledgers: &TitoModel<Ledger, B>,
    event: &TitoEvent,
    tx: &TitoTransaction<B>,
) -> Result<(), TitoError> {
    let order = order_of(event);
    let effect = match event.replayed_at {
        Some(_) => format!("{}r", order.seq),
        None => order.seq.to_string(),
    };
    match ledgers.find_optional_tx(&order.owner, vec![], tx).await? {
        Some(mut ledger) => {
            ledger.applied.push(effect);
            ledgers.update(ledger, tx).await.map(drop)
        }
        None => {
            let ledger = Ledger {
                id: order.owner,
                applied: vec![effect],
            };
            ledgers.build(ledger, tx).await.map(drop)
        }
    }
}

/// The transactional handler: `flaky` fails the events [`fails_until_replayed`] names until
/// they are replayed; `abort_at` ends the process at that call, after the effect was written
/// and before it commits.
fn ledger_handler<B: Backend>(
    ledgers: TitoModel<Ledger, B>,
    flaky: bool,
    abort_at: Option<u64>,
) -> impl Fn(TitoEvent, TitoTransaction<B>) -> tito::queue::HandlerFuture + Send + Sync + 'static {
    let calls = Arc::new(AtomicU64::new(0));
    move |event, tx| {
        let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let ledgers = ledgers.clone();
        Box::pin(async move {
            if flaky && event.replayed_at.is_none() && fails_until_replayed(order_of(&event).seq) {
                return Err(TitoError::custom("fails until replayed"));
            }
            apply_to_ledger(&ledgers, &event, &tx).await?;
            if abort_at == Some(call) {
                emit("abort-in-transactional-handler");
                std::process::abort();
            }
            Ok(())
        })
    }
}

/// A worker of `group` with short leases, quick polls and retries, on [`PARTITIONS`].
fn worker<B: Backend>(queue: &Arc<TitoQueue<B>>, group: &str, id: &str) -> Worker<B> {
    Worker::new(queue.clone(), EVENT)
        .group(group)
        .id(id)
        .partitions(PARTITIONS)
        .lease_ttl(Duration::from_secs(1))
        .heartbeat(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(5))
        .idle_poll_interval(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(5))
        .batch_size(8)
        .concurrency(4)
        .retry(RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
        })
}

/// Acknowledgements and other worker commits that go wrong now and then.
fn worker_faults(seed: u64) -> FaultPlan {
    FaultPlan::new(seed)
        .rate(CallKind::Commit, 0.03, Fault::UnknownApplied)
        .rate(CallKind::Commit, 0.03, Fault::UnknownNotApplied)
        .rate(CallKind::Commit, 0.02, Fault::Conflict)
}

// ---------------------------------------------------------------------------------------------
// The children
// ---------------------------------------------------------------------------------------------

/// Where a child ends itself, at an exact moment.
#[derive(Debug, Clone, Copy)]
enum AbortAt {
    /// In the transactional handler's n-th call, its effect written, not committed.
    Transactional(u64),
    /// In the plain handler's n-th call, after it handled the event, before the acknowledgement.
    Plain(u64),
    /// Right after the n-th replay of dead letters committed.
    Replay(u64),
}

fn choose_abort(rng: &mut Rng, replay: bool) -> Option<AbortAt> {
    match rng.below(if replay { 5 } else { 4 }) {
        0 => Some(AbortAt::Transactional(rng.within(1..120))),
        1 if !replay => Some(AbortAt::Plain(rng.within(1..120))),
        1 | 4 => Some(AbortAt::Replay(rng.within(1..6))),
        _ => None,
    }
}

/// The child of scenarios `queue` and `replay`: workers (two transactional ones sharing the
/// default group, and in `queue` a plain one of group `audit`) under commit faults, and a
/// publisher; in `replay` the transactional handler fails some events into dead letters and a
/// loop replays them. Handled events are kept a short while (retention) and pruned meanwhile.
pub async fn child_queue(dir: &Path, seed: u64, replay: bool) {
    let mut rng = Rng(seed);
    let abort = choose_abort(&mut rng, replay);
    let inner = Embedded::builder(dir).open_backend().unwrap();
    let plain = TitoEngine::new(inner.clone()).await.unwrap();
    let faulty = Faulty::new(inner, worker_faults(rng.next()));
    // No faults while opening: they are for the workers' commits.
    faulty.set_active(false);
    let queue = TitoQueue::new(TitoEngine::new(faulty.clone()).await.unwrap());
    let plain_queue = TitoQueue::new(plain.clone());
    // Groups see events published after they registered: register before the first publish.
    for group in groups(replay) {
        plain_queue.register_group(EVENT, group).await.unwrap();
    }
    let mut published: BTreeMap<String, u64> = load_all(&plain.clone().model::<Published>())
        .await
        .into_iter()
        .map(|(owner, p)| (owner, p.next))
        .collect();
    let run = format!("{seed:x}");
    faulty.set_active(true);
    let workers = start_workers(&queue, &run, replay, abort);
    let replayer = replay.then(|| tokio::spawn(replay_loop(queue.clone(), abort)));
    let reporter = tokio::spawn(report_faults(faulty));
    emit("ready");
    let owners = owners();
    for _ in 0..PUBLISHES {
        let owner = rng.pick(&owners).clone();
        let seq = *published.get(&owner).unwrap_or(&0);
        emit(&format!("pub-intent {owner} {seq}"));
        match publish(&plain, &owner, seq).await {
            Ok(()) => {
                emit(&format!("pub {owner} {seq}"));
                published.insert(owner, seq + 1);
            }
            Err(e @ (TitoError::Conflict(_) | TitoError::Unavailable(_))) => {
                emit(&format!("pub-fail {owner} {seq} {e}"))
            }
            Err(e) => anomaly(&format!("publish {owner} {seq}: {e:?}")),
        }
        tokio::time::sleep(Duration::from_millis(rng.within(1..6))).await;
    }
    // Then let the workers catch up until the parent kills the child.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Some(replayer) = replayer {
        replayer.abort();
    }
    for worker in workers {
        worker.abort();
    }
    reporter.abort();
    emit("done");
}

fn groups(replay: bool) -> Vec<&'static str> {
    if replay {
        vec![DEFAULT_GROUP]
    } else {
        vec![DEFAULT_GROUP, AUDIT]
    }
}

fn start_workers<B: Backend>(
    queue: &Arc<TitoQueue<B>>,
    run: &str,
    replay: bool,
    abort: Option<AbortAt>,
) -> Vec<WorkerHandle> {
    let in_transactional = match abort {
        Some(AbortAt::Transactional(n)) => Some(n),
        _ => None,
    };
    let mut handles: Vec<WorkerHandle> = ["a", "b"]
        .into_iter()
        .map(|name| {
            // Only worker `a` may abort; the other's calls count apart.
            let abort_at = if name == "a" { in_transactional } else { None };
            worker(queue, DEFAULT_GROUP, &format!("{run}-{name}"))
                .retry(RetryPolicy {
                    max_attempts: if replay { 2 } else { 5 },
                    base_delay: Duration::from_millis(2),
                    max_delay: Duration::from_millis(20),
                })
                .retention(Duration::from_millis(300))
                .dead_letter_retention(Duration::MAX)
                .run_transactional(ledger_handler(
                    queue.engine.clone().model(),
                    replay,
                    abort_at,
                ))
        })
        .collect();
    if !replay {
        let abort_at = match abort {
            Some(AbortAt::Plain(n)) => Some(n),
            _ => None,
        };
        let calls = AtomicU64::new(0);
        handles.push(
            worker(queue, AUDIT, &format!("{run}-audit")).run(move |event| {
                let order = order_of(&event);
                let mark = if event.replayed_at.is_some() { "r" } else { "" };
                emit(&format!("plain {} {}{mark}", order.owner, order.seq));
                if abort_at == Some(calls.fetch_add(1, Ordering::SeqCst) + 1) {
                    emit("abort-in-plain-handler");
                    std::process::abort();
                }
                Box::pin(async { Ok(()) })
            }),
        );
    }
    handles
}

/// Replays the default group's dead letters every 100 ms, through the faulty engine.
async fn replay_loop<B: Backend>(queue: Arc<TitoQueue<B>>, abort: Option<AbortAt>) {
    let mut replays = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match queue.replay_dead_letters(EVENT, DEFAULT_GROUP).await {
            Ok(0) => {}
            Ok(count) => {
                replays += 1;
                emit(&format!("replayed {count}"));
                if matches!(abort, Some(AbortAt::Replay(n)) if n == replays) {
                    emit("abort-after-replay");
                    std::process::abort();
                }
            }
            // An unknown outcome or an exhausted retry: the next round sees what is left.
            Err(e) => emit(&format!("replay-error {e}")),
        }
    }
}

/// Prints the faults injected into the workers' commits so far, every 200 ms, for the figures:
/// `faults <unknown applied>/<unknown not applied>/<conflicts>`.
async fn report_faults(faulty: Faulty<Embedded>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = faulty.injected();
        let counts = format!(
            "{}/{}/{}",
            c.unknown_applied, c.unknown_not_applied, c.conflicts
        );
        emit(&format!("faults {counts}"));
    }
}

/// Commits order `owner/seq`, its event, and the owner's publish count, together.
async fn publish<B: Backend>(db: &TitoEngine<B>, owner: &str, seq: u64) -> Result<(), TitoError> {
    let (orders, counts) = (db.clone().model::<Order>(), db.clone().model::<Published>());
    db.transaction_with_retry(RetryPolicy::default(), |tx| {
        let (orders, counts) = (orders.clone(), counts.clone());
        let order = Order {
            id: format!("{owner}-{seq}"),
            owner: owner.to_string(),
            seq,
        };
        let count = Published {
            id: owner.to_string(),
            next: seq + 1,
        };
        async move {
            let options = TitoOptions::with_events(TitoOperation::Insert);
            orders.build_with_options(order, options, &tx).await?;
            counts.upsert(count, &tx).await.map(drop)
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The parent side
// ---------------------------------------------------------------------------------------------

/// What the parent knows of a queue scenario's database.
#[derive(Debug, Default)]
pub struct QueueLog {
    /// Per owner, how many publishes were acknowledged (they are numbered from 0).
    pub acknowledged: BTreeMap<String, u64>,
    /// The publish printed and not settled.
    pub in_flight: Option<(String, u64)>,
    /// Per owner, the plain handler's calls across every child, in order (`<seq>` or
    /// `<seq>r` for a replayed event).
    pub plain_calls: BTreeMap<String, Vec<String>>,
    /// Figures.
    pub publishes: u64,
    pub handlings: u64,
    pub replays: u64,
}

impl QueueLog {
    pub fn observe(&mut self, words: &[&str]) -> Result<(), String> {
        let owner_seq = || -> Result<(String, u64), String> {
            let rest = words.get(1..).map(|w| w.join(" ")).unwrap_or_default();
            let mut parts = rest.split(' ');
            let owner = parts.next().unwrap_or_default().to_string();
            let seq = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(format!("bad line {words:?}"))?;
            Ok((owner, seq))
        };
        match words[0] {
            "pub-intent" => self.in_flight = Some(owner_seq()?),
            "pub" => {
                let (owner, seq) = owner_seq()?;
                if self.in_flight.take() != Some((owner.clone(), seq)) {
                    return Err(format!("publish {owner} {seq} acknowledged, not in flight"));
                }
                let acked = self.acknowledged.entry(owner.clone()).or_default();
                if *acked != seq {
                    return Err(format!("{owner}: publish {seq} acknowledged after {acked}"));
                }
                *acked = seq + 1;
                self.publishes += 1;
            }
            "pub-fail" => self.in_flight = None,
            "plain" => {
                let rest = words[1..].join(" ");
                let (owner, call) = rest.split_once(' ').ok_or(format!("bad line {words:?}"))?;
                self.plain_calls
                    .entry(owner.to_string())
                    .or_default()
                    .push(call.to_string());
                self.handlings += 1;
            }
            "replayed" => self.replays += 1,
            _ => {}
        }
        Ok(())
    }

    /// After a kill, in a copy of the database: every acknowledged publish committed with its
    /// record (and at most the one in flight besides), every table consistent; then a fresh
    /// worker per group drains the queue (replaying dead letters) and every event's effect is
    /// applied exactly once, in key order, and the plain handler saw every event, first in key
    /// order. Settles the publish in flight. Returns the dead letters the drain met.
    pub async fn check(&mut self, db: &TitoEngine<Embedded>, replay: bool) -> Result<u64, String> {
        let committed: BTreeMap<String, u64> = load_all(&db.clone().model::<Published>())
            .await
            .into_iter()
            .map(|(owner, p)| (owner, p.next))
            .collect();
        let orders = load_all(&db.clone().model::<Order>()).await;
        for owner in owners() {
            let acked = *self.acknowledged.get(&owner).unwrap_or(&0);
            let count = *committed.get(&owner).unwrap_or(&0);
            let in_flight = self.in_flight.as_ref().is_some_and(|(o, _)| *o == owner);
            check_published(&owner, acked, count, in_flight)?;
            let missing: Vec<u64> = (0..count)
                .filter(|seq| !orders.contains_key(&format!("{owner}-{seq}")))
                .collect();
            if !missing.is_empty()
                || orders.values().filter(|o| o.owner == owner).count() as u64 != count
            {
                return Err(format!(
                    "{owner}: {count} published, orders missing {missing:?}"
                ));
            }
            self.acknowledged.insert(owner, count);
        }
        self.in_flight = None;
        verified(&db.clone().model::<Order>()).await?;
        verified(&db.clone().model::<Published>()).await?;
        verified(&db.clone().model::<Ledger>()).await?;
        let drained = drain(db, replay).await?;
        let ledgers = load_all(&db.clone().model::<Ledger>()).await;
        for owner in owners() {
            let count = self.acknowledged[&owner];
            let applied = ledgers
                .get(&owner)
                .map(|l| l.applied.clone())
                .unwrap_or_default();
            if replay {
                check_ledger_once(&owner, &applied, count, fails_until_replayed)?;
            } else if drained.dead_letters == 0 {
                check_ledger_in_order(&owner, &applied, count)?;
            } else {
                check_ledger_once(&owner, &applied, count, |_| false)?;
            }
            if !replay {
                let mut calls = self.plain_calls.get(&owner).cloned().unwrap_or_default();
                calls.extend(drained.plain_calls.get(&owner).cloned().unwrap_or_default());
                check_first_handlings(&owner, &calls, count)?;
            }
        }
        verified(&db.clone().model::<Ledger>()).await?;
        Ok(drained.dead_letters)
    }
}

/// What the final drain saw.
#[derive(Debug, Default)]
struct Drained {
    dead_letters: u64,
    plain_calls: BTreeMap<String, Vec<String>>,
}

/// Removes the dead process's leases and memberships (it is gone for sure), then runs a
/// fault-free worker per group, replaying dead letters, until nothing is pending, retrying or
/// dead. Nothing may be set aside as corrupt.
async fn drain(db: &TitoEngine<Embedded>, replay: bool) -> Result<Drained, String> {
    let queue = TitoQueue::new(db.clone());
    for group in groups(replay) {
        for section in ["lease", "member"] {
            let prefix = keyspace::queue::group_prefix(EVENT, group, section);
            db.transaction(|tx| async move {
                for (key, _) in tx.scan(KeyRange::prefix(&prefix), usize::MAX).await? {
                    tx.delete(key).await?;
                }
                Ok::<_, TitoError>(())
            })
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    let calls: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let mut workers = vec![
        worker(&queue, DEFAULT_GROUP, "drain")
            .retry(RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            })
            .dead_letter_retention(Duration::MAX)
            .run_transactional(ledger_handler(db.clone().model(), replay, None)),
    ];
    if !replay {
        let calls = calls.clone();
        workers.push(worker(&queue, AUDIT, "drain-audit").run(move |event| {
            let order = order_of(&event);
            let mark = if event.replayed_at.is_some() { "r" } else { "" };
            let mut calls = calls.lock().unwrap();
            calls
                .entry(order.owner)
                .or_default()
                .push(format!("{}{mark}", order.seq));
            Box::pin(async { Ok(()) })
        }));
    }
    let mut drained = Drained::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // The reads below are not one snapshot while the workers run: an event read as pending
    // can be dead-lettered before the dead letters are read. The pending count comes first
    // and the drain ends after two quiet rounds in a row (the 1,000-run campaign's `replay`
    // run 252 ended its drain with an event moved to the dead letters between the reads).
    let mut quiet = 0;
    loop {
        let mut left = 0;
        for group in groups(replay) {
            let lag = queue.lag(EVENT, group).await.map_err(|e| e.to_string())?;
            left += lag.iter().map(|l| l.pending + l.retrying).sum::<u64>();
            let dead = queue
                .dead_letters(EVENT, group, 1000)
                .await
                .map_err(|e| e.to_string())?;
            if !dead.is_empty() {
                drained.dead_letters += dead.len() as u64;
                if !replay {
                    eprintln!(
                        "drain: dead letters in {group}: {:?}",
                        dead.iter().map(|d| &d.error).collect::<Vec<_>>()
                    );
                }
                queue
                    .replay_dead_letters(EVENT, group)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            left += dead.len() as u64;
            let corrupt = queue
                .corrupt_entries(EVENT, group, 10)
                .await
                .map_err(|e| e.to_string())?;
            if !corrupt.is_empty() {
                return Err(format!(
                    "{group}: entries set aside as corrupt: {corrupt:?}"
                ));
            }
        }
        quiet = if left == 0 { quiet + 1 } else { 0 };
        if quiet == 2 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the drain did not finish in 60 s: {left} events left"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in workers {
        worker.shutdown().await.map_err(|e| e.to_string())?;
    }
    drained.plain_calls = std::mem::take(&mut calls.lock().unwrap());
    Ok(drained)
}
