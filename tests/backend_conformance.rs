//! The backend conformance suite: one set of checks every storage backend must pass.
//!
//! It runs against the embedded backend always, and against TiKV when `TITO_TIKV_PD` holds
//! comma-separated PD endpoints (build with `--features tikv`); otherwise the TiKV run reports
//! that it was skipped.

use std::time::Duration;

use tito::backend::{Backend, BackendTx, KeyRange, KvPair, TxKind};
use tito::{Embedded, TitoError};

/// Keys of one check live under a fresh prefix, so checks never see each other's data, even on a
/// shared TiKV cluster.
fn prefix() -> Vec<u8> {
    let mut p = b"conformance/".to_vec();
    p.extend_from_slice(tito::DBUuid::new_v4().as_bytes());
    p.push(b'/');
    p
}

fn k(prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    [prefix, suffix].concat()
}

fn keys(rows: &[KvPair], prefix: &[u8]) -> Vec<Vec<u8>> {
    rows.iter()
        .map(|(key, _)| key[prefix.len()..].to_vec())
        .collect()
}

async fn put_all<B: Backend>(backend: &B, pairs: &[Vec<u8>]) {
    let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
    for key in pairs {
        tx.put(key.clone(), key.clone()).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn raw_bytes_order_and_scans<B: Backend>(backend: &B) {
    let p = prefix();
    let suffixes: Vec<Vec<u8>> = vec![
        vec![0xFF],
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x7F, 0xFF],
        vec![0x01],
        b"a2".to_vec(),
        b"a20".to_vec(),
        b"a3".to_vec(),
    ];
    put_all(
        backend,
        &suffixes.iter().map(|s| k(&p, s)).collect::<Vec<_>>(),
    )
    .await;
    let mut sorted = suffixes.clone();
    sorted.sort();

    let mut tx = backend.begin(TxKind::ReadOnly).await.unwrap();
    let all = KeyRange::prefix(&p);
    let rows = tx.scan(all.clone(), usize::MAX).await.unwrap();
    assert_eq!(keys(&rows, &p), sorted, "ascending byte order");
    assert!(rows.iter().all(|(key, value)| key == value));
    let rows = tx.scan_reverse(all.clone(), usize::MAX).await.unwrap();
    let mut reversed = sorted.clone();
    reversed.reverse();
    assert_eq!(keys(&rows, &p), reversed, "descending byte order");

    for limit in [0, 1, sorted.len(), sorted.len() + 5] {
        let rows = tx.scan(all.clone(), limit).await.unwrap();
        assert_eq!(keys(&rows, &p), sorted[..limit.min(sorted.len())]);
        let rows = tx.scan_reverse(all.clone(), limit).await.unwrap();
        assert_eq!(keys(&rows, &p), reversed[..limit.min(sorted.len())]);
    }

    // Bounds are half-open: start included, end excluded, in both directions.
    let range = KeyRange::new(k(&p, b"\x01"), k(&p, b"a3"));
    let rows = tx.scan(range.clone(), usize::MAX).await.unwrap();
    assert_eq!(
        keys(&rows, &p),
        vec![b"\x01".to_vec(), b"a2".to_vec(), b"a20".to_vec()]
    );
    let rows = tx.scan_reverse(range, 2).await.unwrap();
    assert_eq!(keys(&rows, &p), vec![b"a20".to_vec(), b"a2".to_vec()]);

    // Empty ranges: start == end, and start > end.
    let same = KeyRange::new(k(&p, b"a2"), k(&p, b"a2"));
    assert!(tx.scan(same.clone(), 10).await.unwrap().is_empty());
    assert!(tx.scan_reverse(same, 10).await.unwrap().is_empty());
    let inverted = KeyRange::new(k(&p, b"b"), k(&p, b"a"));
    assert!(tx.scan(inverted, 10).await.unwrap().is_empty());
    tx.rollback().await.unwrap();
}

async fn unbounded_end<B: Backend>(backend: &B) {
    // A range with no end reaches the last key of the keyspace.
    let mut last = vec![0xFF; 8];
    last.extend_from_slice(tito::DBUuid::new_v4().as_bytes());
    put_all(backend, std::slice::from_ref(&last)).await;
    let mut tx = backend.begin(TxKind::ReadOnly).await.unwrap();
    let rows = tx.scan(KeyRange::from(last.clone()), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    let rows = tx
        .scan_reverse(KeyRange::from(last[..8].to_vec()), 1)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    tx.rollback().await.unwrap();
    let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
    tx.delete(last).await.unwrap();
    tx.commit().await.unwrap();
}

async fn read_your_writes<B: Backend>(backend: &B) {
    let p = prefix();
    put_all(backend, &[k(&p, b"b"), k(&p, b"d")]).await;
    let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
    tx.put(k(&p, b"a"), b"new".to_vec()).await.unwrap();
    tx.put(k(&p, b"c"), b"new".to_vec()).await.unwrap();
    tx.put(k(&p, b"d"), b"changed".to_vec()).await.unwrap();
    tx.delete(k(&p, b"b")).await.unwrap();

    assert_eq!(tx.get(&k(&p, b"a")).await.unwrap(), Some(b"new".to_vec()));
    assert_eq!(tx.get(&k(&p, b"b")).await.unwrap(), None);
    assert_eq!(
        tx.get(&k(&p, b"d")).await.unwrap(),
        Some(b"changed".to_vec())
    );
    let got = tx
        .batch_get(&[k(&p, b"d"), k(&p, b"zz"), k(&p, b"a"), k(&p, b"b")])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![Some(b"changed".to_vec()), None, Some(b"new".to_vec()), None]
    );

    let all = KeyRange::prefix(&p);
    let rows = tx.scan(all.clone(), usize::MAX).await.unwrap();
    assert_eq!(
        keys(&rows, &p),
        vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
    assert_eq!(rows[2].1, b"changed".to_vec());
    let rows = tx.scan_reverse(all.clone(), 2).await.unwrap();
    assert_eq!(keys(&rows, &p), vec![b"d".to_vec(), b"c".to_vec()]);

    // Another transaction does not see uncommitted writes.
    let mut other = backend.begin(TxKind::ReadOnly).await.unwrap();
    let rows = other.scan(all.clone(), usize::MAX).await.unwrap();
    assert_eq!(keys(&rows, &p), vec![b"b".to_vec(), b"d".to_vec()]);
    other.rollback().await.unwrap();

    tx.commit().await.unwrap();
    let mut later = backend.begin(TxKind::ReadOnly).await.unwrap();
    let rows = later.scan(all, usize::MAX).await.unwrap();
    assert_eq!(
        keys(&rows, &p),
        vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
    later.rollback().await.unwrap();
}

async fn rollback_discards<B: Backend>(backend: &B) {
    let p = prefix();
    put_all(backend, &[k(&p, b"kept")]).await;
    let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
    tx.put(k(&p, b"new"), b"x".to_vec()).await.unwrap();
    tx.delete(k(&p, b"kept")).await.unwrap();
    tx.rollback().await.unwrap();
    let mut check = backend.begin(TxKind::ReadOnly).await.unwrap();
    assert_eq!(check.get(&k(&p, b"new")).await.unwrap(), None);
    assert_eq!(
        check.get(&k(&p, b"kept")).await.unwrap(),
        Some(k(&p, b"kept"))
    );
    check.rollback().await.unwrap();
}

async fn blind_write_write_conflict<B: Backend>(backend: &B) {
    let p = prefix();
    let key = k(&p, b"contended");
    let mut first = backend.begin(TxKind::Optimistic).await.unwrap();
    let mut second = backend.begin(TxKind::Optimistic).await.unwrap();
    first.put(key.clone(), b"first".to_vec()).await.unwrap();
    second.put(key.clone(), b"second".to_vec()).await.unwrap();
    first.commit().await.unwrap();
    let outcome = second.commit().await;
    assert!(
        matches!(outcome, Err(TitoError::Conflict(_))),
        "the second blind writer must get a retryable conflict, got {outcome:?}"
    );
    let mut check = backend.begin(TxKind::ReadOnly).await.unwrap();
    assert_eq!(check.get(&key).await.unwrap(), Some(b"first".to_vec()));
    check.rollback().await.unwrap();
}

async fn read_write_conflict<B: Backend>(backend: &B) {
    let p = prefix();
    put_all(backend, &[k(&p, b"x"), k(&p, b"y")]).await;
    // Write skew: each reads one key and writes the other.
    let mut first = backend.begin(TxKind::Optimistic).await.unwrap();
    let mut second = backend.begin(TxKind::Optimistic).await.unwrap();
    first.get(&k(&p, b"x")).await.unwrap();
    second.get(&k(&p, b"y")).await.unwrap();
    first.put(k(&p, b"y"), b"1".to_vec()).await.unwrap();
    second.put(k(&p, b"x"), b"2".to_vec()).await.unwrap();
    first.commit().await.unwrap();
    assert!(matches!(second.commit().await, Err(TitoError::Conflict(_))));
}

async fn cancelled_transaction_leaves_nothing<B: Backend>(backend: &B) {
    // A pessimistic transaction holds a lock on TiKV from its first write: dropping it must
    // release the lock (a background rollback), not panic.
    for kind in [TxKind::Optimistic, TxKind::Pessimistic] {
        let p = prefix();
        let key = k(&p, b"half");
        let (wrote, written) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let backend = backend.clone();
            let key = key.clone();
            async move {
                let mut tx = backend.begin(kind).await.unwrap();
                tx.put(key, b"x".to_vec()).await.unwrap();
                wrote.send(()).unwrap();
                std::future::pending::<()>().await;
                tx.commit().await.unwrap();
            }
        });
        written
            .await
            .expect("the transaction failed before its write");
        // Cancelled mid-way: the transaction is dropped without commit or rollback.
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let mut check = backend.begin(TxKind::ReadOnly).await.unwrap();
        assert_eq!(check.get(&key).await.unwrap(), None, "{kind:?}");
        check.rollback().await.unwrap();
        // The key stays writable once the dropped transaction's lock, if any, is gone.
        put_retrying(backend, &key, b"after").await;
        let mut check = backend.begin(TxKind::ReadOnly).await.unwrap();
        assert_eq!(check.get(&key).await.unwrap(), Some(b"after".to_vec()));
        check.rollback().await.unwrap();
    }
}

/// Writes `key` in its own transaction, retrying conflicts for up to 30 seconds.
async fn put_retrying<B: Backend>(backend: &B, key: &[u8], value: &[u8]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
        tx.put(key.to_vec(), value.to_vec()).await.unwrap();
        match tx.commit().await {
            Ok(()) => return,
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the key stayed unwritable: {e}"),
        }
    }
}

