//! Queue order under concurrent publishers: publishers commit events for a few keys, each in a
//! transaction that also appends the event to a per-key witness record, so the witness holds
//! the keys' commit order (the store serializes writers of one record). Two consumer groups each
//! run a paused worker (it renews its leases only long after they expired, and its first
//! handler calls stall for minutes), started first so that it holds every partition, and a
//! steady one whose clock runs ahead, which joins as the events flow: partitions move to it
//! while the paused handlers stall. The plain group's first handling of each event must follow
//! the witness order with nothing missing; the transactional group's ledger (written in the
//! acknowledging transaction) must equal the witness: in order, nothing twice.
//!
//! It runs on Tokio's paused clock, which the workers read through `TokioClock`: the pauses
//! last minutes of virtual time and cost moments of real time.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tito::backend::{Embedded, Faulty};
use tito::queue::{
    FencingToken, TitoQueue, TokioClock, Worker, WorkerHandle, WorkerStats, fencing_token,
};
use tito::types::partition_of;
use tito::{PartitionConfig, RetryPolicy, TitoEvent, TitoModel, TitoOperation, TitoOptions};

use super::{
    Anomaly, Clock, FaultyDb, Outcome, PlainDb, Rng, RunReport, Span, abort_error, databases,
    fault_plan, jitter, retry_policy, scaled,
};

const EVENT: &str = "check-published";
const PLAIN_GROUP: &str = "plain";
const TRANSACTIONAL_GROUP: &str = "transactional";
const KEYS: usize = 4;
const PUBLISHERS: usize = 3;
/// Events per publisher at `TITO_CHECK_SCALE=1`.
const EVENTS_PER_PUBLISHER: usize = 30;

/// The partitions the workers take: few, so sweeps are small and faults hit their every step.
const PARTITIONS: PartitionConfig = PartitionConfig { start: 0, end: 32 };
const LEASE_TTL: Duration = Duration::from_secs(10);
/// The paused worker renews its leases only this often: each lapses before it is renewed.
const PAUSED_HEARTBEAT: Duration = Duration::from_secs(30);
/// How long the paused worker's first handler call stalls: far past the lease and its heartbeat.
const PAUSE: Duration = Duration::from_secs(120);
/// How long the paused worker's other stalled calls last: past the lease, and past the steady
/// worker's takeover, but short of the paused worker's next heartbeat, which would cancel the
/// batch. Only the check before each call keeps the rest of that batch from running beside the
/// new holder.
const SHORT_PAUSE: Duration = Duration::from_secs(20);
const PAUSED_CALLS: u32 = 2;
/// How far the steady workers' clocks run ahead of the paused ones': under the margin a worker
/// keeps before its lease expires (a tenth of the TTL), so leases never overlap.
const SKEW: Duration = Duration::from_millis(500);
/// Events committed before the paused workers start.
const BACKLOG: usize = 6 * KEYS;
/// How long (virtual time) the run waits for every committed event to be handled before
/// judging what it has.
const PATIENCE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "check_published", events("check-published"), partition_key = key)]
pub struct Published {
    #[tito(id)]
    pub id: String,
    pub key: String,
}

/// A key's events in commit order, written by the publishing transactions themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "check_witness")]
pub struct Witness {
    #[tito(id)]
    pub id: String,
    pub events: Vec<String>,
}

/// A key's events as the transactional handler applied them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "check_ledger")]
pub struct Ledger {
    #[tito(id)]
    pub id: String,
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub publisher: usize,
    pub span: Span,
    pub id: String,
    pub key: String,
    pub outcome: Outcome,
}

/// A plain handler call as it began, with the fencing token it ran under.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub worker: String,
    pub id: String,
    pub key: String,
    pub fence: FencingToken,
}

/// A completed plain handler call.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub worker: String,
    pub id: String,
    pub key: String,
    pub at: u64,
}

