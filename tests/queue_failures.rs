//! Failing handlers: panics are retried like errors, then dead-lettered while the key moves on;
//! dead letters can be listed and replayed.
//! They run on the backend `TITO_TIKV_PD` names (`queue_support::fresh`).

mod queue_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use queue_support::*;
use tito::queue::DEFAULT_GROUP;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_then_dead_lettered_and_the_key_moves_on() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let replays: Arc<Mutex<Vec<String>>> = Arc::default();
    let broken = Arc::new(AtomicBool::new(true));
    let worker = {
        let (log, attempts, broken) = (log.clone(), attempts.clone(), broken.clone());
        let replays = replays.clone();
        fast(&queue).retry(quick_retry(3)).run(move |event| {
            let entry = entry_of(&event);
            if event.replayed_at.is_some() {
                replays.lock().unwrap().push(entry.id.clone());
            }
            *attempts
                .lock()
                .unwrap()
                .entry(entry.id.clone())
                .or_insert(0) += 1;
            if entry.seq == 1 && broken.load(Ordering::SeqCst) {
                panic!("cannot handle {}", entry.id);
            }
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    };
    for seq in 0..4 {
        publish(&db, "poison", seq).await.unwrap();
    }
    wait_until("the key moved past the poison event", || async {
        log.ids().len() == 3 && backlog(&queue).await == 0
    })
    .await;
    assert_eq!(log.first_completions()["poison"], vec![0, 2, 3]);
    let stats = worker.stats();
    assert_eq!(
        (stats.handled, stats.failed_attempts, stats.dead_lettered),
        (3, 3, 1)
    );
    assert_eq!(
        attempts.lock().unwrap()["poison-1"],
        3,
        "three attempts, then dead"
    );
    let dead = queue.dead_letters(EVENT, DEFAULT_GROUP, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(entry_of(&dead[0].event).seq, 1);
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0]
            .error
            .contains("handler panicked: cannot handle poison-1"),
        "{}",
        dead[0].error
    );
    let checkpoint = &queue.checkpoints(EVENT, DEFAULT_GROUP).await.unwrap()[0];
    assert_eq!((checkpoint.handled, checkpoint.dead_lettered), (3, 1));

    // Fixed: replaying the dead letter delivers it again.
    broken.store(false, Ordering::SeqCst);
    assert!(queue.replay_dead_letter(&dead[0]).await.unwrap());
    assert!(
        !queue.replay_dead_letter(&dead[0]).await.unwrap(),
        "replayed once"
    );
    wait_until("the replayed event is handled", || async {
        log.ids().len() == 4
    })
    .await;
    // It ran after the key's later events, and says so.
    assert_eq!(*replays.lock().unwrap(), vec!["poison-1".to_string()]);
    assert!(
        queue
            .dead_letters(EVENT, DEFAULT_GROUP, 10)
            .await
            .unwrap()
            .is_empty()
    );
    worker.shutdown().await.unwrap();
    assert_eq!(backlog(&queue).await, 0);
}

/// Issue 11, defect 4: a handler error is stored beside its event in the retry entry and the
/// dead letter; unbounded, one past the value limit made every acknowledgement fail (not
/// retryable), so the batch ran again on every poll, forever. Errors are cut to
/// `MAX_ERROR_LEN`, and the event still becomes a dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_handler_error_is_cut_and_the_event_still_dead_lettered() {
    let (db, queue) = fresh().await;
    let worker = fast(&queue)
        .retry(quick_retry(2))
        .run(move |_| Box::pin(async { Err(tito::TitoError::custom("e".repeat(7 << 20))) }));
    publish(&db, "loud", 0).await.unwrap();
    wait_until("the event is dead", || async {
        backlog(&queue).await == 0
            && !(queue.dead_letters(EVENT, DEFAULT_GROUP, 1).await.unwrap()).is_empty()
    })
    .await;
    worker.shutdown().await.unwrap();
    let dead = queue.dead_letters(EVENT, DEFAULT_GROUP, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.len() <= tito::queue::MAX_ERROR_LEN);
    assert!(
        dead[0]
            .error
            .ends_with(&format!("(cut from {} bytes)", 7 << 20))
    );
}