async fn read_only_refuses_writes<B: Backend>(backend: &B) {
    let mut tx = backend.begin(TxKind::ReadOnly).await.unwrap();
    assert!(tx.put(prefix(), b"x".to_vec()).await.is_err());
    tx.rollback().await.unwrap();
}

/// Every check, for backends reached over the network where one test must do it all.
async fn run_all<B: Backend>(backend: &B, serializable: bool) {
    raw_bytes_order_and_scans(backend).await;
    unbounded_end(backend).await;
    read_your_writes(backend).await;
    rollback_discards(backend).await;
    blind_write_write_conflict(backend).await;
    if serializable {
        read_write_conflict(backend).await;
    }
    cancelled_transaction_leaves_nothing(backend).await;
    read_only_refuses_writes(backend).await;
}

fn embedded() -> Embedded {
    Embedded::temporary_builder().open_backend().unwrap()
}

macro_rules! embedded_checks {
    ($($check:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::embedded()).await;
                }
            )*
        }
    };
}

embedded_checks!(
    raw_bytes_order_and_scans,
    unbounded_end,
    read_your_writes,
    rollback_discards,
    blind_write_write_conflict,
    read_write_conflict,
    cancelled_transaction_leaves_nothing,
    read_only_refuses_writes,
);

#[tokio::test]
async fn embedded_reopen_keeps_committed_data() {
    let dir = std::env::temp_dir().join(format!("tito-reopen-{}", tito::DBUuid::new_v4()));
    {
        let backend = Embedded::builder(&dir).open_backend().unwrap();
        put_all(&backend, &[b"durable".to_vec()]).await;
        let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
        tx.put(b"uncommitted".to_vec(), b"x".to_vec())
            .await
            .unwrap();
        drop(tx);
    }
    let backend = Embedded::builder(&dir)
        .temporary(true)
        .open_backend()
        .unwrap();
    let mut tx = backend.begin(TxKind::ReadOnly).await.unwrap();
    assert_eq!(tx.get(b"durable").await.unwrap(), Some(b"durable".to_vec()));
    assert_eq!(tx.get(b"uncommitted").await.unwrap(), None);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn embedded_run_all_in_one_database() {
    run_all(&embedded(), true).await;
}

/// The command that runs the TiKV checks, for the skip message.
const TIKV_COMMAND: &str =
    "TITO_TIKV_PD=127.0.0.1:2379 cargo test --features tikv --test backend_conformance";

#[cfg(feature = "tikv")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tikv_conformance() {
    let Ok(endpoints) = std::env::var("TITO_TIKV_PD") else {
        skipped("TITO_TIKV_PD is not set (comma-separated PD endpoints)");
        return;
    };
    let endpoints: Vec<String> = endpoints.split(',').map(str::to_string).collect();
    let engine = tito::TiKV::connect(endpoints).await.unwrap();
    // TiKV's optimistic transactions are snapshot isolation: read-write conflicts go undetected.
    run_all(engine.backend(), false).await;
}

#[cfg(feature = "tikv")]
#[tokio::test]
async fn tikv_unreachable_pd_is_an_error() {
    let outcome = tito::TiKV::connect(vec!["127.0.0.1:1"]).await;
    assert!(matches!(outcome, Err(TitoError::Backend(_))), "{outcome:?}");
}

#[cfg(not(feature = "tikv"))]
#[test]
fn tikv_conformance() {
    skipped("built without feature `tikv`");
}

/// Says on the terminal, past the test harness's output capture, that the TiKV run was skipped.
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED tikv_conformance: {why}; run `{TIKV_COMMAND}`"
    );
}
