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

/// A single delete removes like a delete, and a key written again after it can be
/// single-deleted again (a queue entry's key is reused only after its removal). It may be blind:
/// a write racing it either conflicts or commits after it, never both lost.
async fn single_delete_removes<B: Backend>(backend: &B) {
    let p = prefix();
    let key = k(&p, b"once");
    for round in 0..3u8 {
        put_all(backend, std::slice::from_ref(&key)).await;
        let mut first = backend.begin(TxKind::Optimistic).await.unwrap();
        let mut second = backend.begin(TxKind::Optimistic).await.unwrap();
        first.single_delete(key.clone()).await.unwrap();
        assert_eq!(first.get(&key).await.unwrap(), None, "round {round}");
        let range = KeyRange::prefix(&p);
        assert!(first.scan(range, 10).await.unwrap().is_empty());
        second.put(key.clone(), vec![round]).await.unwrap();
        first.commit().await.unwrap();
        let expected = match second.commit().await {
            Ok(()) => Some(vec![round]),
            Err(TitoError::Conflict(_)) => None,
            Err(e) => panic!("round {round}: {e}"),
        };
        let mut check = backend.begin(TxKind::ReadOnly).await.unwrap();
        assert_eq!(check.get(&key).await.unwrap(), expected, "round {round}");
        check.rollback().await.unwrap();
        if expected.is_some() {
            let mut clear = backend.begin(TxKind::Optimistic).await.unwrap();
            clear.single_delete(key.clone()).await.unwrap();
            clear.commit().await.unwrap();
        }
    }
}

/// A unique put writes like a put: read back in its transaction, in scans, after its commit,
/// and single-deleted like any queue entry.
async fn put_unique_writes<B: Backend>(backend: &B) {
    let p = prefix();
    let (a, b) = (k(&p, b"a"), k(&p, b"b"));
    let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
    tx.put_unique(a.clone(), b"1".to_vec()).await.unwrap();
    tx.put(b.clone(), b"2".to_vec()).await.unwrap();
    assert_eq!(tx.get(&a).await.unwrap(), Some(b"1".to_vec()));
    let range = KeyRange::prefix(&p);
    let expected = vec![(a.clone(), b"1".to_vec()), (b.clone(), b"2".to_vec())];
    assert_eq!(tx.scan(range.clone(), 10).await.unwrap(), expected);
    tx.commit().await.unwrap();
    let mut check = backend.begin(TxKind::Optimistic).await.unwrap();
    assert_eq!(check.scan(range.clone(), 10).await.unwrap(), expected);
    check.single_delete(a).await.unwrap();
    check.commit().await.unwrap();
    let mut check = backend.begin(TxKind::ReadOnly).await.unwrap();
    assert_eq!(check.scan(range, 10).await.unwrap(), expected[1..]);
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
    put_within(backend, key, value, Duration::from_secs(30)).await;
}