/// A record whose event could not be stored again beside an error is refused when published,
/// with a typed error, and nothing of its transaction is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_to_retry_is_refused_when_published() {
    let (db, queue) = fresh().await;
    let model = db.clone().model::<Note>();
    let note = Note {
        id: "big".into(),
        owner: "o".into(),
        body: "b".repeat(tito::queue::MAX_EVENT_LEN),
    };
    let options = tito::TitoOptions::with_events(tito::TitoOperation::Insert);
    let result = db
        .transaction(|tx| async move { model.build_with_options(note, options, &tx).await })
        .await;
    assert!(
        matches!(result, Err(tito::TitoError::TooLarge { what: "event", .. })),
        "{result:?}"
    );
    let model = db.clone().model::<Note>();
    assert!(
        model.find_by_id("big", vec![]).await.is_err(),
        "not written"
    );
    assert_eq!(backlog(&queue).await, 0);
}

/// A record with a body, whose events are ordered per `owner`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Note {
    id: String,
    owner: String,
    body: String,
}

impl tito::TitoModelTrait for Note {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "note".into()
    }
    fn events(&self) -> Vec<tito::TitoEventConfig> {
        vec![tito::TitoEventConfig {
            name: EVENT.to_string(),
        }]
    }
    fn partition_key(&self) -> String {
        self.owner.clone()
    }
}

