//! The retrying runner against injected commit failures: a conflict is retried, attempts stop at
//! the policy's limit with the last conflict, and a commit whose outcome is unknown is never
//! replayed; a backend answering a batched read with too few values is reported, not misread.
//! The failures are injected over the backend `TITO_TIKV_PD` names (see `support`).

mod support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tito::backend::{AnyTx, Backend, BackendTx, KeyRange, KvPair, TxKind};
use tito::{AnyBackend, RetryPolicy, TitoEngine, TitoError};

type Result<T> = std::result::Result<T, TitoError>;

/// The test backend, with commits that fail as told: each commit takes the next scripted
/// error, after really committing when the error is an unknown outcome (as a lost reply would).
/// While `short_reads` is set, batched reads drop their last value (a broken backend).
#[derive(Clone)]
struct Scripted {
    inner: AnyBackend,
    failures: Arc<Mutex<VecDeque<TitoError>>>,
    short_reads: Arc<AtomicBool>,
}

struct ScriptedTx {
    inner: AnyTx,
    failures: Arc<Mutex<VecDeque<TitoError>>>,
    short_reads: Arc<AtomicBool>,
}

impl Backend for Scripted {
    type Tx = ScriptedTx;

    async fn begin(&self, kind: TxKind) -> Result<ScriptedTx> {
        Ok(ScriptedTx {
            inner: self.inner.begin(kind).await?,
            failures: self.failures.clone(),
            short_reads: self.short_reads.clone(),
        })
    }

    fn name(&self) -> &'static str {
        "scripted"
    }
}

impl BackendTx for ScriptedTx {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut values = self.inner.batch_get(keys).await?;
        if self.short_reads.load(Ordering::SeqCst) {
            values.pop();
        }
        Ok(values)
    }
    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.inner.put(key, value).await
    }
    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.inner.scan(range, limit).await
    }
    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.inner.scan_reverse(range, limit).await
    }
    async fn commit(self) -> Result<()> {
        let failure = self.failures.lock().unwrap().pop_front();
        match failure {
            None => self.inner.commit().await,
            Some(e @ TitoError::CommitOutcomeUnknown(_)) => {
                self.inner.commit().await?;
                Err(e)
            }
            Some(e) => {
                self.inner.rollback().await?;
                Err(e)
            }
        }
    }
    async fn rollback(self) -> Result<()> {
        self.inner.rollback().await
    }
}

async fn scripted() -> (TitoEngine<Scripted>, Arc<Mutex<VecDeque<TitoError>>>) {
    let (db, failures, _) = scripted_with_reads().await;
    (db, failures)
}

async fn scripted_with_reads() -> (
    TitoEngine<Scripted>,
    Arc<Mutex<VecDeque<TitoError>>>,
    Arc<AtomicBool>,
) {
    let failures = Arc::new(Mutex::new(VecDeque::new()));
    let short_reads = Arc::new(AtomicBool::new(false));
    let backend = Scripted {
        inner: support::backend().await,
        failures: failures.clone(),
        short_reads: short_reads.clone(),
    };
    (
        TitoEngine::new(backend).await.unwrap(),
        failures,
        short_reads,
    )
}

/// Issue 11, defect 8: callers pair a batched read's values with its keys by position; a short
/// answer used to panic (`split_at`) or pair values with the wrong keys.
#[tokio::test]
async fn a_short_batched_read_is_a_backend_error() {
    let (db, _, short_reads) = scripted_with_reads().await;
    short_reads.store(true, Ordering::SeqCst);
    let tx = db.begin().await.unwrap();
    let read = tx.batch_get(&[b"a".to_vec(), b"b".to_vec()]).await;
    assert!(matches!(read, Err(TitoError::Backend(_))), "got {read:?}");
    tx.rollback().await.unwrap();
}

const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(1),
    max_delay: Duration::from_millis(4),
};

/// Runs a closure that counts its runs and writes `key`, with `POLICY`.
async fn run(db: &TitoEngine<Scripted>, runs: &Arc<AtomicU32>) -> Result<()> {
    db.transaction_with_retry(POLICY, |tx| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tx.put(b"key".to_vec(), b"value".to_vec()).await
        }
    })
    .await
}

#[tokio::test]
async fn a_conflicting_commit_is_retried_until_it_succeeds() {
    let (db, failures) = scripted().await;
    failures
        .lock()
        .unwrap()
        .push_back(TitoError::Conflict("injected".into()));
    let runs = Arc::new(AtomicU32::new(0));
    run(&db, &runs).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn attempts_stop_at_the_limit_with_the_last_conflict() {
    let (db, failures) = scripted().await;
    for i in 0..5 {
        failures
            .lock()
            .unwrap()
            .push_back(TitoError::Conflict(format!("injected {i}")));
    }
    let runs = Arc::new(AtomicU32::new(0));
    let err = run(&db, &runs).await.unwrap_err();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert!(
        matches!(&err, TitoError::Conflict(m) if m == "injected 2"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_commit_with_an_unknown_outcome_is_never_replayed() {
    let (db, failures) = scripted().await;
    failures
        .lock()
        .unwrap()
        .push_back(TitoError::CommitOutcomeUnknown("reply lost".into()));
    let runs = Arc::new(AtomicU32::new(0));
    let err = run(&db, &runs).await.unwrap_err();
    assert!(matches!(err, TitoError::CommitOutcomeUnknown(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(runs.load(Ordering::SeqCst), 1, "not replayed");
    let tx = db.snapshot().await.unwrap();
    assert_eq!(
        tx.get(b"key").await.unwrap(),
        Some(b"value".to_vec()),
        "the write did land: replaying it would have applied it twice"
    );
}
