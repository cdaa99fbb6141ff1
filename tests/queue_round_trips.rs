//! Round trips of the queue, counted with the `Counting` backend: publishing costs one batched
//! read on top of the write, and events are read and acknowledged in batches. The counts are of
//! backend calls, so they hold on the backend `TITO_TIKV_PD` names too (`support::backend`).

mod queue_support;

use std::sync::Arc;
use std::time::Duration;

use queue_support::{EVENT, Entry, support, wait_until};
use tito::backend::Counting;
use tito::queue::{TitoQueue, Worker};
use tito::{AnyBackend, TitoEngine, TitoOperation, TitoOptions};

async fn counting() -> (Counting<AnyBackend>, TitoEngine<Counting<AnyBackend>>) {
    let backend = Counting::new(support::backend().await);
    let db = TitoEngine::new(backend.clone()).await.unwrap();
    (backend, db)
}

async fn insert(db: &TitoEngine<Counting<AnyBackend>>, n: u64, options: TitoOptions) {
    let model = db.clone().model::<Entry>();
    let entry = Entry {
        id: format!("e{n}"),
        owner: "one-key".into(),
        seq: n,
    };
    db.transaction(|tx| async move { model.build_with_options(entry, options, &tx).await })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_costs_one_batched_read() {
    let (backend, db) = counting().await;
    backend.take();
    insert(&db, 0, TitoOptions::default()).await;
    let plain = backend.take();
    insert(&db, 1, TitoOptions::with_events(TitoOperation::Insert)).await;
    let with_events = backend.take();
    assert_eq!(with_events.round_trips(), plain.round_trips() + 1);
    assert_eq!(with_events.batch_get, plain.batch_get + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_acknowledged_in_batches() {
    let (backend, db) = counting().await;
    for n in 0..200 {
        insert(&db, n, TitoOptions::with_events(TitoOperation::Insert)).await;
    }
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    backend.take();
    let handled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let worker = {
        let handled = handled.clone();
        Worker::new(queue.clone(), EVENT)
            .batch_size(100)
            .poll_interval(Duration::from_millis(5))
            .run(move |_| {
                handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            })
    };
    wait_until("all handled", || async {
        queue.lag(EVENT, "default").await.unwrap().is_empty()
    })
    .await;
    worker.shutdown().await.unwrap();
    assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 200);
    // Group check, first heartbeat, two acknowledgements of 100, shutdown release: a handful of
    // commits, not one per event (lag polling above adds none: snapshots do not commit). On
    // TiKV the run lasts seconds, and every heartbeat interval in it adds a commit.
    let counts = backend.take();
    let budget = if support::on_tikv() { 20 } else { 8 };
    assert!(counts.commit <= budget, "{counts:?}");
}