/// Writes `key` in its own transaction, retrying retryable errors for up to `wait`.
async fn put_within<B: Backend>(backend: &B, key: &[u8], value: &[u8], wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
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

async fn pessimistic_read_then_write_loses_no_update<B: Backend>(backend: &B) {
    let p = prefix();
    let key = k(&p, b"balance");
    put_all(backend, std::slice::from_ref(&key)).await;
    // T1 reads the key; T2 writes it and tries to commit; T1 then writes it and commits.
    let mut first = backend.begin(TxKind::Pessimistic).await.unwrap();
    let read = first.get(&key).await.unwrap();
    assert_eq!(read, Some(key.clone()));
    let second = tokio::spawn({
        let (backend, key) = (backend.clone(), key.clone());
        async move {
            let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
            tx.put(key, b"second".to_vec()).await.unwrap();
            tx.commit().await
        }
    });
    // Give the second writer time to commit, or to wait on the first one's lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second_done_first = second.is_finished();
    first.put(key.clone(), b"first".to_vec()).await.unwrap();
    let first_outcome = first.commit().await;
    let second_outcome = second.await.unwrap();
    let mut check = backend.begin(TxKind::ReadOnly).await.unwrap();
    let last = check.get(&key).await.unwrap();
    check.rollback().await.unwrap();
    // A lost update: the second write committed before the first transaction committed a
    // value computed from a read that never saw it.
    let lost = second_done_first
        && second_outcome.is_ok()
        && first_outcome.is_ok()
        && last == Some(b"first".to_vec());
    assert!(
        !lost,
        "the pessimistic transaction overwrote a commit it never read: \
         first {first_outcome:?}, second {second_outcome:?}"
    );
    if let Err(e) = &first_outcome {
        assert!(e.is_retryable(), "{e:?}");
    }
    if let Err(e) = &second_outcome {
        assert!(e.is_retryable(), "{e:?}");
    }
    // Whatever committed, the stored value is one that was written.
    assert!(
        [Some(b"first".to_vec()), Some(b"second".to_vec())].contains(&last),
        "{last:?}"
    );
}

async fn concurrent_pessimistic_increments_lose_nothing<B: Backend>(backend: &B) {
    const WRITERS: u64 = 8;
    const EACH: u64 = 5;
    let key = k(&prefix(), b"counter");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (backend, key) = (backend.clone(), key.clone());
            tokio::spawn(async move {
                for _ in 0..EACH {
                    increment(&backend, &key).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut check = backend.begin(TxKind::ReadOnly).await.unwrap();
    assert_eq!(counter(check.get(&key).await.unwrap()), WRITERS * EACH);
    check.rollback().await.unwrap();
}

fn counter(value: Option<Vec<u8>>) -> u64 {
    value.map_or(0, |bytes| u64::from_be_bytes(bytes.try_into().unwrap()))
}

/// Adds one to the counter at `key` in a pessimistic transaction, retrying retryable errors.
async fn increment<B: Backend>(backend: &B, key: &[u8]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut tx = backend.begin(TxKind::Pessimistic).await.unwrap();
        let outcome = async {
            let value = counter(tx.get(key).await?) + 1;
            tx.put(key.to_vec(), value.to_be_bytes().to_vec()).await
        }
        .await;
        let outcome = match outcome {
            Ok(()) => tx.commit().await,
            Err(e) => {
                tx.rollback().await.unwrap();
                Err(e)
            }
        };
        match outcome {
            Ok(()) => return,
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {}
            Err(e) => panic!("increment failed: {e}"),
        }
    }
}

async fn a_value_at_the_size_limit_round_trips<B: Backend>(backend: &B) {
    let engine = tito::TitoEngine::new(backend.clone()).await.unwrap();
    let key = k(&prefix(), b"large");
    // The limit, as the engine states it when refusing a larger value.
    let tx = engine.begin().await.unwrap();
    let limit = match tx.put(key.clone(), vec![0; 64 << 20]).await {
        Err(TitoError::TooLarge { limit, .. }) => limit,
        other => panic!("a 64 MiB value must be refused, got {other:?}"),
    };
    tx.rollback().await.unwrap();
    let value: Vec<u8> = (0..limit).map(|i| (i % 251) as u8).collect();
    let tx = engine.begin().await.unwrap();
    tx.put(key.clone(), value.clone()).await.unwrap();
    tx.commit().await.unwrap();
    let mut read = backend.begin(TxKind::ReadOnly).await.unwrap();
    assert!(read.get(&key).await.unwrap() == Some(value.clone()));
    let batch = read.batch_get(std::slice::from_ref(&key)).await.unwrap();
    assert!(batch == vec![Some(value.clone())]);
    let rows = read.scan(KeyRange::from(key.clone()), 1).await.unwrap();
    assert!(rows.len() == 1 && rows[0].1 == value);
    read.rollback().await.unwrap();
}

async fn a_scan_of_a_thousand_rows_of_8_kib_returns_them_all<B: Backend>(backend: &B) {
    let p = prefix();
    let value = vec![0x5A; 8 << 10];
    for chunk in 0..4u32 {
        let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
        for i in chunk * 250..(chunk + 1) * 250 {
            tx.put(k(&p, format!("{i:04}").as_bytes()), value.clone())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let mut tx = backend.begin(TxKind::ReadOnly).await.unwrap();
    let rows = tx.scan(KeyRange::prefix(&p), 1000).await.unwrap();
    assert_eq!(rows.len(), 1000);
    assert!(rows.iter().all(|(_, v)| *v == value));
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    let rows = tx
        .scan_reverse(KeyRange::prefix(&p), usize::MAX)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1000);
    assert_eq!(keys(&rows[..1], &p), vec![b"0999".to_vec()]);
    let all: Vec<Vec<u8>> = (0..1000)
        .map(|i| k(&p, format!("{i:04}").as_bytes()))
        .collect();
    let values = tx.batch_get(&all).await.unwrap();
    assert!(
        values
            .iter()
            .all(|v| v.as_deref() == Some(value.as_slice()))
    );
    tx.rollback().await.unwrap();
}

async fn an_abandoned_locking_read_releases_its_lock<B: Backend>(backend: &B) {
    let p = prefix();
    let key = k(&p, b"held");
    put_all(backend, std::slice::from_ref(&key)).await;
    // The holder locks the key; the waiter's locking read of it is cut off while it waits.
    let mut holder = backend.begin(TxKind::Pessimistic).await.unwrap();
    holder.get(&key).await.unwrap();
    let waiter = tokio::spawn({
        let (backend, key) = (backend.clone(), key.clone());
        async move {
            let mut tx = backend.begin(TxKind::Pessimistic).await.unwrap();
            let _ = tx.get(&key).await;
            std::future::pending::<()>().await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    waiter.abort();
    let _ = waiter.await;
    holder.rollback().await.unwrap();
    // Neither the holder's lock nor one granted to the abandoned request outlives them.
    put_within(backend, &key, b"after", Duration::from_secs(5)).await;
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
    single_delete_removes(backend).await;
    put_unique_writes(backend).await;
    if serializable {
        read_write_conflict(backend).await;
    }
    cancelled_transaction_leaves_nothing(backend).await;
    read_only_refuses_writes(backend).await;
    pessimistic_read_then_write_loses_no_update(backend).await;
    concurrent_pessimistic_increments_lose_nothing(backend).await;
    a_value_at_the_size_limit_round_trips(backend).await;
    a_scan_of_a_thousand_rows_of_8_kib_returns_them_all(backend).await;
    an_abandoned_locking_read_releases_its_lock(backend).await;
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
    single_delete_removes,
    put_unique_writes,
    read_write_conflict,
    cancelled_transaction_leaves_nothing,
    read_only_refuses_writes,
    pessimistic_read_then_write_loses_no_update,
    concurrent_pessimistic_increments_lose_nothing,
    a_value_at_the_size_limit_round_trips,
    a_scan_of_a_thousand_rows_of_8_kib_returns_them_all,
    an_abandoned_locking_read_releases_its_lock,
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
