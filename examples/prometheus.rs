//! Metrics for Prometheus: tito records through the `metrics` facade, so an application installs
//! the exporter it likes. This one installs `metrics-exporter-prometheus`, writes and queries a
//! few records, lets a worker handle their events, records the queue's lag, and prints what a
//! scrape of `/metrics` would return.
//!
//! Run with `cargo run --example prometheus`. In a service, install the recorder before the
//! database opens and before workers start (they take their metric handles when they start),
//! and serve `PrometheusHandle::render` on `/metrics` (or let the exporter's own HTTP listener
//! do it).

use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tito::RetryPolicy;
use tito::prelude::*;
use tito::queue::{TitoQueue, Worker};

#[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "orders", events("order"), partition_key = customer)]
struct Order {
    #[tito(id)]
    id: String,
    #[tito(index)]
    customer: String,
}

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = install()?;
    workload().await?;
    for line in metrics.render().lines() {
        if line.starts_with("tito_") {
            println!("{line}");
        }
    }
    Ok(())
}

/// Installs the Prometheus recorder for the whole process; its handle renders the metrics.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new().install_recorder()
}

/// Writes, queries and handles a few orders; the recorder installed before sees all of it.
pub async fn workload() -> Result<(), TitoError> {
    // Operations slower than 50 ms are logged at WARN (the default threshold is 1 s).
    let db = Embedded::temporary()
        .await?
        .slow_threshold(Duration::from_millis(50));
    let orders = db.clone().model::<Order>();
    let queue = TitoQueue::new(db.clone());
    // A group receives the events published after it is registered; its worker would register
    // it too, but only once its task has started.
    queue.register_group("order", "billing").await?;
    let worker = Worker::new(queue.clone(), "order")
        .group("billing")
        .run(|_event| Box::pin(async { Ok(()) }));
    for n in 0..3 {
        let order = Order {
            id: format!("o{n}"),
            customer: "ann".into(),
        };
        // A running worker may retire the key's ready mark meanwhile: retry such conflicts.
        db.transaction_with_retry(RetryPolicy::default(), |tx| {
            let (orders, order) = (orders.clone(), order.clone());
            async move {
                let options = TitoOptions::with_events(TitoOperation::Insert);
                orders.build_with_options(order, options, &tx).await
            }
        })
        .await?;
    }
    let page = orders
        .query_by_index("customer")
        .value("ann")
        .execute()
        .await?;
    assert_eq!(page.items.len(), 3);
    let handled = async {
        while worker.stats().handled < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), handled)
        .await
        .map_err(|_| TitoError::custom("the worker did not handle the orders in 30 s"))?;
    // Lag gauges are set when lag is read: a service does this on a timer (or per scrape).
    queue.record_lag("order", "billing").await?;
    worker.shutdown().await
}
