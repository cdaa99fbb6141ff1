//! tito on a backend that fails: the embedded backend wrapped in `Faulty`, injecting latency,
//! retryable conflicts, transient errors and commits whose outcome is unknown (applied or not)
//! at seeded rates. The retrying runner loses and duplicates nothing, index maintenance stays
//! consistent with every record the engine said it committed, and queue workers deliver every
//! event in key order (exactly once with a transactional handler). Two tests hold fixes for bugs
//! the faults found: a failed begin is retried, and a failed partition read no longer stops a
//! sweep from reading the partitions after it.

mod queue_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use queue_support::{EVENT, Log, backlog, entry_of, publish, quick_retry, wait_until};
use serde::{Deserialize, Serialize};
use tito::backend::{CallKind, Embedded, Fault, FaultCounts, FaultPlan, Faulty};
use tito::queue::{TitoQueue, Worker, WorkerHandle, WorkerStats};
use tito::types::partition_of;
use tito::{Backend, PartitionConfig, RetryPolicy, TitoEngine, TitoError, TitoModel};

type FaultyDb = TitoEngine<Faulty<Embedded>>;

/// A database on the faulty backend, and an engine on the same store that sees no faults (to
/// seed data and to check outcomes). Injection starts active.
async fn databases(plan: FaultPlan) -> (Faulty<Embedded>, FaultyDb, TitoEngine<Embedded>) {
    let inner = Embedded::temporary_builder().open_backend().unwrap();
    let plain = TitoEngine::new(inner.clone()).await.unwrap();
    let faulty = Faulty::new(inner, plan);
    faulty.set_active(false);
    let db = TitoEngine::new(faulty.clone()).await.unwrap();
    faulty.set_active(true);
    (faulty, db, plain)
}

/// `fault` at `rate` on every call kind but `except`.
fn on_every_call(plan: FaultPlan, except: &[CallKind], rate: f64, fault: Fault) -> FaultPlan {
    CallKind::ALL
        .into_iter()
        .filter(|kind| !except.contains(kind))
        .fold(plan, |plan, kind| plan.rate(kind, rate, fault))
}

/// A tiny deterministic generator for the tests' own choices (splitmix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

fn report(test: &str, counts: FaultCounts) {
    eprintln!("{test}: injected {counts:?}");
}

// ---------------------------------------------------------------------------------------------
// The retrying runner
// ---------------------------------------------------------------------------------------------

/// A counter, and the operations that incremented it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "counters")]
struct Counter {
    #[tito(id)]
    id: String,
    value: u64,
    applied: Vec<String>,
}

async fn seed_counters(plain: &TitoEngine<Embedded>, ids: &[String]) {
    let counters = plain.clone().model::<Counter>();
    plain
        .transaction(|tx| async move {
            for id in ids {
                let counter = Counter {
                    id: id.clone(),
                    ..Counter::default()
                };
                counters.build(counter, &tx).await?;
            }
            Ok::<_, TitoError>(())
        })
        .await
        .unwrap();
}

