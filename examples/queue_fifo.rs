//! The event queue: order events written in the same transaction as the orders, handled by a
//! worker first-in first-out per customer (the partition key), across 1024 partitions.
//!
//! Run with `cargo run --example queue_fifo` (embedded, no setup), or on TiKV with
//! `TITO_TIKV_PD=127.0.0.1:2379 cargo run --features tikv --example queue_fifo`.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tito::prelude::*;
use tito::queue::{TitoQueue, run_worker};
use tokio::sync::broadcast;

// Events of one customer (the partition key) are handled in the order they were committed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "orders", events("order"), partition_key = customer)]
struct Order {
    #[tito(id)]
    id: String,
    customer: String,
    status: String,
}

#[tokio::main]
pub async fn main() -> Result<(), TitoError> {
    // Embedded, no setup; with `TITO_TIKV_PD=host:2379` (feature `tikv`) it runs on TiKV.
    let tito_db = AnyBackend::from_env(Embedded::temporary_builder()).await?;
    let orders = tito_db.clone().model::<Order>();

    // Each write commits the order and its event together.
    for customer in ["ann", "bob"] {
        for n in 1..=3 {
            let order = Order {
                id: format!("{customer}-{n}"),
                customer: customer.to_string(),
                status: "placed".to_string(),
            };
            tito_db
                .transaction(|tx| {
                    let orders = orders.clone();
                    async move {
                        let options = TitoOptions::with_events(TitoOperation::Insert);
                        orders.build_with_options(order, options, &tx).await
                    }
                })
                .await?;
        }
    }
    let shipped = Order {
        id: "ann-1".to_string(),
        customer: "ann".to_string(),
        status: "shipped".to_string(),
    };
    tito_db
        .transaction(|tx| {
            let orders = orders.clone();
            async move {
                let options = TitoOptions::with_events(TitoOperation::Update);
                orders.update_with_options(shipped, options, &tx).await
            }
        })
        .await?;

    let queue = Arc::new(TitoQueue {
        engine: tito_db.clone(),
    });
    let handled = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let handled = handled.clone();
        move |event: TitoEvent| {
            println!(
                "{} {} (partition {})",
                event.action, event.entity, event.partition
            );
            if let Ok(mut handled) = handled.lock() {
                handled.push(format!("{} {}", event.action, event.record_id));
            }
            Box::pin(async { Ok(()) }) as BoxFuture<'static, Result<(), TitoError>>
        }
    };
    let (shutdown_tx, shutdown_rx) = broadcast::channel(1);
    let worker = run_worker(
        queue.clone(),
        "order".to_string(),
        handler,
        PartitionConfig {
            start: 0,
            end: 1024,
        },
        Arc::new(AtomicBool::new(true)),
        4,
        shutdown_rx,
    )
    .await;

    // Wait until the queue is drained, then stop the worker.
    while !queue.lag("order", "default").await?.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = shutdown_tx.send(());
    worker.await?;

    let handled = handled.lock().map(|h| h.clone()).unwrap_or_default();
    let of = |customer: &str| -> Vec<String> {
        let mine = handled
            .iter()
            .filter(|h| h.contains(&format!(" {customer}-")));
        mine.cloned().collect()
    };
    assert_eq!(
        of("ann"),
        [
            "INSERT ann-1",
            "INSERT ann-2",
            "INSERT ann-3",
            "UPDATE ann-1"
        ],
        "ann's events in commit order"
    );
    assert_eq!(of("bob"), ["INSERT bob-1", "INSERT bob-2", "INSERT bob-3"]);
    println!("{} events handled, in order per customer", handled.len());
    Ok(())
}