/// Issue 11, defect 1: a worker that knows nothing of a partition's parked keys (just started,
/// rebalanced, or after a failed batch) reads its retry area; an undecodable entry there used to
/// fail every batch of the partition, so its other keys were never handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_retry_entry_does_not_stop_its_partition() {
    let (db, queue) = fresh().await;
    let partition = tito::types::partition_of("owner-a");
    let parked = same_partition_as("owner-a");
    let garbage_key =
        tito::keyspace::queue::retry_key(EVENT, DEFAULT_GROUP, partition, &parked, 1, "garbage");
    let tx = db.begin().await.unwrap();
    tx.put(garbage_key.clone(), b"\x01{not json".to_vec())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    publish(&db, "owner-a", 0).await.unwrap();
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    wait_until("the other key of the partition is handled", || async {
        log.ids().len() == 1
    })
    .await;
    wait_until("the entry set aside", || async {
        let set_aside = queue
            .corrupt_entries(EVENT, DEFAULT_GROUP, 10)
            .await
            .unwrap();
        set_aside == vec![(garbage_key.clone(), b"\x01{not json".to_vec())]
    })
    .await;
    worker.shutdown().await.unwrap();
    let lag = queue.lag(EVENT, DEFAULT_GROUP).await.unwrap();
    assert_eq!(lag.iter().map(|p| p.retrying).sum::<u64>(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_after_their_retention() {
    let (db, queue) = fresh().await;
    let worker = fast(&queue)
        .retry(quick_retry(1))
        .dead_letter_retention(std::time::Duration::from_millis(300))
        .run(|_| Box::pin(async { Err(tito::TitoError::custom("down")) }));
    for seq in 0..3 {
        publish(&db, &format!("owner-{seq}"), seq).await.unwrap();
    }
    wait_until("all dead", || async { worker.stats().dead_lettered == 3 }).await;
    wait_until("the dead letters removed", || async {
        let dead = queue.dead_letters(EVENT, DEFAULT_GROUP, 10).await.unwrap();
        dead.is_empty()
    })
    .await;
    assert_eq!(backlog(&queue).await, 0);
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_dead_letters_can_be_replayed() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let broken = Arc::new(AtomicBool::new(true));
    let worker = {
        let (log, broken) = (log.clone(), broken.clone());
        fast(&queue).retry(quick_retry(1)).run(move |event| {
            let result = if broken.load(Ordering::SeqCst) {
                Err(tito::TitoError::custom("down"))
            } else {
                log.push(&event);
                Ok(())
            };
            Box::pin(async move { result })
        })
    };
    for seq in 0..6 {
        publish(&db, &format!("owner-{}", seq % 3), seq)
            .await
            .unwrap();
    }
    wait_until("all dead", || async {
        queue
            .dead_letters(EVENT, DEFAULT_GROUP, 100)
            .await
            .unwrap()
            .len()
            == 6
    })
    .await;
    broken.store(false, Ordering::SeqCst);
    assert_eq!(
        queue
            .replay_dead_letters(EVENT, DEFAULT_GROUP)
            .await
            .unwrap(),
        6
    );
    wait_until("all replayed and handled", || async {
        log.ids().len() == 6
    })
    .await;
    worker.shutdown().await.unwrap();
    // Replayed in their keys' order.
    for (owner, seqs) in log.first_completions() {
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted, "order of {owner}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_handler_times_out_and_is_retried() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let hung_once = Arc::new(AtomicBool::new(false));
    let worker = {
        let (log, hung_once) = (log.clone(), hung_once.clone());
        fast(&queue)
            .handler_timeout(std::time::Duration::from_millis(50))
            .run(move |event| {
                let (log, hung_once) = (log.clone(), hung_once.clone());
                Box::pin(async move {
                    if !hung_once.swap(true, Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    log.push(&event);
                    Ok(())
                })
            })
    };
    publish(&db, "k", 0).await.unwrap();
    publish(&db, "k", 1).await.unwrap();
    wait_until("both handled after the timeout", || async {
        log.ids().len() == 2 && backlog(&queue).await == 0
    })
    .await;
    assert_eq!(log.first_completions()["k"], vec![0, 1]);
    assert_eq!(worker.stats().failed_attempts, 1);
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_entry_is_set_aside_and_its_partition_keeps_flowing() {
    let (db, queue) = fresh().await;
    let partition = tito::types::partition_of("owner-a");
    publish(&db, "owner-a", 0).await.unwrap();
    // Between the key's two events, where a damaged event of the key would be.
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let garbage_key = tito::keyspace::queue::pending_key(
        EVENT,
        DEFAULT_GROUP,
        partition,
        "owner-a",
        between,
        "garbage",
    );
    let tx = db.begin().await.unwrap();
    tx.put(garbage_key.clone(), b"\x01{not json".to_vec())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    publish(&db, "owner-a", 1).await.unwrap();
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    wait_until("the events behind the garbage are handled", || async {
        log.ids().len() == 2
    })
    .await;
    worker.shutdown().await.unwrap();
    assert_eq!(backlog(&queue).await, 0);
    let set_aside = queue
        .corrupt_entries(EVENT, DEFAULT_GROUP, 10)
        .await
        .unwrap();
    assert_eq!(
        set_aside,
        vec![(garbage_key, b"\x01{not json".to_vec())],
        "kept, bytes intact"
    );
}

/// Issue 11, defect 8: the longest settings are cut to a year instead of overflowing a clock or
/// a semaphore; such a worker still handles what its engine publishes and stops when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_settings_neither_panic_nor_stall() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let worker = {
        let log = log.clone();
        tito::queue::Worker::new(queue.clone(), EVENT)
            .concurrency(usize::MAX)
            .batch_size(usize::MAX)
            .lease_ttl(std::time::Duration::MAX)
            .heartbeat(std::time::Duration::MAX)
            .poll_interval(std::time::Duration::MAX)
            .idle_poll_interval(std::time::Duration::MAX)
            .shutdown_timeout(std::time::Duration::MAX)
            .handler_timeout(std::time::Duration::MAX)
            .dead_letter_retention(std::time::Duration::MAX)
            .retention(std::time::Duration::MAX)
            .run(move |event| {
                log.push(&event);
                Box::pin(async { Ok(()) })
            })
    };
    publish(&db, "owner-a", 0).await.unwrap();
    wait_until("handled", || async { log.ids().len() == 1 }).await;
    worker.shutdown().await.unwrap();
}

/// Issue 11, defect 9: one corrupt lease used to fail every heartbeat of the group, so no worker
/// held any partition; it is now taken over as a free lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_lease_is_taken_over_not_fatal() {
    let (db, queue) = fresh().await;
    let partition = tito::types::partition_of("owner-a");
    let tx = db.begin().await.unwrap();
    let lease = tito::keyspace::queue::lease_key(EVENT, DEFAULT_GROUP, partition);
    tx.put(lease, b"\x07garbage".to_vec()).await.unwrap();
    tx.commit().await.unwrap();
    publish(&db, "owner-a", 0).await.unwrap();
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    wait_until("handled", || async { log.ids().len() == 1 }).await;
    worker.shutdown().await.unwrap();
}

/// Issue 11, defect 9: the entries of workers gone for a lease TTL are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_gone_for_a_lease_ttl_are_removed() {
    let (db, queue) = fresh().await;
    let ghost = tito::keyspace::queue::member_key(EVENT, DEFAULT_GROUP, "ghost");
    let gone = tito::queue::Member {
        expires_at: 1,
        start: 0,
        end: tito::types::PARTITIONS,
    };
    let tx = db.begin().await.unwrap();
    tx.put(ghost.clone(), gone.encode()).await.unwrap();
    tx.commit().await.unwrap();
    let worker = logging_worker(&queue, &Log::default());
    wait_until("the ghost removed", || async {
        let snapshot = db.snapshot().await.unwrap();
        snapshot.get(&ghost).await.unwrap().is_none()
    })
    .await;
    worker.shutdown().await.unwrap();
}

/// Issue 11, defect 6: a handler that takes its worker down (an abort, an out-of-memory kill)
/// never returns an error, so attempts counted only by acknowledgements would run it forever.
/// A partition taken over from a holder that did not release it handles its next batch alone,
/// each call recorded before it runs: the event that kills every worker is dead-lettered after
/// its attempts (the call that first took a worker down ran unrecorded, in a plain batch), and
/// the other events are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_handler_kills_its_worker_is_dead_lettered_after_its_attempts() {
    let (db, queue) = fresh().await;
    let log = Log::default();
    let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    for seq in 0..3 {
        publish(&db, "poison", seq).await.unwrap();
        publish(&db, "other", seq).await.unwrap();
    }
    let (entered, mut killer_running) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut crashes = 0;
    loop {
        let worker = {
            let (log, calls, entered) = (log.clone(), calls.clone(), entered.clone());
            fast(&queue).retry(quick_retry(3)).run(move |event| {
                let entry = entry_of(&event);
                *calls.lock().unwrap().entry(entry.id.clone()).or_default() += 1;
                if entry.id == "poison-1" {
                    // The process dies here: the test aborts the worker while this call hangs.
                    let _ = entered.send(());
                    return Box::pin(std::future::pending());
                }
                log.push(&event);
                Box::pin(async { Ok(()) })
            })
        };
        let done = async {
            wait_until("all but the killer handled", || async {
                log.ids().len() == 5 && backlog(&queue).await == 0
            })
            .await
        };
        tokio::select! {
            _ = killer_running.recv() => {
                worker.abort();
                crashes += 1;
                assert!(crashes <= 4, "the killer ran {crashes} times");
            }
            () = done => {
                worker.shutdown().await.unwrap();
                break;
            }
        }
    }
    assert_eq!(
        crashes, 4,
        "a first call, then one recorded call per attempt"
    );
    assert_eq!(calls.lock().unwrap()["poison-1"], 4);
    assert_eq!(log.first_completions()["poison"], vec![0, 2]);
    assert_eq!(log.first_completions()["other"], vec![0, 1, 2]);
    let dead = queue.dead_letters(EVENT, DEFAULT_GROUP, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(entry_of(&dead[0].event).id, "poison-1");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].error.contains("stopped"), "{}", dead[0].error);
}
