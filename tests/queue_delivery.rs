//! Delivery: nothing lost or skipped when transactions commit out of order, per-key order under
//! concurrency and retries, consumer groups, scheduled events, lag and retention.
//! They run on the backend `TITO_TIKV_PD` names (`queue_support::fresh`).

mod queue_support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use queue_support::*;
use tito::keyspace::queue as keys;
use tito::queue::PartitionConfig;
use tito::{KeyRange, RetryPolicy, TitoError, TitoOperation, TitoOptions};

fn random_below(n: u128) -> u64 {
    (tito::DBUuid::new_v4().as_u128() % n) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_commits_lose_nothing() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            fast(&queue).run(move |event| {
                log.push(&event);
                Box::pin(async { Ok(()) })
            })
        })
        .collect();
    let model = db.clone().model::<Entry>();
    let committed = Arc::new(Mutex::new(HashSet::new()));
    let mut publishers = Vec::new();
    for publisher in 0..8u64 {
        let (db, model, committed) = (db.clone(), model.clone(), committed.clone());
        publishers.push(tokio::spawn(async move {
            for n in 0..40u64 {
                let owner = format!("owner-{}", random_below(12));
                let entry = Entry {
                    id: format!("p{publisher}-{n}"),
                    owner,
                    seq: n,
                };
                let roll_back = random_below(5) == 0;
                let delay = Duration::from_millis(random_below(6));
                let result = db
                    .transaction_with_retry(RetryPolicy::default(), |tx| {
                        let (model, entry) = (model.clone(), entry.clone());
                        async move {
                            let options = TitoOptions::with_events(TitoOperation::Insert);
                            model.build_with_options(entry, options, &tx).await?;
                            // Held open while later transactions commit around it.
                            tokio::time::sleep(delay).await;
                            if roll_back {
                                return Err(TitoError::custom("rolled back on purpose"));
                            }
                            Ok(())
                        }
                    })
                    .await;
                if result.is_ok() {
                    committed.lock().unwrap().insert(entry.id);
                }
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let committed = committed.lock().unwrap().clone();
    assert!(committed.len() > 200, "most transactions commit");
    // Handled is not yet acknowledged: an acknowledgement that failed leaves its events to be
    // handled again, so wait for the backlog too.
    wait_until("every committed event is handled", || async {
        committed.is_subset(&log.ids())
    })
    .await;
    wait_until("every handled event is acknowledged", || async {
        backlog(&queue).await == 0
    })
    .await;
    for w in workers {
        w.shutdown().await.unwrap();
    }
    assert_eq!(
        log.ids(),
        committed,
        "no event of a rolled-back transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_after_later_events_were_handled_is_still_delivered() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    // Transaction A takes the earlier position but stays open...
    let model = db.clone().model::<Entry>();
    let slow = db.begin().await.unwrap();
    let early = Entry {
        id: "early".into(),
        owner: "early-key".into(),
        seq: 0,
    };
    let options = TitoOptions::with_events(TitoOperation::Insert);
    model
        .build_with_options(early, options, &slow)
        .await
        .unwrap();
    // ...while a later event of the same partition commits and is handled.
    let late_key = same_partition_as("early-key");
    publish(&db, &late_key, 1).await.unwrap();
    wait_until("the later event is handled", || async {
        log.ids().contains(&format!("{late_key}-1")) && backlog(&queue).await == 0
    })
    .await;
    slow.commit().await.unwrap();
    wait_until("the earlier event is handled too", || async {
        log.ids().contains("early")
    })
    .await;
    worker.shutdown().await.unwrap();
    assert_eq!(backlog(&queue).await, 0);
}

/// Commits the insert of `owner/0` late: its transaction takes its position first and stays
/// open while later events of another key in the same partition are handled.
async fn commit_below_the_floor(db: &Db, queue: &Queue, log: &Log, owner: &str) {
    let model = db.clone().model::<Entry>();
    let slow = db.begin().await.unwrap();
    let entry = Entry {
        id: format!("{owner}-0"),
        owner: owner.into(),
        seq: 0,
    };
    let options = TitoOptions::with_events(TitoOperation::Insert);
    model
        .build_with_options(entry, options, &slow)
        .await
        .unwrap();
    let other = same_partition_as(owner);
    for seq in 1..=3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        publish(db, &other, seq).await.unwrap();
        wait_until("the other key's event is handled", || async {
            log.ids().contains(&format!("{other}-{seq}")) && backlog(queue).await == 0
        })
        .await;
    }
    slow.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_late_behind_handled_events_is_found_without_a_full_read() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    commit_below_the_floor(&db, &queue, &log, "early-key").await;
    let committed = std::time::Instant::now();
    wait_until("the late event is handled", || async {
        log.ids().contains("early-key-0")
    })
    .await;
    worker.shutdown().await.unwrap();
    assert_eq!(backlog(&queue).await, 0);
    if !support::on_tikv() {
        // Found through its key's ready mark by the next sweep, not by a periodic full read.
        assert!(committed.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_is_handled_before_the_later_events_of_its_key() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    commit_below_the_floor(&db, &queue, &log, "k").await;
    // K's next event, positioned after the late one, commits too.
    publish(&db, "k", 1).await.unwrap();
    wait_until("both events of K are handled", || async {
        log.first_completions()
            .get("k")
            .is_some_and(|seqs| seqs.len() == 2)
    })
    .await;
    worker.shutdown().await.unwrap();
    assert_eq!(
        log.first_completions()["k"],
        vec![0, 1],
        "commit order of K"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_holds_under_concurrency_and_retries() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    // Some events fail twice before succeeding: their keys park, later events wait behind.
    let failures: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let worker = {
        let (log, failures) = (log.clone(), failures.clone());
        fast(&queue)
            .retry(quick_retry(10))
            .concurrency(8)
            .run(move |event| {
                let entry = entry_of(&event);
                let mut failures = failures.lock().unwrap();
                let seen = failures.entry(entry.id.clone()).or_insert(0);
                let result = if entry.seq % 7 == 3 && *seen < 2 {
                    *seen += 1;
                    Err(TitoError::custom("transient failure"))
                } else {
                    log.push(&event);
                    Ok(())
                };
                Box::pin(async move { result })
            })
    };
    let owners: Vec<String> = (0..16).map(|i| format!("owner-{i}")).collect();
    let mut publishers = Vec::new();
    for owner in owners.clone() {
        let db = db.clone();
        publishers.push(tokio::spawn(async move {
            for seq in 0..25 {
                publish(&db, &owner, seq).await.unwrap();
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    wait_until("all events handled", || async {
        log.ids().len() == 16 * 25
    })
    .await;
    worker.shutdown().await.unwrap();
    let order = log.first_completions();
    for owner in &owners {
        assert_eq!(
            order[owner],
            (0..25).collect::<Vec<_>>(),
            "order of {owner}"
        );
    }
    assert_eq!(backlog(&queue).await, 0);
}

/// A key's events committed through the worker's engine are announced and read by their keys;
/// those committed through another engine (another process) are not. Interleaved on the same
/// keys, each announced event follows one the worker never heard of, so it must not be taken as
/// the key's next: every event is still handled once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_and_unannounced_events_of_a_key_keep_their_order() {
    let (db, queue) = fresh().await;
    let elsewhere = tito::TitoEngine::new(db.backend().clone()).await.unwrap();
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    let owners: Vec<String> = (0..4).map(|i| format!("mixed-{i}")).collect();
    let mut publishers = Vec::new();
    for owner in owners.clone() {
        let (db, elsewhere) = (db.clone(), elsewhere.clone());
        publishers.push(tokio::spawn(async move {
            for seq in 0..30 {
                let through = if random_below(3) == 0 {
                    &elsewhere
                } else {
                    &db
                };
                publish(through, &owner, seq).await.unwrap();
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    wait_until("all events handled", || async { log.ids().len() == 4 * 30 }).await;
    worker.shutdown().await.unwrap();
    assert_eq!(log.len(), 4 * 30, "each event handled once");
    let order = log.first_completions();
    for owner in &owners {
        assert_eq!(
            order[owner],
            (0..30).collect::<Vec<_>>(),
            "order of {owner}"
        );
    }
    assert_eq!(backlog(&queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_key_does_not_block_other_keys_of_its_partition() {
    let (db, queue) = fresh().await;
    let stuck = "stuck-owner";
    let neighbour = same_partition_as(stuck);
    let log = Log::default();
    let healed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (log, healed) = (log.clone(), healed.clone());
        fast(&queue).retry(quick_retry(1_000)).run(move |event| {
            let entry = entry_of(&event);
            let result = if entry.owner == "stuck-owner" && !healed.load(Ordering::SeqCst) {
                Err(TitoError::custom("not yet"))
            } else {
                log.push(&event);
                Ok(())
            };
            Box::pin(async move { result })
        })
    };
    for seq in 0..5 {
        publish(&db, stuck, seq).await.unwrap();
        publish(&db, &neighbour, seq).await.unwrap();
    }
    wait_until("the neighbour's events pass the stuck key", || async {
        log.first_completions().get(&neighbour).map(Vec::len) == Some(5)
    })
    .await;
    assert!(
        !log.first_completions().contains_key(stuck),
        "the stuck key waits"
    );
    // Its events wait in the retry area, behind the failing head.
    wait_until("the stuck key's events are parked", || async {
        let lag = queue.lag(EVENT, tito::queue::DEFAULT_GROUP).await.unwrap();
        lag.iter().map(|l| l.retrying).sum::<u64>() == 5
    })
    .await;
    assert!(
        !log.first_completions().contains_key(stuck),
        "the stuck key still waits"
    );
    healed.store(true, Ordering::SeqCst);
    wait_until("the stuck key resumes", || async {
        log.first_completions().get(stuck).map(Vec::len) == Some(5)
    })
    .await;
    worker.shutdown().await.unwrap();
    assert_eq!(log.first_completions()[stuck], vec![0, 1, 2, 3, 4]);
    assert_eq!(backlog(&queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_blocks_the_whole_partition() {
    let (db, queue) = fresh().await;
    let stuck = "stuck-owner";
    let neighbour = same_partition_as(stuck);
    let log = Log::default();
    let healed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attempts = Arc::new(AtomicU32::new(0));
    let worker = {
        let (log, healed, attempts) = (log.clone(), healed.clone(), attempts.clone());
        fast(&queue)
            .strict(true)
            .retry(quick_retry(1_000))
            .run(move |event| {
                let entry = entry_of(&event);
                let result = if entry.owner == "stuck-owner" && !healed.load(Ordering::SeqCst) {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    Err(TitoError::custom("not yet"))
                } else {
                    log.push(&event);
                    Ok(())
                };
                Box::pin(async move { result })
            })
    };
    publish(&db, stuck, 0).await.unwrap();
    wait_until("the stuck key failed a few times", || async {
        attempts.load(Ordering::SeqCst) >= 3
    })
    .await;
    publish(&db, &neighbour, 0).await.unwrap();
    let failing = attempts.load(Ordering::SeqCst);
    wait_until("more retries of the blocking event", || async {
        attempts.load(Ordering::SeqCst) >= failing + 3
    })
    .await;
    assert_eq!(
        log.len(),
        0,
        "nothing of the partition passes a failing event"
    );
    healed.store(true, Ordering::SeqCst);
    wait_until("the partition resumes", || async { log.len() == 2 }).await;
    worker.shutdown().await.unwrap();
    assert_eq!(log.all()[0].owner, stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consumer_group_sees_every_event() {
    let (db, queue) = fresh().await;
    queue.register_group(EVENT, "billing").await.unwrap();
    queue.register_group(EVENT, "audit").await.unwrap();
    let (billing, audit) = (Log::default(), Log::default());
    let workers = [("billing", billing.clone()), ("audit", audit.clone())].map(|(group, log)| {
        fast(&queue).group(group).run(move |event| {
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    });
    for seq in 0..30 {
        publish(&db, &format!("owner-{}", seq % 4), seq)
            .await
            .unwrap();
    }
    wait_until("both groups handled everything", || async {
        billing.ids().len() == 30 && audit.ids().len() == 30
    })
    .await;
    for w in workers {
        w.shutdown().await.unwrap();
    }
    assert_eq!(billing.ids(), audit.ids());
    assert_eq!(backlog_of(&queue, "billing").await, 0);
    let groups = queue.groups(EVENT).await.unwrap();
    assert_eq!(groups, vec!["default", "billing", "audit"]);
    // Nobody consumes the default group here: its events wait for it, then go with it.
    assert_eq!(backlog(&queue).await, 30);
    queue.remove_group(EVENT, "default").await.unwrap();
    assert_eq!(backlog(&queue).await, 0);
    assert_eq!(queue.groups(EVENT).await.unwrap(), vec!["billing", "audit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_event_waits_until_its_run_at() {
    let (db, queue) = fresh().await;
    let handled_at: Arc<Mutex<HashMap<String, SystemTime>>> = Arc::default();
    let worker = {
        let handled_at = handled_at.clone();
        fast(&queue).run(move |event| {
            handled_at
                .lock()
                .unwrap()
                .insert(entry_of(&event).owner, SystemTime::now());
            Box::pin(async { Ok(()) })
        })
    };
    let run_at = SystemTime::now() + Duration::from_millis(400);
    let later = TitoOptions::with_events(TitoOperation::Insert).run_at(run_at);
    publish_with(&db, "later", 0, later).await.unwrap();
    publish(&db, "now", 0).await.unwrap();
    wait_until("both handled", || async {
        handled_at.lock().unwrap().len() == 2
    })
    .await;
    worker.shutdown().await.unwrap();
    let handled_at = handled_at.lock().unwrap();
    assert!(
        handled_at["later"] >= run_at,
        "not delivered before its run-at"
    );
    assert!(handled_at["now"] < handled_at["later"]);
}

/// Issue 11, defect 5: an event scheduled far ahead (`u64::MAX` micros, say) held every later
/// event of its key for as long. Scheduling past `LONGEST_DELAY` is refused, and nothing of
/// the transaction is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_scheduled_past_the_longest_delay_is_refused() {
    let (db, queue) = fresh().await;
    let too_far = [
        SystemTime::now() + tito::queue::LONGEST_DELAY + Duration::from_secs(3600),
        SystemTime::UNIX_EPOCH + Duration::from_micros(u64::MAX),
    ];
    for at in too_far {
        let options = TitoOptions::with_events(TitoOperation::Insert).run_at(at);
        let refused = publish_with(&db, "far", 0, options).await;
        assert!(
            matches!(refused, Err(TitoError::InvalidArgument(_))),
            "{refused:?}"
        );
    }
    assert_eq!(backlog(&queue).await, 0);
    let entries = db.clone().model::<Entry>();
    assert!(
        entries.get("far-0").await.unwrap().is_none(),
        "nothing written"
    );
    let within = SystemTime::now() + tito::queue::LONGEST_DELAY - Duration::from_secs(3600);
    let options = TitoOptions::with_events(TitoOperation::Insert).run_at(within);
    publish_with(&db, "far", 0, options).await.unwrap();
    assert_eq!(backlog(&queue).await, 1);
}

/// Issue 11, defect 5: a publisher whose clock runs ahead gives its event a position in the
/// future, and the key's later events (from any publisher) positions after it. A position orders
/// the key's events; an event published to run at once is due at once, whatever its position,
/// and `lag` ages it from when it was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_clock_far_ahead_does_not_stall_its_key() {
    let (db, queue) = fresh().await;
    // What a publisher an hour ahead leaves behind once its event was handled: the key's mark
    // at a position an hour from now.
    let hour_ahead = SystemTime::now() + Duration::from_secs(3600);
    let ahead = hour_ahead
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let partition = tito::types::partition_of("skewed");
    let mark = keys::ready_key(EVENT, tito::queue::DEFAULT_GROUP, partition, "skewed");
    let stored = tito::queue::ReadyMark {
        first: ahead,
        latest: ahead,
    };
    db.transaction(|tx| {
        let (mark, stored) = (mark.clone(), stored.encode());
        async move { tx.put(mark, stored).await }
    })
    .await
    .unwrap();
    for seq in 0..3 {
        publish(&db, "skewed", seq).await.unwrap();
    }
    let lag = queue.lag(EVENT, tito::queue::DEFAULT_GROUP).await.unwrap();
    let oldest = lag.iter().map(|l| l.oldest_age).max().unwrap();
    assert!(
        oldest < Duration::from_secs(60),
        "aged from when written: {oldest:?}"
    );
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    wait_until("the skewed key's events are handled", || async {
        log.len() == 3
    })
    .await;
    worker.shutdown().await.unwrap();
    let seqs: Vec<u64> = log.all().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2], "in commit order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_reports_pending_count_and_oldest_age() {
    let (db, queue) = fresh().await;
    for seq in 0..3 {
        publish(&db, "a", seq).await.unwrap();
    }
    publish(&db, "b", 0).await.unwrap();
    let later = TitoOptions::with_events(TitoOperation::Insert)
        .run_at(SystemTime::now() + Duration::from_secs(3600));
    publish_with(&db, "c", 0, later).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let lag = queue.lag(EVENT, tito::queue::DEFAULT_GROUP).await.unwrap();
    let of = |key: &str| {
        let p = tito::types::partition_of(key);
        lag.iter().find(|l| l.partition == p).copied().unwrap()
    };
    assert_eq!(of("a").pending, 3);
    assert!(of("a").oldest_age >= Duration::from_millis(20));
    assert_eq!(of("b").pending, 1);
    assert_eq!(of("c").pending, 1);
    assert_eq!(
        of("c").oldest_age,
        Duration::ZERO,
        "a scheduled event is not late"
    );
    let worker = fast(&queue).run(|_| Box::pin(async { Ok(()) }));
    wait_until("due events handled", || async {
        backlog(&queue).await == 1
    })
    .await;
    worker.shutdown().await.unwrap();
    let checkpoints = queue
        .checkpoints(EVENT, tito::queue::DEFAULT_GROUP)
        .await
        .unwrap();
    assert_eq!(checkpoints.iter().map(|c| c.handled).sum::<u64>(), 4);
}

async fn count(db: &Db, range: KeyRange) -> usize {
    let tx = db.snapshot().await.unwrap();
    tx.scan(range, 100_000).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_events_are_removed_or_kept_for_the_retention_window() {
    let (db, queue) = fresh().await;
    let group = tito::queue::DEFAULT_GROUP;
    let pending = KeyRange::prefix(&keys::group_prefix(EVENT, group, "pending"));
    let done = KeyRange::prefix(&keys::group_prefix(EVENT, group, "done"));
    let worker = fast(&queue).run(|_| Box::pin(async { Ok(()) }));
    for seq in 0..20 {
        publish(&db, &format!("o{seq}"), seq).await.unwrap();
    }
    wait_until("handled", || async {
        count(&db, pending.clone()).await == 0
    })
    .await;
    worker.shutdown().await.unwrap();
    assert_eq!(
        count(&db, done.clone()).await,
        0,
        "nothing kept without retention"
    );

    let worker = fast(&queue)
        .retention(Duration::from_secs(3600))
        .partitions(PartitionConfig {
            start: 0,
            end: 1024,
        })
        .run(|_| Box::pin(async { Ok(()) }));
    for seq in 0..20 {
        publish(&db, &format!("o{seq}"), 100 + seq).await.unwrap();
    }
    wait_until("handled", || async {
        count(&db, pending.clone()).await == 0
    })
    .await;
    worker.shutdown().await.unwrap();
    assert_eq!(count(&db, done.clone()).await, 20, "kept within the window");

    // A worker with a shorter window removes them.
    let worker = fast(&queue)
        .retention(Duration::from_millis(1))
        .run(|_| Box::pin(async { Ok(()) }));
    wait_until("removed after the window", || async {
        count(&db, done.clone()).await == 0
    })
    .await;
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_lists_each_type_with_queue_keys_once() {
    let (db, queue) = fresh().await;
    assert!(queue.event_types().await.unwrap().is_empty());
    for seq in 0..5 {
        publish(&db, &format!("owner-{seq}"), seq).await.unwrap();
    }
    // A type with only a group registry and no events counts too.
    queue.register_group("billing", "audit").await.unwrap();
    assert_eq!(
        queue.event_types().await.unwrap(),
        vec!["account", "billing"]
    );
}
