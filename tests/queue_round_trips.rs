//! Round trips of the queue, counted with the `Counting` backend: publishing costs one batched
//! read on top of the write, and events are read and acknowledged in batches. The counts are of
//! backend calls, so they hold on the backend `TITO_TIKV_PD` names too (`support::backend`).

mod queue_support;

use std::sync::Arc;
use std::time::Duration;

use queue_support::{EVENT, Entry, Log, logging_worker, support, wait_until, wait_until_within};
use tito::backend::{Backend, Counting, Latency};
use tito::queue::{DEFAULT_GROUP, ReadyMark, TitoQueue, Worker};
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
    // The first write registers the model's indexes, once per engine.
    insert(&db, 100, TitoOptions::default()).await;
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

/// Publishes `events` events over `keys` partition keys, 100 per transaction.
async fn publish_backlog<B: Backend>(db: &TitoEngine<Counting<B>>, events: u64, keys: u64) {
    let model = db.clone().model::<Entry>();
    for chunk in 0..events.div_ceil(100) {
        db.transaction(|tx| {
            let model = model.clone();
            async move {
                for n in chunk * 100..((chunk + 1) * 100).min(events) {
                    let entry = Entry {
                        id: format!("e{n}"),
                        owner: format!("owner-{}", n % keys),
                        seq: n,
                    };
                    let options = TitoOptions::with_events(TitoOperation::Insert);
                    model.build_with_options(entry, options, &tx).await?;
                }
                Ok::<_, tito::TitoError>(())
            }
        })
        .await
        .unwrap();
    }
}

