//! Transactional handlers: a handler's writes commit with the acknowledgement of its event, or
//! not at all.
//! They run on the backend `TITO_TIKV_PD` names (`queue_support::fresh`).

mod queue_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use queue_support::*;
use serde::{Deserialize, Serialize};
use tito::keyspace::queue as keys;
use tito::queue::{DEFAULT_GROUP, PartitionConfig, PartitionLease};
use tito::types::{TitoModelTrait, partition_of};
use tokio::sync::Notify;

/// What the handler writes for each event.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Receipt {
    id: String,
}

impl TitoModelTrait for Receipt {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "receipt".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_writes_commit_with_the_acknowledgement() {
    let (db, queue) = fresh().await;
    let receipts = db.clone().model::<Receipt>();
    let worker = {
        let receipts = receipts.clone();
        fast(&queue).run_transactional(move |event, tx| {
            let receipts = receipts.clone();
            Box::pin(async move {
                // `build` fails on an existing id: a second delivery would be an error.
                receipts
                    .build(
                        Receipt {
                            id: entry_of(&event).id,
                        },
                        &tx,
                    )
                    .await?;
                Ok(())
            })
        })
    };
    for seq in 0..40 {
        publish(&db, &format!("owner-{}", seq % 6), seq)
            .await
            .unwrap();
    }
    wait_until("handled", || async { backlog(&queue).await == 0 }).await;
    worker.shutdown().await.unwrap();
    for seq in 0..40 {
        let id = format!("owner-{}-{seq}", seq % 6);
        receipts.find_by_id(&id, vec![]).await.unwrap();
    }
    let handled: u64 = queue
        .checkpoints(EVENT, DEFAULT_GROUP)
        .await
        .unwrap()
        .iter()
        .map(|c| c.handled)
        .sum();
    assert_eq!(handled, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_acknowledgement_rolls_back_the_handler_writes() {
    let (db, queue) = fresh().await;
    let receipts = db.clone().model::<Receipt>();
    let partition = partition_of("victim");
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let worker = {
        let (receipts, started, release) = (receipts.clone(), started.clone(), release.clone());
        let first_run_done = Arc::new(AtomicBool::new(false));
        fast(&queue)
            .id("first")
            .partitions(PartitionConfig {
                start: partition,
                end: partition + 1,
            })
            .run_transactional(move |event, tx| {
                let (receipts, started, release) =
                    (receipts.clone(), started.clone(), release.clone());
                let first_run_done = first_run_done.clone();
                Box::pin(async move {
                    receipts
                        .build(
                            Receipt {
                                id: entry_of(&event).id,
                            },
                            &tx,
                        )
                        .await?;
                    // Only the first run waits; the acknowledgement's conflict re-runs it.
                    if !first_run_done.swap(true, Ordering::SeqCst) {
                        started.notify_one();
                        release.notified().await;
                    }
                    Ok(())
                })
            })
    };
    publish(&db, "victim", 0).await.unwrap();
    started.notified().await;
    let key = keys::lease_key(EVENT, DEFAULT_GROUP, partition);
    db.transaction(|tx| async move {
        let held = PartitionLease::decode(&key, &tx.get(&key).await?.unwrap())?;
        let stolen = PartitionLease {
            owner: "thief".into(),
            token: held.token + 1,
            expires_at: u64::MAX,
        };
        tx.put(key, stolen.encode()).await
    })
    .await
    .unwrap();
    release.notify_one();
    worker.shutdown().await.unwrap();
    assert!(
        receipts.find_by_id("victim-0", vec![]).await.is_err(),
        "the write was rolled back"
    );
    assert_eq!(backlog(&queue).await, 1, "the event is still pending");
}
