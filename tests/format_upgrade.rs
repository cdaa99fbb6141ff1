//! Opening a database written in an older format upgrades it without losing queued events.
//! Runs on the backend `TITO_TIKV_PD` names (`queue_support::support`).

mod queue_support;

use std::sync::Arc;

use queue_support::*;
use tito::codec::{Direction, put_str, put_u64};
use tito::keyspace::queue as keys;
use tito::queue::DEFAULT_GROUP;
use tito::queue::TitoQueue;
use tito::{KeyRange, TitoEngine};

/// The format 1 key of a pending event: partition, then position, with no partition key.
fn format_1_pending_key(partition: u32, position: u64, event_id: &str) -> Vec<u8> {
    let mut key = vec![0x20];
    for part in [EVENT, "pending", DEFAULT_GROUP] {
        put_str(&mut key, part, Direction::Asc);
    }
    put_u64(&mut key, u64::from(partition), Direction::Asc);
    put_u64(&mut key, position, Direction::Asc);
    put_str(&mut key, event_id, Direction::Asc);
    key
}

/// The format 1 key holding a partition key's last position.
fn format_1_keyseq_key(partition_key: &str) -> Vec<u8> {
    let mut key = vec![0x20];
    for part in [EVENT, "keyseq", partition_key] {
        put_str(&mut key, part, Direction::Asc);
    }
    key
}

/// Rewrites every pending event of `db` in the format 1 layout, drops the ready marks and
/// records format 1, as tito 0.3 left a database.
async fn downgrade_to_format_1(db: &Db) {
    let pending = KeyRange::prefix(&keys::group_prefix(EVENT, DEFAULT_GROUP, "pending"));
    let ready = KeyRange::prefix(&keys::group_prefix(EVENT, DEFAULT_GROUP, "ready"));
    let tx = db.begin().await.unwrap();
    for (key, value) in tx.scan(pending, 1_000).await.unwrap() {
        let event = tito::queue::decode_event(&key, &value).unwrap();
        tx.delete(key).await.unwrap();
        let old = format_1_pending_key(event.partition, event.run_at, &event.id);
        // Format 1 stored the version byte 1 and the JSON event.
        let mut value = vec![1];
        serde_json::to_writer(&mut value, &event).unwrap();
        tx.put(old, value).await.unwrap();
    }
    for (key, _) in tx.scan(ready, 1_000).await.unwrap() {
        tx.delete(key).await.unwrap();
    }
    tx.put(format_1_keyseq_key("old-a"), 7u64.to_be_bytes().to_vec())
        .await
        .unwrap();
    tx.put(tito::keyspace::format_key(), 1u32.to_be_bytes().to_vec())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_queue_is_upgraded_on_open_and_delivered_in_order() {
    let (db, _) = fresh().await;
    for seq in 0..3 {
        publish(&db, "old-a", seq).await.unwrap();
        publish(&db, "old-b", seq).await.unwrap();
    }
    downgrade_to_format_1(&db).await;

    let db = TitoEngine::new(db.backend().clone()).await.unwrap();
    let format = db.snapshot().await.unwrap();
    let stored = format.get(&tito::keyspace::format_key()).await.unwrap();
    assert_eq!(
        stored,
        Some(tito::keyspace::FORMAT_VERSION.to_be_bytes().to_vec())
    );
    let keyseq = format.get(&format_1_keyseq_key("old-a")).await.unwrap();
    assert_eq!(keyseq, None, "format 1 positions are dropped");
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    let log = Log::default();
    let worker = logging_worker(&queue, &log);
    wait_until("the upgraded events are handled", || async {
        log.ids().len() == 6
    })
    .await;
    worker.shutdown().await.unwrap();
    let order = log.first_completions();
    assert_eq!(order["old-a"], vec![0, 1, 2]);
    assert_eq!(order["old-b"], vec![0, 1, 2]);
    assert_eq!(backlog(&queue).await, 0);
}
