//! Leases: workers split partitions, take over a stopped worker's partitions after its leases
//! expire, cannot acknowledge once their lease is taken, drain and release on shutdown, and
//! pause on the leader flag.
//! They run on the backend `TITO_TIKV_PD` names (`queue_support::fresh`).

mod queue_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use queue_support::*;
use tito::KeyRange;
use tito::keyspace::queue as keys;
use tito::queue::{DEFAULT_GROUP, PartitionConfig, PartitionLease, Worker};
use tokio::sync::Notify;

/// Every lease of the default group, by partition.
async fn leases(queue: &Queue) -> Vec<(u32, PartitionLease)> {
    let prefix = keys::group_prefix(EVENT, DEFAULT_GROUP, "lease");
    let tx = queue.engine.snapshot().await.unwrap();
    let rows = tx.scan(KeyRange::prefix(&prefix), 2_000).await.unwrap();
    rows.iter()
        .map(|(key, value)| {
            let p = keys::partition_in_key(key, prefix.len()).unwrap();
            (p, PartitionLease::decode(key, value).unwrap())
        })
        .collect()
}

async fn owners(queue: &Queue) -> Vec<String> {
    leases(queue)
        .await
        .into_iter()
        .map(|(_, l)| l.owner)
        .collect()
}

async fn write_lease(queue: &Queue, partition: u32, lease: PartitionLease) {
    let key = keys::lease_key(EVENT, DEFAULT_GROUP, partition);
    queue
        .engine
        .transaction(|tx| async move { tx.put(key, lease.encode()).await })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_split_the_partitions_and_handle_everything_once_each() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let workers: Vec<_> = ["w1", "w2"]
        .map(|id| {
            let log = log.clone();
            // Long leases: no lease expires even on a loaded machine, so nothing moves.
            fast(&queue)
                .id(id)
                .lease_ttl(Duration::from_secs(30))
                .run(move |event| {
                    log.push(&event);
                    Box::pin(async { Ok(()) })
                })
        })
        .into();
    wait_until("the partitions are split", || async {
        let owners = owners(&queue).await;
        let w1 = owners.iter().filter(|o| *o == "w1").count();
        let w2 = owners.iter().filter(|o| *o == "w2").count();
        w1 + w2 == 1024 && w1 > 300 && w2 > 300
    })
    .await;
    for seq in 0..100 {
        publish(&db, &format!("owner-{seq}"), seq).await.unwrap();
    }
    wait_until("handled", || async { log.ids().len() == 100 }).await;
    for w in workers {
        w.shutdown().await.unwrap();
    }
    assert_eq!(log.len(), 100, "no event handled twice without a failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_workers_partitions_are_taken_over_after_its_leases_expire() {
    let (db, queue) = fresh().await;
    let (first, second) = (Log::default(), Log::default());
    let crashed = {
        let log = first.clone();
        fast(&queue).id("crashing").run(move |event| {
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    };
    publish(&db, "a", 0).await.unwrap();
    wait_until("the first worker handles", || async {
        first.len() == 1 && backlog(&queue).await == 0
    })
    .await;
    crashed.abort();
    let _ = crashed.await;
    assert!(
        owners(&queue).await.iter().all(|o| o == "crashing"),
        "a crash releases nothing"
    );
    for seq in 1..20 {
        publish(&db, &format!("owner-{seq}"), seq).await.unwrap();
    }
    let successor = {
        let log = second.clone();
        fast(&queue).id("successor").run(move |event| {
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    };
    wait_until("the successor handles everything", || async {
        second.len() == 19
    })
    .await;
    wait_until("the successor holds every partition", || async {
        owners(&queue).await.iter().all(|o| o == "successor")
    })
    .await;
    successor.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_was_taken_cannot_acknowledge() {
    let (db, queue) = fresh().await;
    let partition = tito::types::partition_of("victim");
    let range = PartitionConfig {
        start: partition,
        end: partition + 1,
    };
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let first = Log::default();
    let worker = {
        let (log, started, release) = (first.clone(), started.clone(), release.clone());
        fast(&queue)
            .id("first")
            .partitions(range)
            .run(move |event| {
                let (log, started, release) = (log.clone(), started.clone(), release.clone());
                Box::pin(async move {
                    started.notify_one();
                    release.notified().await;
                    log.push(&event);
                    Ok(())
                })
            })
    };
    publish(&db, "victim", 0).await.unwrap();
    started.notified().await;
    // Another worker takes the lease while the handler runs.
    let (_, held) = leases(&queue)
        .await
        .into_iter()
        .find(|(p, _)| *p == partition)
        .unwrap();
    assert_eq!(held.owner, "first");
    let stolen = PartitionLease {
        owner: "thief".into(),
        token: held.token + 1,
        expires_at: u64::MAX,
    };
    write_lease(&queue, partition, stolen).await;
    release.notify_one();
    wait_until("the acknowledgement fails", || async {
        worker.stats().abandoned_batches == 1
    })
    .await;
    let stats = worker.stats();
    assert_eq!((stats.handled, stats.leases_lost), (0, 1));
    worker.shutdown().await.unwrap();
    assert_eq!(first.len(), 1, "the first worker ran the handler");
    assert_eq!(backlog(&queue).await, 1, "but could not acknowledge");
    assert!(
        queue
            .checkpoints(EVENT, DEFAULT_GROUP)
            .await
            .unwrap()
            .is_empty()
    );
    let (_, lease) = leases(&queue)
        .await
        .into_iter()
        .find(|(p, _)| *p == partition)
        .unwrap();
    assert_eq!(
        lease.owner, "thief",
        "a stale worker does not release a lease it lost"
    );

    // The new owner (restarting under its id) handles the event.
    let second = Log::default();
    let thief = {
        let log = second.clone();
        fast(&queue)
            .id("thief")
            .partitions(range)
            .run(move |event| {
                log.push(&event);
                Box::pin(async { Ok(()) })
            })
    };
    wait_until("the new owner handles it", || async { second.len() == 1 }).await;
    thief.shutdown().await.unwrap();
    assert_eq!(backlog(&queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_events_and_releases_leases() {
    let (db, queue) = fresh().await;
    let started = Arc::new(Notify::new());
    let finished = Arc::new(AtomicBool::new(false));
    let worker = {
        let (started, finished) = (started.clone(), finished.clone());
        fast(&queue).run(move |_| {
            let (started, finished) = (started.clone(), finished.clone());
            Box::pin(async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                finished.store(true, Ordering::SeqCst);
                Ok(())
            })
        })
    };
    publish(&db, "slow", 0).await.unwrap();
    started.notified().await;
    worker.shutdown().await.unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "the in-flight handler completed"
    );
    assert_eq!(backlog(&queue).await, 0, "and was acknowledged");
    let checkpoints = queue.checkpoints(EVENT, DEFAULT_GROUP).await.unwrap();
    assert_eq!(checkpoints.iter().map(|c| c.handled).sum::<u64>(), 1);
    assert!(
        owners(&queue).await.iter().all(String::is_empty),
        "every lease released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_flag_pauses_and_resumes_a_worker() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let leader = Arc::new(AtomicBool::new(false));
    let worker = {
        let log = log.clone();
        fast(&queue).leader_flag(leader.clone()).run(move |event| {
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    };
    publish(&db, "a", 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(log.len(), 0, "a paused worker takes no events");
    assert!(owners(&queue).await.iter().all(String::is_empty));
    leader.store(true, Ordering::SeqCst);
    wait_until("resumed", || async { log.len() == 1 }).await;
    leader.store(false, Ordering::SeqCst);
    wait_until("leases released while paused", || async {
        owners(&queue).await.iter().all(String::is_empty)
    })
    .await;
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalancing_while_events_flow_keeps_order_and_loses_nothing() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let start = |id: &str| {
        let log = log.clone();
        fast(&queue).id(id).run(move |event| {
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    };
    let publisher = {
        let db = db.clone();
        tokio::spawn(async move {
            for seq in 0..60 {
                for owner in 0..8 {
                    publish(&db, &format!("owner-{owner}"), seq).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Workers join, leave gracefully and crash while events are published.
    let first = start("first");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = start("second");
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.shutdown().await.unwrap();
    let third = start("third");
    tokio::time::sleep(Duration::from_millis(100)).await;
    second.abort();
    publisher.await.unwrap();
    wait_until("everything handled", || async { log.ids().len() == 8 * 60 }).await;
    third.shutdown().await.unwrap();
    for (owner, seqs) in log.first_completions() {
        assert_eq!(seqs, (0..60).collect::<Vec<_>>(), "order of {owner}");
    }
    assert_eq!(backlog(&queue).await, 0);
}

/// Issue 11, defect 3: a worker whose lease ran out while a handler was busy (a pause, a slow
/// call) does not go on to the next events of its batch, which the partition's next holder may
/// be handling; it lets the batch go and handles it again once it holds the lease anew. Every
/// handler call starts while the lease it runs under is unexpired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_handler_call_starts_after_its_lease_expired() {
    let (db, queue) = fresh().await;
    let started_late = Arc::new(AtomicBool::new(false));
    let slept = Arc::new(AtomicBool::new(false));
    let log = Log::default();
    let worker = {
        let (queue, log, started_late, slept) = (
            queue.clone(),
            log.clone(),
            started_late.clone(),
            slept.clone(),
        );
        // No renewal in between: the heartbeat comes only after the lease expired.
        Worker::new(queue.clone(), EVENT)
            .lease_ttl(Duration::from_secs(1))
            .heartbeat(Duration::from_secs(3))
            .poll_interval(Duration::from_millis(5))
            .run(move |event| {
                let (queue, log, started_late, slept) = (
                    queue.clone(),
                    log.clone(),
                    started_late.clone(),
                    slept.clone(),
                );
                Box::pin(async move {
                    let key = keys::lease_key(EVENT, DEFAULT_GROUP, event.partition);
                    let tx = queue.engine.snapshot().await?;
                    let lease = tx.get(&key).await?.expect("a lease");
                    let lease = PartitionLease::decode(&key, &lease)?;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_micros() as u64;
                    if now >= lease.expires_at {
                        started_late.store(true, Ordering::SeqCst);
                    }
                    if !slept.swap(true, Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(1_500)).await;
                    }
                    log.push(&event);
                    Ok(())
                })
            })
    };
    for seq in 0..3 {
        publish(&db, "owner-a", seq).await.unwrap();
    }
    wait_until("all handled", || async {
        log.ids().len() == 3 && backlog(&queue).await == 0
    })
    .await;
    worker.shutdown().await.unwrap();
    assert!(
        !started_late.load(Ordering::SeqCst),
        "a handler call started after its lease expired"
    );
}
