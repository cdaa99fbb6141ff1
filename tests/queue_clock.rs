//! The queue on a simulated clock: workers read Tokio's time through `TokioClock`, so under
//! `tokio::time::pause` a handler stalled for minutes and leases expiring while it waits run in
//! moments of real time, and each worker's clock can run ahead of the others. Per-key order
//! holds while the skew stays under the margin a worker keeps before its lease expires (a tenth
//! of the lease TTL, at most a second).

mod queue_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use queue_support::{EVENT, Log, publish, quick_retry, wait_until_within};
use tito::queue::{TitoQueue, TokioClock, Worker};
use tito::{Embedded, TitoEngine};

const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
const PER_KEY: u64 = 10;

/// A worker whose leases last 10 s (of the test's clock), renewed every `heartbeat`.
fn worker(queue: &Arc<TitoQueue>, clock: TokioClock, heartbeat: Duration) -> Worker {
    Worker::new(queue.clone(), EVENT)
        .clock(clock)
        .lease_ttl(Duration::from_secs(10))
        .heartbeat(heartbeat)
        .poll_interval(Duration::from_millis(5))
        .idle_poll_interval(Duration::from_secs(1))
        .retry(quick_retry(5))
        .concurrency(4)
}

#[tokio::test(start_paused = true)]
async fn a_stall_longer_than_the_lease_under_skew_keeps_each_keys_order() {
    let db: TitoEngine = Embedded::temporary().await.unwrap();
    let queue = Arc::new(TitoQueue::new(db.clone()));
    for seq in 0..PER_KEY {
        for key in KEYS {
            publish(&db, key, seq).await.unwrap();
        }
    }
    let log = Log::default();
    let virtual_start = tokio::time::Instant::now();

    // The first worker, which renews its leases only every 30 s (a process that stalls whole
    // renews none), logs its first event, then stalls for two minutes. Its leases expire at
    // 10 s and the second worker, whose clock runs half a second ahead and which looks every
    // second, takes them and handles the key's events. When the stalled call returns, the rest
    // of its batch belongs to the new holder: no call for that key may follow.
    let stalled = Arc::new(AtomicBool::new(false));
    let stalled_key = Arc::new(Mutex::new(String::new()));
    let late = Arc::new(AtomicUsize::new(0));
    let first = {
        let (log, stalled, late) = (log.clone(), stalled.clone(), late.clone());
        let stalled_key = stalled_key.clone();
        let heartbeat = Duration::from_secs(30);
        worker(&queue, TokioClock::new(), heartbeat).run(move |event| {
            let key = queue_support::entry_of(&event).owner;
            let stall = !stalled.swap(true, Ordering::SeqCst);
            let mut stalled_key = stalled_key.lock().unwrap();
            if stall {
                *stalled_key = key;
            } else if *stalled_key == key && virtual_start.elapsed() >= Duration::from_secs(120) {
                late.fetch_add(1, Ordering::SeqCst);
            }
            log.push(&event);
            Box::pin(async move {
                if stall {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                }
                Ok(())
            })
        })
    };
    wait_until_within("the first worker to stall", 1, || {
        let stalled = stalled.clone();
        async move { stalled.load(Ordering::SeqCst) }
    })
    .await;
    let second = {
        let log = log.clone();
        let clock = TokioClock::new().ahead(Duration::from_millis(500));
        worker(&queue, clock, Duration::from_secs(1)).run(move |event| {
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    };
    let total = KEYS.len() * PER_KEY as usize;
    wait_until_within("every event handled", 20, || {
        let log = log.clone();
        async move { log.ids().len() == total }
    })
    .await;
    // The stalled handler wakes up after its leases were taken: it must not run again.
    tokio::time::sleep(Duration::from_secs(150)).await;
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();

    assert!(
        virtual_start.elapsed() >= Duration::from_secs(150),
        "the test's clock is virtual"
    );
    assert_eq!(
        late.load(Ordering::SeqCst),
        0,
        "the stalled worker went on with its key after its lease could be taken"
    );
    let order = log.first_completions();
    for key in KEYS {
        let expected: Vec<u64> = (0..PER_KEY).collect();
        assert_eq!(
            order.get(key),
            Some(&expected),
            "order of {key}: {:?}",
            log.all()
        );
    }
}

/// A worker with a `linger` looks for events at most once per linger: events published while it
/// lingers wait for its next look, and are handled together.
#[tokio::test(start_paused = true)]
async fn a_lingering_worker_handles_what_was_published_meanwhile_together() {
    let db: TitoEngine = Embedded::temporary().await.unwrap();
    let queue = Arc::new(TitoQueue::new(db.clone()));
    let linger = Duration::from_secs(10);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let handle = {
        let calls = calls.clone();
        worker(&queue, TokioClock::new(), Duration::from_secs(3))
            .linger(linger)
            .run(move |event| {
                let seq = queue_support::entry_of(&event).seq;
                calls
                    .lock()
                    .unwrap()
                    .push((seq, tokio::time::Instant::now()));
                Box::pin(async { Ok(()) })
            })
    };
    let handled = |n: usize| {
        let calls = calls.clone();
        async move { calls.lock().unwrap().len() >= n }
    };
    publish(&db, "k0", 0).await.unwrap();
    wait_until_within("the first event", 1, || handled(1)).await;
    let published = tokio::time::Instant::now();
    publish(&db, "k0", 1).await.unwrap();
    publish(&db, "k0", 2).await.unwrap();
    wait_until_within("the next two events", 1, || handled(3)).await;
    handle.shutdown().await.unwrap();

    let calls = calls.lock().unwrap().clone();
    let seqs: Vec<u64> = calls.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    let waited = calls[1].1 - published;
    assert!(
        waited >= linger * 9 / 10 && waited <= linger * 2,
        "published while the worker lingered, handled after {waited:?}"
    );
    assert_eq!(calls[1].1, calls[2].1, "handled in the same look");
}