/// Starts a worker that does nothing but count, and waits until it holds every partition.
async fn idle_worker<B: Backend>(
    queue: &Arc<TitoQueue<Counting<B>>>,
    poll: Duration,
) -> (tito::queue::WorkerHandle, Arc<std::sync::atomic::AtomicU64>) {
    let handled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let worker = {
        let handled = handled.clone();
        Worker::new(queue.clone(), EVENT)
            .poll_interval(poll)
            .idle_poll_interval(poll)
            .run(move |_| {
                handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            })
    };
    wait_until("every partition is held", || async {
        worker.stats().leases_acquired == u64::from(tito::types::PARTITIONS)
    })
    .await;
    (worker, handled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_pays_the_same_few_round_trips_per_look_whatever_it_holds() {
    let (backend, db) = counting().await;
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    let (worker, _) = idle_worker(&queue, Duration::from_millis(20)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    backend.take();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = backend.take();
    worker.shutdown().await.unwrap();
    // About 50 looks at 20 ms, each a snapshot and one read of the ready marks, and a heartbeat
    // or so; reading each of the 1024 partitions would be over 50,000 reads.
    assert!(counts.scan <= 120, "{counts:?}");
    assert!(counts.round_trips() <= 200, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_commit_wakes_an_idle_worker_at_once() {
    let (_, db) = counting().await;
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    // Polling so rare that only the wake-up can bring the event in time.
    let (worker, handled) = idle_worker(&queue, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let published = std::time::Instant::now();
    insert(&db, 1, TitoOptions::with_events(TitoOperation::Insert)).await;
    wait_until("the event is handled", || async {
        handled.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    assert!(published.elapsed() < Duration::from_secs(10));
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_across_hundreds_of_keys_drains_in_a_few_round_trips() {
    // Round trips matter over a network, where each costs a millisecond or more and the worker
    // batches what is ready meanwhile; on the bare embedded backend a commit takes microseconds,
    // and how many acknowledgements share one varies with the machine's load.
    let backend = Counting::new(Latency::new(
        support::backend().await,
        Duration::from_millis(1),
    ));
    let db = TitoEngine::new(backend.clone()).await.unwrap();
    publish_backlog(&db, 600, 200).await;
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    backend.take();
    let (worker, handled) = idle_worker(&queue, Duration::from_millis(50)).await;
    wait_until("the backlog is handled", || async {
        handled.load(std::sync::atomic::Ordering::SeqCst) == 600
    })
    .await;
    let counts = backend.take();
    worker.shutdown().await.unwrap();
    // 600 events of 200 keys in about 150 partitions: reads and acknowledgements are batched
    // across partitions, so this is a few tens of round trips (12-15 measured), not two or more
    // per partition.
    assert!(counts.round_trips() <= 40, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_marked_keys_than_a_sweep_reads_all_drain_without_rereading_the_first_ones() {
    let (backend, db) = counting().await;
    // More than twice as many keys as one full sweep reads (4,096 marks), one event each.
    publish_backlog(&db, 10_000, 10_000).await;
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    backend.take();
    let (worker, handled) = idle_worker(&queue, Duration::from_millis(5)).await;
    // 10,000 keys take a debug TiKV node about two minutes, more once it holds much history.
    wait_until_within("the backlog is handled", 3, || async {
        handled.load(std::sync::atomic::Ordering::SeqCst) == 10_000
    })
    .await;
    let counts = backend.take();
    worker.shutdown().await.unwrap();
    // A sweep that read the first 4,096 marks again and again would pay a read every 5 ms
    // until their marks aged out. On TiKV (a debug node drains this for minutes) full sweeps
    // run every 5 ms all along, by design, while they find work: the count says nothing there.
    if !support::on_tikv() {
        assert!(counts.scan <= 100, "{counts:?}");
    }
}

/// A worker handing its partitions over moves the ready marks of the keys it handled past their
/// events, so the next holder's first read of a key starts after them, not over their deleted
/// keys; and the next holder still finds what comes after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_handing_over_moves_the_marks_past_what_it_handled() {
    let (_, db) = counting().await;
    let queue = TitoQueue::new(db.clone());
    for n in 0..5 {
        insert(&db, n, TitoOptions::with_events(TitoOperation::Insert)).await;
    }
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    wait_until("five handled", || async { log.len() == 5 }).await;
    worker.shutdown().await.unwrap();

    let handled_up_to = (queue.checkpoints(EVENT, DEFAULT_GROUP).await.unwrap())
        .iter()
        .map(|c| c.last_position)
        .max()
        .unwrap();
    let partition = tito::types::partition_of("one-key");
    let key = tito::keyspace::queue::ready_key(EVENT, DEFAULT_GROUP, partition, "one-key");
    let snapshot = db.snapshot().await.unwrap();
    let stored = snapshot
        .get(&key)
        .await
        .unwrap()
        .expect("the key is still marked");
    let mark = ReadyMark::decode(&key, &stored).unwrap();
    assert!(
        mark.first > handled_up_to,
        "the mark starts at {} after handing over, not after {handled_up_to}",
        mark.first
    );
    assert_eq!(mark.latest, handled_up_to);

    insert(&db, 5, TitoOptions::with_events(TitoOperation::Insert)).await;
    let next = Log::default();
    let worker = logging_worker(&queue, &next);
    wait_until("the next event handled", || async { next.len() == 1 }).await;
    worker.shutdown().await.unwrap();
    assert_eq!(next.all()[0].seq, 5);
}

/// An event committed through the worker's own engine, right after the key's previous one, is
/// read by its key (one batched read, beside the others announced), not by a range read that
/// would step over every handled event not compacted yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_events_are_read_by_their_keys() {
    let (backend, db) = counting().await;
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    // Polling so rare that every event is found through its announcement.
    let (worker, handled) = idle_worker(&queue, Duration::from_secs(30)).await;
    // The key's first event: the worker knows nothing of it yet.
    insert(&db, 0, TitoOptions::with_events(TitoOperation::Insert)).await;
    wait_until("the first event is handled", || async {
        handled.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    backend.take();
    for n in 1..=30 {
        insert(&db, n, TitoOptions::with_events(TitoOperation::Insert)).await;
        wait_until("the event is handled", || async {
            handled.load(std::sync::atomic::Ordering::SeqCst) == n + 1
        })
        .await;
    }
    let counts = backend.take();
    worker.shutdown().await.unwrap();
    // One heartbeat or so may scan; a range read per event would be 30 scans.
    assert!(counts.scan <= 5, "{counts:?}");
    assert!(counts.batch_get >= 30, "{counts:?}");
}
