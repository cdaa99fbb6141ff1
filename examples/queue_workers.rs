//! Queue workers beyond the seed: two consumer groups of one event type, retries with backoff,
//! a dead letter and its replay, a transactional (exactly-once) handler, lag and checkpoints.
//!
//! Run with `cargo run --example queue_workers` (embedded, no setup), or on TiKV with
//! `TITO_TIKV_PD=127.0.0.1:2379 cargo run --features tikv --example queue_workers`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tito::prelude::*;
use tito::queue::{TitoQueue, Worker};
use tito::{RetryPolicy, TitoEngine};

#[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "payments", events("payment"), partition_key = account)]
struct Payment {
    #[tito(id)]
    id: String,
    account: String,
    cents: i64,
}

/// Written by the ledger group's handler, in the transaction that acknowledges the event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "ledger")]
struct LedgerLine {
    #[tito(id)]
    id: String,
    cents: i64,
}

async fn pay(
    db: &TitoEngine<AnyBackend>,
    id: &str,
    account: &str,
    cents: i64,
) -> Result<(), TitoError> {
    let payments = db.clone().model::<Payment>();
    let payment = Payment {
        id: id.to_string(),
        account: account.to_string(),
        cents,
    };
    db.transaction(|tx| async move {
        let options = TitoOptions::with_events(TitoOperation::Insert);
        payments.build_with_options(payment, options, &tx).await
    })
    .await
    .map(drop)
}

async fn wait_for_empty(queue: &TitoQueue<AnyBackend>, group: &str) -> Result<(), TitoError> {
    while !queue.lag("payment", group).await?.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::main]
pub async fn main() -> Result<(), TitoError> {
    // Embedded, no setup; with `TITO_TIKV_PD=host:2379` (feature `tikv`) it runs on TiKV.
    let db = AnyBackend::from_env(Embedded::temporary_builder()).await?;
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    // Register both groups before publishing: a group sees events published after it exists.
    queue.register_group("payment", "ledger").await?;
    queue.register_group("payment", "mailer").await?;
    queue.remove_group("payment", "default").await?;

    // Ledger: exactly-once effects. Its write commits with the acknowledgement, or not at all.
    let lines = db.clone().model::<LedgerLine>();
    let ledger = Worker::new(queue.clone(), "payment")
        .group("ledger")
        .run_transactional(move |event, tx| {
            let lines = lines.clone();
            Box::pin(async move {
                let cents = event.payload["cents"].as_i64().unwrap_or_default();
                let line = LedgerLine {
                    id: event.id.clone(),
                    cents,
                };
                lines.build(line, &tx).await.map(drop)
            })
        });

    // Mailer: the mail server is down at first; three quick attempts, then a dead letter.
    let mail_up = Arc::new(AtomicBool::new(false));
    let mailer = {
        let mail_up = mail_up.clone();
        Worker::new(queue.clone(), "payment")
            .group("mailer")
            .retry(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
            })
            .run(move |event| {
                let up = mail_up.load(Ordering::SeqCst);
                Box::pin(async move {
                    if !up {
                        return Err(TitoError::custom("mail server unavailable"));
                    }
                    println!("mailed receipt for {}", event.entity);
                    Ok(())
                })
            })
    };

    pay(&db, "p1", "acme", 1_500).await?;
    pay(&db, "p2", "acme", 2_500).await?;
    wait_for_empty(&queue, "ledger").await?;
    wait_for_empty(&queue, "mailer").await?;

    let dead = queue.dead_letters("payment", "mailer", 10).await?;
    assert_eq!(dead.len(), 2);
    println!(
        "{} dead letters, first error: {}",
        dead.len(),
        dead[0].error
    );
    mail_up.store(true, Ordering::SeqCst);
    let replayed = queue.replay_dead_letters("payment", "mailer").await?;
    println!("replayed {replayed} dead letters");
    wait_for_empty(&queue, "mailer").await?;

    println!("mailer: {:?}", mailer.stats());
    let mailed: u64 = queue
        .checkpoints("payment", "mailer")
        .await?
        .iter()
        .map(|c| c.handled)
        .sum();
    assert_eq!(mailed, 2);
    ledger.shutdown().await?;
    mailer.shutdown().await?;

    let mut total = 0;
    for checkpoint in queue.checkpoints("payment", "ledger").await? {
        println!(
            "ledger partition {}: {} handled",
            checkpoint.partition, checkpoint.handled
        );
        total += checkpoint.handled;
    }
    assert_eq!(total, 2);
    Ok(())
}