/// Adds one to counter `id`, recording `op`, with a read-modify-write in the retrying runner;
/// `runs` counts the closure's runs.
async fn increment(
    db: &FaultyDb,
    policy: RetryPolicy,
    id: &str,
    op: &str,
    runs: &AtomicU32,
) -> Result<(), TitoError> {
    let counters = db.clone().model::<Counter>();
    db.transaction_with_retry(policy, |tx| {
        let counters = counters.clone();
        runs.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut counter = counters.find_by_id_tx(id, vec![], &tx).await?;
            counter.value += 1;
            counter.applied.push(op.to_string());
            counters.update(counter, &tx).await.map(drop)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_increments_under_conflicts_and_transient_errors_lose_nothing_and_apply_nothing_twice()
 {
    let plan = on_every_call(FaultPlan::new(11), &[], 0.05, Fault::Conflict);
    let plan = on_every_call(plan, &[], 0.05, Fault::Unavailable);
    let (faulty, db, plain) = databases(plan).await;
    let ids: Vec<String> = (0..2).map(|i| format!("c{i}")).collect();
    seed_counters(&plain, &ids).await;
    let policy = RetryPolicy {
        max_attempts: 60,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(8),
    };
    let runs = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for task in 0..8u32 {
        let (db, runs, id) = (db.clone(), runs.clone(), ids[task as usize % 2].clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..20 {
                let op = format!("t{task}-{n}");
                increment(&db, policy, &id, &op, &runs).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counters = plain.clone().model::<Counter>();
    for (i, id) in ids.iter().enumerate() {
        let counter = counters.find_by_id(id, vec![]).await.unwrap();
        let expected: HashSet<String> = (0..8)
            .filter(|task| task % 2 == i)
            .flat_map(|task| (0..20).map(move |n| format!("t{task}-{n}")))
            .collect();
        assert_eq!(counter.value, 80, "every increment applied once on {id}");
        assert_eq!(counter.applied.len(), 80, "no increment applied twice");
        assert_eq!(
            counter.applied.iter().cloned().collect::<HashSet<_>>(),
            expected
        );
    }
    let injected = faulty.injected();
    report("increments", injected);
    assert!(
        injected.conflicts > 0 && injected.unavailable > 0,
        "{injected:?}"
    );
    assert!(
        runs.load(Ordering::SeqCst) > 160,
        "some increments were retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_commit_outcome_surfaces_once_and_is_applied_at_most_once() {
    let plan = FaultPlan::new(12)
        .rate(CallKind::Commit, 0.15, Fault::UnknownApplied)
        .rate(CallKind::Commit, 0.15, Fault::UnknownNotApplied);
    let (faulty, db, plain) = databases(plan).await;
    let ids: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
    seed_counters(&plain, &ids).await;
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let db = db.clone();
        // Each task has its own counter: no real conflict, so every run is a first attempt.
        tasks.push(tokio::spawn(async move {
            let (mut succeeded, mut unknown) = (Vec::new(), Vec::new());
            for n in 0..25 {
                let op = format!("{id}-{n}");
                let runs = AtomicU32::new(0);
                let result = increment(&db, RetryPolicy::default(), &id, &op, &runs).await;
                assert_eq!(runs.load(Ordering::SeqCst), 1, "{op} ran once: {result:?}");
                match result {
                    Ok(()) => succeeded.push(op),
                    Err(TitoError::CommitOutcomeUnknown(_)) => unknown.push(op),
                    Err(e) => panic!("{op}: unexpected error {e:?}"),
                }
            }
            (id, succeeded, unknown)
        }));
    }
    let counters = plain.clone().model::<Counter>();
    let (mut unknown_applied, mut unknown_not_applied) = (0, 0);
    for task in tasks {
        let (id, succeeded, unknown) = task.await.unwrap();
        let counter = counters.find_by_id(&id, vec![]).await.unwrap();
        let applied: HashSet<&String> = counter.applied.iter().collect();
        assert_eq!(
            applied.len(),
            counter.applied.len(),
            "nothing applied twice"
        );
        assert_eq!(counter.value, counter.applied.len() as u64);
        assert!(succeeded.iter().all(|op| applied.contains(op)));
        for op in &unknown {
            if applied.contains(op) {
                unknown_applied += 1;
            } else {
                unknown_not_applied += 1;
            }
        }
        assert_eq!(
            applied.len(),
            succeeded.len() + unknown.iter().filter(|op| applied.contains(op)).count(),
            "only the operations that succeeded or were reported unknown are applied"
        );
    }
    let injected = faulty.injected();
    report("unknown outcomes", injected);
    assert!(injected.unknown_applied > 0 && injected.unknown_not_applied > 0);
    assert_eq!(
        (unknown_applied, unknown_not_applied),
        (injected.unknown_applied, injected.unknown_not_applied),
        "an unknown outcome is applied exactly when the backend applied it"
    );
}

#[tokio::test]
async fn a_transient_error_at_begin_is_retried_by_the_retrying_runner() {
    let plan = FaultPlan::new(0).at(CallKind::Begin, 1, Fault::Unavailable);
    let (_faulty, db, _plain) = databases(plan).await;
    let runs = AtomicU32::new(0);
    let result = db
        .transaction_with_retry(RetryPolicy::default(), |tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { tx.put(b"key".to_vec(), b"value".to_vec()).await }
        })
        .await;
    assert!(
        result.is_ok(),
        "a retryable error is retried, even at begin: {result:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Model writes and index maintenance
// ---------------------------------------------------------------------------------------------

/// A model with a unique index, a plain one, a composite one and a multi-valued one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "items")]
struct Item {
    #[tito(id)]
    id: String,
    #[tito(unique)]
    sku: String,
    #[tito(index)]
    color: String,
    #[tito(index(name = "by_owner_rank", position = 0))]
    owner: String,
    #[tito(index(name = "by_owner_rank", position = 1))]
    rank: i64,
    #[tito(index)]
    tags: Vec<String>,
}

const COLORS: [&str; 3] = ["red", "green", "blue"];

fn random_item(rng: &mut Rng, id: &str) -> Item {
    Item {
        id: id.to_string(),
        // A small pool shared by all tasks: unique violations and races on a value happen.
        sku: format!("sku-{}", rng.below(40)),
        color: COLORS[rng.below(3) as usize].to_string(),
        owner: ["ann", "bob"][rng.below(2) as usize].to_string(),
        rank: rng.below(100) as i64,
        tags: ["a", "b", "c"]
            .into_iter()
            .filter(|_| rng.below(2) == 0)
            .map(String::from)
            .collect(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Item),
    Update(Item),
    Delete(String),
}

/// Outcomes of the operations of one test.
#[derive(Debug, Default)]
struct Tally {
    committed: u64,
    failed: u64,
    unknown: u64,
}

/// Runs random operations on ids `t{task}-*` (only this task writes them, so it knows what each
/// should hold), and returns what each should hold now.
async fn write_items(
    db: FaultyDb,
    plain: TitoEngine<Embedded>,
    task: u64,
) -> (HashMap<String, Option<Item>>, Tally) {
    let items = db.clone().model::<Item>();
    let checked = plain.model::<Item>();
    let policy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
    };
    let mut rng = Rng(1_000 + task);
    let mut expected: HashMap<String, Option<Item>> = HashMap::new();
    let mut tally = Tally::default();
    for n in 0..50 {
        let id = format!("t{task}-{}", rng.below(10));
        let before = expected.get(&id).cloned().flatten();
        let op = match (&before, rng.below(10)) {
            (None, _) | (Some(_), 0) => Op::Insert(random_item(&mut rng, &id)),
            (Some(_), 1..=6) => Op::Update(random_item(&mut rng, &id)),
            (Some(_), _) => Op::Delete(id.clone()),
        };
        let result = db
            .transaction_with_retry(policy, |tx| {
                let (items, op) = (items.clone(), op.clone());
                async move {
                    match op {
                        Op::Insert(item) => items.build(item, &tx).await.map(drop),
                        Op::Update(item) => items.update(item, &tx).await.map(drop),
                        Op::Delete(id) => items.delete_by_id(&id, &tx).await,
                    }
                }
            })
            .await;
        let after = match &op {
            Op::Insert(item) | Op::Update(item) => Some(item.clone()),
            Op::Delete(_) => None,
        };
        let now = match result {
            Ok(()) => {
                tally.committed += 1;
                after
            }
            Err(TitoError::CommitOutcomeUnknown(_)) => {
                tally.unknown += 1;
                let found = match checked.find_by_id(&id, vec![]).await {
                    Ok(item) => Some(item),
                    Err(TitoError::NotFound(_)) => None,
                    Err(e) => panic!("reading {id}: {e:?}"),
                };
                assert!(
                    found == before || found == after,
                    "{op:?} with an unknown outcome left {found:?}"
                );
                found
            }
            Err(
                TitoError::Conflict(_)
                | TitoError::Unavailable(_)
                | TitoError::KeyExists(_)
                | TitoError::UniqueViolation { .. },
            ) => {
                tally.failed += 1;
                before
            }
            Err(e) => panic!("{op:?}: unexpected error {e:?}"),
        };
        expected.insert(id, now);
        // Reads under faults: an answer, when there is one, is right.
        if n % 5 == 0 {
            let color = COLORS[rng.below(3) as usize];
            if let Ok(page) = items.query_by_index("color").value(color).execute().await {
                assert!(page.items.iter().all(|item| item.color == color));
            }
        }
        if n == 25
            && let Ok(report) = items.verify().await
        {
            assert!(report.is_consistent(), "mid-run snapshot: {report:?}");
        }
    }
    (expected, tally)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_writes_under_every_fault_keep_indexes_and_unique_values_consistent() {
    let plan = on_every_call(FaultPlan::new(21), &[], 0.02, Fault::Conflict);
    let plan = on_every_call(plan, &[], 0.02, Fault::Unavailable);
    let plan = on_every_call(plan, &[], 0.05, Fault::Latency(Duration::from_micros(500)))
        .rate(CallKind::Commit, 0.08, Fault::UnknownApplied)
        .rate(CallKind::Commit, 0.08, Fault::UnknownNotApplied);
    let (faulty, db, plain) = databases(plan).await;
    let tasks: Vec<_> = (0..4)
        .map(|task| tokio::spawn(write_items(db.clone(), plain.clone(), task)))
        .collect();
    let mut expected = HashMap::new();
    let mut tally = Tally::default();
    for task in tasks {
        let (items, t) = task.await.unwrap();
        expected.extend(items);
        tally.committed += t.committed;
        tally.failed += t.failed;
        tally.unknown += t.unknown;
    }
    faulty.set_active(false);
    let items = plain.model::<Item>();
    let report = items.verify().await.unwrap();
    assert!(report.is_consistent(), "{report:?}");
    let present: Vec<Item> = expected.values().flatten().cloned().collect();
    assert_eq!(report.records, present.len() as u64);
    for (id, item) in &expected {
        match items.find_by_id(id, vec![]).await {
            Ok(found) => assert_eq!(Some(&found), item.as_ref(), "{id}"),
            Err(TitoError::NotFound(_)) => assert_eq!(item, &None, "{id} was committed"),
            Err(e) => panic!("{id}: {e:?}"),
        }
    }
    let skus: HashSet<&str> = present.iter().map(|item| item.sku.as_str()).collect();
    assert_eq!(skus.len(), present.len(), "unique skus");
    for item in &present {
        let page = items
            .query_by_index("sku")
            .value(item.sku.as_str())
            .execute()
            .await
            .unwrap();
        assert_eq!(page.items, vec![item.clone()]);
    }
    for color in COLORS {
        let page = items
            .query_by_index("color")
            .value(color)
            .execute()
            .await
            .unwrap();
        let found: HashSet<String> = page.items.into_iter().map(|item| item.id).collect();
        let wanted: HashSet<String> = (present.iter())
            .filter(|item| item.color == color)
            .map(|item| item.id.clone())
            .collect();
        assert_eq!(found, wanted, "{color}");
    }
    let injected = faulty.injected();
    report_model(&tally, injected);
    assert!(
        tally.committed > 50 && tally.failed > 0 && tally.unknown > 0,
        "{tally:?}"
    );
    every_fault_kind_struck(injected);
}

/// Asserts that a run met every fault kind.
fn every_fault_kind_struck(injected: FaultCounts) {
    assert!(
        injected.conflicts > 0
            && injected.unavailable > 0
            && injected.unknown_applied > 0
            && injected.unknown_not_applied > 0
            && injected.delayed > 0,
        "{injected:?}"
    );
}

fn report_model(tally: &Tally, injected: FaultCounts) {
    eprintln!("model writes: {tally:?}");
    report("model writes", injected);
}

// ---------------------------------------------------------------------------------------------
// Queue acknowledgements
// ---------------------------------------------------------------------------------------------

/// Asserts that a queue run met every fault kind and that some acknowledgements failed.
fn every_fault_struck(injected: FaultCounts, stats: &WorkerStats) {
    every_fault_kind_struck(injected);
    assert!(
        stats.abandoned_batches > 0,
        "acknowledgements failed: {stats:?}"
    );
}

const OWNERS: usize = 8;
const PER_OWNER: u64 = 20;

/// The partitions the queue workers take: few, so that each sweep and heartbeat is small and
/// faults hit every step of them, not mostly the reads of 1024 idle partitions.
const WORKER_PARTITIONS: PartitionConfig = PartitionConfig { start: 0, end: 32 };

/// `OWNERS` partition keys whose events fall in `WORKER_PARTITIONS`.
fn owners() -> Vec<String> {
    (0..)
        .map(|i| format!("owner-{i}"))
        .filter(|key| partition_of(key) < WORKER_PARTITIONS.end)
        .take(OWNERS)
        .collect()
}

/// Latency, conflicts, transient errors and unknown commit outcomes, applied and not, on every
/// kind of call.
fn queue_faults(seed: u64) -> FaultPlan {
    let plan = on_every_call(FaultPlan::new(seed), &[], 0.03, Fault::Conflict);
    let plan = on_every_call(plan, &[], 0.03, Fault::Unavailable);
    on_every_call(plan, &[], 0.05, Fault::Latency(Duration::from_millis(1)))
        .rate(CallKind::Commit, 0.08, Fault::UnknownApplied)
        .rate(CallKind::Commit, 0.08, Fault::UnknownNotApplied)
}

/// A worker on `queue` with short leases, heartbeats and polling.
fn fast_worker<B: Backend>(queue: &Arc<TitoQueue<B>>) -> Worker<B> {
    Worker::new(queue.clone(), EVENT)
        .partitions(WORKER_PARTITIONS)
        .lease_ttl(Duration::from_secs(1))
        .heartbeat(Duration::from_millis(50))
        .poll_interval(Duration::from_millis(5))
        .shutdown_timeout(Duration::from_secs(10))
        .retry(quick_retry(12))
        .concurrency(4)
}

/// Waits, with faults off, until `worker` holds its leases; turns faults on; publishes
/// `PER_OWNER` events of each owner on the fault-free engine (each owner's in order); waits for
/// `done` and an empty backlog; turns faults off and stops the worker. Returns its stats.
async fn run_worker_under_faults<F, Fut>(
    faulty: &Faulty<Embedded>,
    plain: &TitoEngine<Embedded>,
    worker: WorkerHandle,
    done: F,
) -> WorkerStats
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    faulty.set_active(false);
    wait_until("the worker holds its leases", || async {
        worker.stats().leases_acquired > 0
    })
    .await;
    faulty.set_active(true);
    let publishers: Vec<_> = owners()
        .into_iter()
        .map(|owner| {
            let plain = plain.clone();
            tokio::spawn(async move {
                for seq in 0..PER_OWNER {
                    publish(&plain, &owner, seq).await.unwrap();
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let plain_queue = TitoQueue {
        engine: plain.clone(),
    };
    wait_until("every event is handled", || async {
        done().await && backlog(&plain_queue).await == 0
    })
    .await;
    faulty.set_active(false);
    let stats = worker.stats();
    worker.shutdown().await.unwrap();
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_handler_under_faults_sees_every_event_at_least_once_in_key_order() {
    let (faulty, db, plain) = databases(queue_faults(31)).await;
    let queue = TitoQueue::new(db);
    let log = Log::default();
    let worker = {
        let log = log.clone();
        // Small batches: more acknowledgements for the faults to hit.
        fast_worker(&queue).batch_size(4).run(move |event| {
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    };
    let all: HashSet<String> = (owners().into_iter())
        .flat_map(|owner| (0..PER_OWNER).map(move |seq| format!("{owner}-{seq}")))
        .collect();
    let stats = run_worker_under_faults(&faulty, &plain, worker, || async {
        all.is_subset(&log.ids())
    })
    .await;
    // Order: an event is handled only after every earlier event of its key was, at least once
    // (a redelivered batch starts again from its first unacknowledged event).
    let mut seen: HashMap<String, HashSet<u64>> = HashMap::new();
    for entry in log.all() {
        let earlier = seen.entry(entry.owner.clone()).or_default();
        assert!(
            (0..entry.seq).all(|seq| earlier.contains(&seq)),
            "{}-{} handled before an earlier event of its key",
            entry.owner,
            entry.seq
        );
        earlier.insert(entry.seq);
    }
    assert_eq!(log.ids(), all, "every event handled, nothing else");
    let injected = faulty.injected();
    report("plain handler", injected);
    eprintln!(
        "plain handler: {} handler calls for {} events, {stats:?}",
        log.len(),
        all.len()
    );
    assert_eq!(stats.dead_lettered, 0);
    every_fault_struck(injected, &stats);
}

/// One owner's events, in the order a transactional handler applied them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "ledgers")]
struct Ledger {
    #[tito(id)]
    id: String,
    seqs: Vec<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_handler_under_faults_applies_every_event_exactly_once_in_key_order() {
    let (faulty, db, plain) = databases(queue_faults(41)).await;
    let queue = TitoQueue::new(db.clone());
    let calls = Arc::new(AtomicU32::new(0));
    let worker = {
        let (ledgers, calls) = (db.clone().model::<Ledger>(), calls.clone());
        fast_worker(&queue).run_transactional(move |event, tx| {
            let ledgers = ledgers.clone();
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let entry = entry_of(&event);
                match ledgers.find_optional_tx(&entry.owner, vec![], &tx).await? {
                    Some(mut ledger) => {
                        ledger.seqs.push(entry.seq);
                        ledgers.update(ledger, &tx).await?;
                    }
                    None => {
                        let ledger = Ledger {
                            id: entry.owner,
                            seqs: vec![entry.seq],
                        };
                        ledgers.build(ledger, &tx).await?;
                    }
                }
                Ok(())
            })
        })
    };
    let ledgers = plain.clone().model::<Ledger>();
    let stats = run_worker_under_faults(&faulty, &plain, worker, || async {
        let mut applied = 0;
        for owner in owners() {
            if let Ok(ledger) = ledgers.find_by_id(&owner, vec![]).await {
                applied += ledger.seqs.len();
            }
        }
        applied >= OWNERS * PER_OWNER as usize
    })
    .await;
    for owner in owners() {
        let ledger = ledgers.find_by_id(&owner, vec![]).await.unwrap();
        assert_eq!(
            ledger.seqs,
            (0..PER_OWNER).collect::<Vec<_>>(),
            "{owner}: every event applied once, in order"
        );
    }
    let injected = faulty.injected();
    report("transactional handler", injected);
    eprintln!(
        "transactional handler: {} handler calls for {} events, {stats:?}",
        calls.load(Ordering::SeqCst),
        OWNERS as u64 * PER_OWNER
    );
    assert_eq!(stats.dead_lettered, 0);
    // The handler never fails by itself: store errors it passes on run it again without
    // counting as its failures, unless they outlast the attempts (about one in five calls
    // failed here when they counted).
    assert!(
        stats.failed_attempts * 10 < OWNERS as u64 * PER_OWNER,
        "store errors counted as handler failures: {stats:?}"
    );
    every_fault_struck(injected, &stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rare_failed_partition_read_does_not_starve_the_later_partitions() {
    let plan = FaultPlan::new(5).rate(CallKind::Scan, 0.02, Fault::Unavailable);
    let (faulty, db, plain) = databases(plan).await;
    let queue = TitoQueue::new(db);
    let log = Log::default();
    let worker = {
        let log = log.clone();
        // All 1024 partitions, as by default.
        Worker::new(queue.clone(), EVENT)
            .poll_interval(Duration::from_millis(5))
            .run(move |event| {
                log.push(&event);
                Box::pin(async { Ok(()) })
            })
    };
    faulty.set_active(false);
    wait_until("the worker holds its leases", || async {
        worker.stats().leases_acquired > 0
    })
    .await;
    faulty.set_active(true);
    let far = (0..)
        .map(|i| format!("far-{i}"))
        .find(|key| partition_of(key) > 900)
        .unwrap();
    publish(&plain, &far, 0).await.unwrap();
    // Without faults it is handled within ~100 ms; allow a hundred times that.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while log.len() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (handled, scans) = (log.len(), faulty.calls().scan);
    faulty.set_active(false);
    worker.shutdown().await.unwrap();
    assert_eq!(
        handled,
        1,
        "the event in partition {} was not handled in 10 s ({scans} partition reads)",
        partition_of(&far)
    );
}
