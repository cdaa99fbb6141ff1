//! Shared pieces of the queue tests: a model that publishes events, a fresh queue on the backend
//! `TITO_TIKV_PD` names (see `support`), fast worker settings, and waiting on a condition with a
//! generous timeout (never a fixed sleep for correctness). The helpers are generic over the
//! backend, so a test about the embedded engine itself (restart from a folder) uses them too.
#![allow(dead_code)]

#[path = "../support/mod.rs"]
pub mod support;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tito::queue::{TitoQueue, Worker};
use tito::types::{TitoEventConfig, TitoModelTrait};
use tito::{
    AnyBackend, Backend, RetryPolicy, TitoEngine, TitoError, TitoEvent, TitoOperation, TitoOptions,
};

/// The event type every test model publishes.
pub const EVENT: &str = "account";

/// A record whose events are ordered per `owner`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub owner: String,
    pub seq: u64,
}

impl TitoModelTrait for Entry {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "entry".into()
    }
    fn events(&self) -> Vec<TitoEventConfig> {
        vec![TitoEventConfig {
            name: EVENT.to_string(),
        }]
    }
    fn partition_key(&self) -> String {
        self.owner.clone()
    }
}

/// The entry an event was published for.
pub fn entry_of(event: &TitoEvent) -> Entry {
    serde_json::from_value(event.payload.clone()).expect("event payload is an entry")
}

/// Publishes the insert of entry `owner/seq` in its own committed transaction.
pub async fn publish<B: Backend>(
    db: &TitoEngine<B>,
    owner: &str,
    seq: u64,
) -> Result<(), TitoError> {
    publish_with(
        db,
        owner,
        seq,
        TitoOptions::with_events(TitoOperation::Insert),
    )
    .await
}

/// Publishes entry `owner/seq` with `options`.
pub async fn publish_with<B: Backend>(
    db: &TitoEngine<B>,
    owner: &str,
    seq: u64,
    options: TitoOptions,
) -> Result<(), TitoError> {
    let model = db.clone().model::<Entry>();
    let entry = Entry {
        id: format!("{owner}-{seq}"),
        owner: owner.to_string(),
        seq,
    };
    db.transaction_with_retry(RetryPolicy::default(), |tx| {
        let (model, entry, options) = (model.clone(), entry.clone(), options.clone());
        async move {
            model
                .build_with_options(entry, options, &tx)
                .await
                .map(drop)
        }
    })
    .await
}

/// The database of the queue tests.
pub type Db = TitoEngine<AnyBackend>;

/// The queue of the queue tests.
pub type Queue = TitoQueue<AnyBackend>;

/// A queue over a fresh, empty database.
pub async fn fresh() -> (Db, Arc<Queue>) {
    let db = support::engine().await;
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    (db, queue)
}

/// Quick retries for tests: `attempts` attempts, 2 ms doubling up to 20 ms.
pub fn quick_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
    }
}

/// A worker with short leases, heartbeats and polling.
pub fn fast<B: Backend>(queue: &Arc<TitoQueue<B>>) -> Worker<B> {
    // A lease must outlast several round trips of the heartbeat that renews every held lease in
    // one transaction: on TiKV (a debug build here) a one-second lease churned until
    // acknowledgements kept conflicting with renewals.
    let (lease_ttl, heartbeat) = if support::on_tikv() {
        (Duration::from_secs(5), Duration::from_millis(250))
    } else {
        (Duration::from_secs(1), Duration::from_millis(50))
    };
    Worker::new(queue.clone(), EVENT)
        .lease_ttl(lease_ttl)
        .heartbeat(heartbeat)
        .poll_interval(Duration::from_millis(5))
        .idle_poll_interval(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(10))
        .retry(quick_retry(5))
        .concurrency(4)
}

/// A [`fast`] worker that logs what it handles and succeeds.
pub fn logging_worker<B: Backend>(
    queue: &Arc<TitoQueue<B>>,
    log: &Log,
) -> tito::queue::WorkerHandle {
    let log = log.clone();
    fast(queue).run(move |event| {
        log.push(&event);
        Box::pin(async { Ok(()) })
    })
}

/// Waits until `check` holds, polling every 10 ms; panics with `what` after 30 s (120 s on
/// TiKV, where every read is a network round trip).
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_within(what, 1, check).await
}

/// [`wait_until`] with `times` its patience, for work that is long on purpose.
pub async fn wait_until_within<F, Fut>(what: &str, times: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let patience = if support::on_tikv() { 120 } else { 30 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(patience * times);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Entries whose events a handler completed, in completion order.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Entry>>>);

impl Log {
    pub fn push(&self, event: &TitoEvent) {
        self.0.lock().unwrap().push(entry_of(event));
    }

    pub fn all(&self) -> Vec<Entry> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Ids of the entries handled at least once.
    pub fn ids(&self) -> HashSet<String> {
        self.all().into_iter().map(|e| e.id).collect()
    }

    /// Per owner, the seqs in the order of their first completion.
    pub fn first_completions(&self) -> HashMap<String, Vec<u64>> {
        let mut out: HashMap<String, Vec<u64>> = HashMap::new();
        for entry in self.all() {
            let seqs = out.entry(entry.owner).or_default();
            if !seqs.contains(&entry.seq) {
                seqs.push(entry.seq);
            }
        }
        out
    }
}

/// Pending plus retrying events of the default group.
pub async fn backlog<B: Backend>(queue: &TitoQueue<B>) -> u64 {
    backlog_of(queue, tito::queue::DEFAULT_GROUP).await
}

/// Pending plus retrying events of `group`.
pub async fn backlog_of<B: Backend>(queue: &TitoQueue<B>, group: &str) -> u64 {
    queue
        .lag(EVENT, group)
        .await
        .expect("lag")
        .iter()
        .map(|l| l.pending + l.retrying)
        .sum()
}

/// A partition key other than `key` that falls in the same partition.
pub fn same_partition_as(key: &str) -> String {
    let target = tito::types::partition_of(key);
    (0..)
        .map(|i| format!("other-{i}"))
        .find(|k| tito::types::partition_of(k) == target)
        .expect("some key shares the partition")
}