#[derive(Debug, Clone, Default)]
pub struct QueueHistory {
    pub publishes: Vec<Publish>,
    /// Per key, the committed events in commit order.
    pub witness: BTreeMap<String, Vec<String>>,
    /// The plain group's handler completions, in completion order.
    pub handled: Vec<Handled>,
    /// The plain group's handler calls, in the order they began.
    pub started: Vec<Started>,
    /// Per key, the transactional group's applied events.
    pub ledgers: BTreeMap<String, Vec<String>>,
    /// Workers whose run ended with an error instead of running until stopped.
    pub worker_errors: Vec<String>,
}

/// `KEYS` partition keys in the workers' partitions.
fn keys() -> Vec<String> {
    (0..)
        .map(|i| format!("key-{i}"))
        .filter(|key| partition_of(key) < PARTITIONS.end)
        .take(KEYS)
        .collect()
}

/// The plain group's calls as they begin and as they complete.
#[derive(Default)]
struct Calls {
    started: Vec<Started>,
    handled: Vec<Handled>,
}

type Log = Arc<Mutex<Calls>>;

pub async fn run(seed: u64) -> RunReport {
    let (faulty, db, plain) = databases(fault_plan(seed)).await;
    let queue = TitoQueue::new(db.clone());
    let clock = Clock::start();
    let log: Log = Arc::default();
    for group in [PLAIN_GROUP, TRANSACTIONAL_GROUP] {
        queue.register_group(EVENT, group).await.unwrap();
    }
    let mut rng = Rng::new(seed);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| tokio::spawn(publish_events(db.clone(), rng.fork(), clock, p)))
        .collect();
    // The paused workers start once a backlog waits, so the batch a stalled call belongs to
    // holds more of its key's events; they take every partition. The steady ones join as the
    // events flow, and take over each partition whose lease lapsed under a sleeping handler.
    wait_for("a backlog", PATIENCE, || async {
        let committed: usize = (records::<Witness>(&plain).await.values())
            .map(Vec::len)
            .sum();
        committed >= BACKLOG
    })
    .await;
    let mut workers = vec![
        plain_worker(&queue, "plain-paused", true, &log, clock),
        transactional_worker(&queue, &db, "transactional-paused", true),
    ];
    // Faults start once they hold leases: a paused worker whose first heartbeat failed would
    // try again only after `PAUSED_HEARTBEAT`.
    wait_for(
        "the paused workers to hold leases",
        Duration::from_secs(30),
        || async { workers.iter().all(|w| w.stats().leases_acquired > 0) },
    )
    .await;
    faulty.set_active(true);
    workers.push(plain_worker(&queue, "plain-steady", false, &log, clock));
    workers.push(transactional_worker(
        &queue,
        &db,
        "transactional-steady",
        false,
    ));
    let mut publishes = Vec::new();
    for publisher in publishers {
        publishes.extend(publisher.await.unwrap());
    }
    let done = wait_for("every committed event handled", PATIENCE, || {
        all_handled(&plain, &log)
    })
    .await;
    faulty.set_active(false);
    let stats: Vec<(String, WorkerStats)> = workers
        .iter()
        .map(|w| (w.id().to_string(), w.stats()))
        .collect();
    // A worker whose loop ended with an error is reported by its handle only now.
    let mut worker_errors = Vec::new();
    for (worker, (id, stats)) in workers.into_iter().zip(&stats) {
        if let Err(e) = worker.shutdown().await {
            worker_errors.push(format!("{id} ended with {e:?}; its stats: {stats:?}"));
        }
    }
    let Calls { started, handled } = std::mem::take(&mut *log.lock().unwrap());
    let history = QueueHistory {
        publishes,
        worker_errors,
        witness: records::<Witness>(&plain).await,
        handled,
        started,
        ledgers: records::<Ledger>(&plain).await,
    };
    let mut report = RunReport::default();
    for publish in &history.publishes {
        report.operations += 1;
        match publish.outcome {
            Outcome::Ok => {}
            Outcome::Unknown => report.unknown += 1,
            _ => report.failed += 1,
        }
    }
    let committed: usize = history.witness.values().map(Vec::len).sum();
    let workers: Vec<String> = (stats.iter())
        .map(|(id, s)| {
            format!(
                "{id}: handled {}, leases acquired {} lost {}, batches abandoned {}",
                s.handled, s.leases_acquired, s.leases_lost, s.abandoned_batches
            )
        })
        .collect();
    report.notes = format!(
        "{committed} events committed, {} plain handler calls, all handled in time: {done}, \
         workers [{}]",
        history.handled.len(),
        workers.join("; ")
    );
    report.injected = faulty.injected();
    report.anomalies = check(&history);
    report
}

/// Polls `check` every 20 ms for up to `patience`; whether it came to hold.
async fn wait_for<F, Fut>(what: &str, patience: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + patience;
    while !check().await {
        if tokio::time::Instant::now() >= deadline {
            eprintln!("consistency queue: gave up waiting for {what} after {patience:?}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Whether both groups handled every event the witnesses hold and have none left pending.
async fn all_handled(plain: &PlainDb, log: &Log) -> bool {
    let witness = records::<Witness>(plain).await;
    let ledgers = records::<Ledger>(plain).await;
    let handled: HashSet<String> = (log.lock().unwrap().handled.iter())
        .map(|h| h.id.clone())
        .collect();
    let committed = || witness.values().flatten();
    let applied: usize = ledgers.values().map(Vec::len).sum();
    if !committed().all(|id| handled.contains(id)) || applied < committed().count() {
        return false;
    }
    let queue = TitoQueue::new(plain.clone());
    for group in [PLAIN_GROUP, TRANSACTIONAL_GROUP] {
        let Ok(lag) = queue.lag(EVENT, group).await else {
            return false;
        };
        if lag.iter().any(|l| l.pending + l.retrying > 0) {
            return false;
        }
    }
    true
}

/// Every record of model `M` by id (witnesses or ledgers: one per key).
async fn records<M>(plain: &PlainDb) -> BTreeMap<String, Vec<String>>
where
    M: tito::TitoModelTrait + HasEvents,
{
    let model = plain.clone().model::<M>();
    let mut out = BTreeMap::new();
    for key in keys() {
        if let Some(record) = model.get(&key).await.unwrap() {
            out.insert(key, record.event_ids());
        }
    }
    out
}

/// A record holding a key's list of event ids.
trait HasEvents {
    fn event_ids(self) -> Vec<String>;
}

impl HasEvents for Witness {
    fn event_ids(self) -> Vec<String> {
        self.events
    }
}

impl HasEvents for Ledger {
    fn event_ids(self) -> Vec<String> {
        self.events
    }
}

/// One publisher's events for random keys, each committed with its witness entry; a few
/// aborted after writing both.
async fn publish_events(
    db: FaultyDb,
    mut rng: Rng,
    clock: Clock,
    publisher: usize,
) -> Vec<Publish> {
    let (events, witnesses) = (
        db.clone().model::<Published>(),
        db.clone().model::<Witness>(),
    );
    let keys = keys();
    let mut publishes = Vec::new();
    for n in 0..scaled(EVENTS_PER_PUBLISHER) {
        let key = keys[rng.below(KEYS as u64) as usize].clone();
        let id = format!("p{publisher}-{n}");
        let abort = rng.percent(5);
        let jitter_seed = rng.next_u64();
        let (result, span) = clock
            .time(db.transaction_with_retry(retry_policy(), |tx| {
                let (events, witnesses) = (events.clone(), witnesses.clone());
                let (key, id) = (key.clone(), id.clone());
                async move {
                    let mut witness = (witnesses.find_optional_tx(&key, vec![], &tx).await?)
                        .unwrap_or(Witness {
                            id: key.clone(),
                            events: Vec::new(),
                        });
                    jitter(&mut Rng::new(jitter_seed)).await;
                    let event = Published {
                        id: id.clone(),
                        key,
                    };
                    let options = TitoOptions::with_events(TitoOperation::Insert);
                    events.build_with_options(event, options, &tx).await?;
                    witness.events.push(id);
                    witnesses.upsert(witness, &tx).await?;
                    if abort {
                        return Err(abort_error());
                    }
                    Ok(())
                }
            }))
            .await;
        publishes.push(Publish {
            publisher,
            span,
            id,
            key,
            outcome: Outcome::of(&result),
        });
        jitter(&mut rng).await;
    }
    publishes
}

fn published(event: &TitoEvent) -> Published {
    serde_json::from_value(event.payload.clone()).expect("the payload is a published record")
}

/// A worker with a 10 s lease; a paused one renews it only after it lapsed, and its first
/// handler calls stall far past it; a steady one's clock runs `SKEW` ahead.
fn worker(
    queue: &Arc<TitoQueue<Faulty<Embedded>>>,
    group: &str,
    id: &str,
    paused: bool,
) -> Worker<Faulty<Embedded>> {
    let (heartbeat, clock) = if paused {
        (PAUSED_HEARTBEAT, TokioClock::new())
    } else {
        (LEASE_TTL / 5, TokioClock::new().ahead(SKEW))
    };
    Worker::new(queue.clone(), EVENT)
        .clock(clock)
        .group(group)
        .id(id)
        .partitions(PARTITIONS)
        .lease_ttl(LEASE_TTL)
        .heartbeat(heartbeat)
        .poll_interval(Duration::from_millis(5))
        .idle_poll_interval(Duration::from_secs(1))
        .shutdown_timeout(Duration::from_secs(10))
        .retry(RetryPolicy {
            max_attempts: 15,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
        })
        .batch_size(4)
        .concurrency(4)
}

/// Stalls past the lease on the first `PAUSED_CALLS` calls of a paused worker: the first for
/// `PAUSE`, the others for `SHORT_PAUSE`.
async fn maybe_pause(paused: bool, calls: &AtomicU32) {
    match calls.fetch_add(1, Ordering::SeqCst) {
        0 if paused => tokio::time::sleep(PAUSE).await,
        n if paused && n < PAUSED_CALLS => tokio::time::sleep(SHORT_PAUSE).await,
        _ => {}
    }
}

fn plain_worker(
    queue: &Arc<TitoQueue<Faulty<Embedded>>>,
    id: &str,
    paused: bool,
    log: &Log,
    clock: Clock,
) -> WorkerHandle {
    let (log, worker_id, calls) = (log.clone(), id.to_string(), Arc::new(AtomicU32::new(0)));
    worker(queue, PLAIN_GROUP, id, paused).run(move |event| {
        let (log, worker_id, calls) = (log.clone(), worker_id.clone(), calls.clone());
        let record = published(&event);
        log.lock().unwrap().started.push(Started {
            worker: worker_id.clone(),
            id: record.id.clone(),
            key: record.key.clone(),
            fence: fencing_token().expect("handlers run under a fencing token"),
        });
        Box::pin(async move {
            maybe_pause(paused, &calls).await;
            // Logged as the call completes: the order of first completions is the one judged.
            log.lock().unwrap().handled.push(Handled {
                worker: worker_id,
                id: record.id,
                key: record.key,
                at: clock.now(),
            });
            Ok(())
        })
    })
}

fn transactional_worker(
    queue: &Arc<TitoQueue<Faulty<Embedded>>>,
    db: &FaultyDb,
    id: &str,
    paused: bool,
) -> WorkerHandle {
    let (ledgers, calls) = (db.clone().model::<Ledger>(), Arc::new(AtomicU32::new(0)));
    worker(queue, TRANSACTIONAL_GROUP, id, paused).run_transactional(move |event, tx| {
        let (ledgers, calls) = (ledgers.clone(), calls.clone());
        Box::pin(async move {
            maybe_pause(paused, &calls).await;
            let record = published(&event);
            let mut ledger =
                (ledgers.find_optional_tx(&record.key, vec![], &tx).await?).unwrap_or(Ledger {
                    id: record.key.clone(),
                    events: Vec::new(),
                });
            ledger.events.push(record.id);
            ledgers.upsert(ledger, &tx).await.map(drop)
        })
    })
}

/// Judges a queue history: publishes against the witnesses, the plain group's first handling
/// against the commit order, its calls against their leases (none begins under a lease after
/// a call under a later lease of the same partition began), and the transactional group's
/// ledgers against the commit order exactly.
pub fn check(history: &QueueHistory) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut latest: BTreeMap<u32, &Started> = BTreeMap::new();
    for call in &history.started {
        let newest = latest.entry(call.fence.partition).or_insert(call);
        if call.fence.token > newest.fence.token {
            *newest = call;
        } else if call.fence.token < newest.fence.token {
            anomalies.push(Anomaly::new(
                format!(
                    "plain group: {} began {} (key {}) under lease token {} of partition {}, \
                     after {} began {} under token {}",
                    call.worker,
                    call.id,
                    call.key,
                    call.fence.token,
                    call.fence.partition,
                    newest.worker,
                    newest.id,
                    newest.fence.token
                ),
                excerpt(history, &call.key),
            ));
        }
    }
    for error in &history.worker_errors {
        anomalies.push(Anomaly::new(
            "a worker stopped on its own (an error ended its run before it was stopped)",
            vec![error.clone()],
        ));
    }
    let committed: HashSet<&String> = history.witness.values().flatten().collect();
    for publish in &history.publishes {
        let in_witness = committed.contains(&publish.id);
        let problem = match (&publish.outcome, in_witness) {
            (Outcome::Ok, false) => "was acknowledged but never committed",
            (Outcome::Aborted | Outcome::Failed(_), true) => "failed but committed",
            _ => continue,
        };
        anomalies.push(Anomaly::new(
            format!("publish {} for {} {problem}", publish.id, publish.key),
            excerpt(history, &publish.key),
        ));
    }
    for handled in &history.handled {
        if !committed.contains(&handled.id) {
            anomalies.push(Anomaly::new(
                format!("event {} was handled but never committed", handled.id),
                excerpt(history, &handled.key),
            ));
        }
    }
    for (key, order) in &history.witness {
        let mut first: Vec<String> = Vec::new();
        for handled in history.handled.iter().filter(|h| &h.key == key) {
            if !first.contains(&handled.id) {
                first.push(handled.id.clone());
            }
        }
        if let Some(what) = compare(order, &first, "handled first") {
            anomalies.push(Anomaly::new(
                format!("plain group, key {key}: {what}"),
                excerpt(history, key),
            ));
        }
        let ledger = history.ledgers.get(key).cloned().unwrap_or_default();
        let distinct: HashSet<&String> = ledger.iter().collect();
        let what = if distinct.len() < ledger.len() {
            Some("an event's effect was applied twice".to_string())
        } else {
            compare(order, &ledger, "applied")
        };
        if let Some(what) = what {
            anomalies.push(Anomaly::new(
                format!("transactional group, key {key}: {what}"),
                excerpt(history, key),
            ));
        }
    }
    anomalies
}

/// How `seen` departs from the commit order `order`, if it does.
fn compare(order: &[String], seen: &[String], verb: &str) -> Option<String> {
    if order == seen {
        return None;
    }
    let at = (order.iter().zip(seen)).position(|(a, b)| a != b);
    Some(match at {
        Some(i) if !seen.contains(&order[i]) => {
            format!("{} was committed but never {verb}", order[i])
        }
        Some(i) => format!(
            "{} was {verb} at position {i}, where the commit order has {}",
            seen[i], order[i]
        ),
        None if seen.len() < order.len() => {
            format!("{} was committed but never {verb}", order[seen.len()])
        }
        None => format!(
            "{} was {verb} but is not in the commit order",
            seen[order.len()]
        ),
    })
}

fn excerpt(history: &QueueHistory, key: &str) -> Vec<String> {
    let mut lines = vec![
        format!("commit order (witness): {:?}", history.witness.get(key)),
        format!("transactional ledger: {:?}", history.ledgers.get(key)),
    ];
    lines.extend(
        (history.publishes.iter())
            .filter(|p| p.key == key)
            .map(|p| {
                format!(
                    "{} publisher {}: {} {:?}",
                    p.span, p.publisher, p.id, p.outcome
                )
            }),
    );
    lines.extend(
        (history.handled.iter())
            .filter(|h| h.key == key)
            .map(|h| format!("{}us {} handled {}", h.at, h.worker, h.id)),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn publish(id: &str, outcome: Outcome) -> Publish {
        Publish {
            publisher: 0,
            span: Span::default(),
            id: id.into(),
            key: "k".into(),
            outcome,
        }
    }

    fn handled(id: &str, at: u64) -> Handled {
        Handled {
            worker: "w".into(),
            id: id.into(),
            key: "k".into(),
            at,
        }
    }

    fn history(handled: Vec<Handled>, ledger: &[&str]) -> QueueHistory {
        QueueHistory {
            publishes: vec![
                publish("a", Outcome::Ok),
                publish("b", Outcome::Unknown),
                publish("c", Outcome::Ok),
                publish("x", Outcome::Aborted),
            ],
            witness: BTreeMap::from([("k".to_string(), ids(&["a", "b", "c"]))]),
            handled,
            started: Vec::new(),
            ledgers: BTreeMap::from([("k".to_string(), ids(ledger))]),
            worker_errors: Vec::new(),
        }
    }

    fn started(worker: &str, id: &str, partition: u32, token: u64) -> Started {
        Started {
            worker: worker.into(),
            id: id.into(),
            key: "k".into(),
            fence: FencingToken { partition, token },
        }
    }

    #[test]
    fn a_call_under_a_lease_already_taken_over_is_reported() {
        let ok = |calls| {
            let mut h = history(
                vec![handled("a", 1), handled("b", 2), handled("c", 3)],
                &["a", "b", "c"],
            );
            h.started = calls;
            check(&h)
        };
        let taken_over = vec![
            started("old", "a", 3, 1),
            started("new", "b", 3, 2),
            started("other", "z", 4, 1),
        ];
        assert!(ok(taken_over.clone()).is_empty());
        let mut late = taken_over;
        late.push(started("old", "c", 3, 1));
        let found = ok(late);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .what
                .contains("old began c (key k) under lease token 1 of partition 3"),
            "{found:?}"
        );
    }

    #[test]
    fn in_order_delivery_with_redeliveries_passes() {
        let h = history(
            vec![
                handled("a", 1),
                handled("b", 2),
                handled("a", 3),
                handled("c", 4),
            ],
            &["a", "b", "c"],
        );
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn out_of_order_delivery_is_reported() {
        let h = history(
            vec![handled("a", 1), handled("c", 2), handled("b", 3)],
            &["a", "c", "b"],
        );
        let found = check(&h);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found.iter().all(|a| a.what.contains("position 1")),
            "{found:?}"
        );
    }

    #[test]
    fn a_missing_event_and_a_twice_applied_effect_are_reported() {
        let h = history(
            vec![handled("a", 1), handled("b", 2)],
            &["a", "b", "b", "c"],
        );
        let found = check(&h);
        assert!(
            found
                .iter()
                .any(|a| a.what.contains("c was committed but never handled")),
            "{found:?}"
        );
        assert!(found.iter().any(|a| a.what.contains("twice")), "{found:?}");
    }

    #[test]
    fn a_lost_acknowledged_publish_and_a_handled_aborted_one_are_reported() {
        let mut h = history(
            vec![
                handled("a", 1),
                handled("b", 2),
                handled("c", 3),
                handled("x", 4),
            ],
            &["a", "b", "c"],
        );
        h.publishes.push(publish("d", Outcome::Ok));
        let found = check(&h);
        assert!(
            found
                .iter()
                .any(|a| a.what.contains("d for k was acknowledged")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|a| a.what.contains("x was handled but never committed")),
            "{found:?}"
        );
    }

    #[test]
    fn a_worker_that_stopped_on_its_own_is_reported() {
        let mut h = history(
            vec![handled("a", 1), handled("b", 2), handled("c", 3)],
            &["a", "b", "c"],
        );
        h.worker_errors
            .push("w ended with CommitOutcomeUnknown".into());
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.contains("stopped on its own"), "{found:?}");
    }
}
