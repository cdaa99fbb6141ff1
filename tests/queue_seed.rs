//! The event queue snippets of the tito 0.2.0 README, assembled into one program with only the
//! connection line changed (`TiKV::connect(..)` ->
//! `AnyBackend::from_env(Embedded::temporary_builder())`: embedded, or TiKV at `TITO_TIKV_PD`).
//! Checks around the snippets (outside them) confirm the events were handled.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tito::types::{
    TitoEmbeddedRelationshipConfig, TitoEventConfig, TitoIndexConfig, TitoModelTrait,
};
use tito::{AnyBackend, BoxFuture, Embedded, TitoError};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct User {
    id: String,
    name: String,
    email: String,
}

impl TitoModelTrait for User {
    fn events(&self) -> Vec<TitoEventConfig> {
        vec![TitoEventConfig {
            name: "user".to_string(), // Event type name
        }]
    }

    // Other trait methods...
    fn get_embedded_relationships(&self) -> Vec<TitoEmbeddedRelationshipConfig> {
        vec![]
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![]
    }
    fn get_table_name(&self) -> String {
        "users".to_string()
    }
    fn get_id(&self) -> String {
        self.id.clone()
    }
}

#[rustfmt::skip]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_queue_snippets_run() -> Result<(), TitoError> {
    let tito_db = AnyBackend::from_env(Embedded::temporary_builder()).await?;
    let user_model = tito_db.clone().model::<User>();
    let new_user = || User {
        id: "user-1".to_string(),
        name: "Ann".to_string(),
        email: "ann@example.com".to_string(),
    };

    // --- Creating Events (seed) ---
    use tito::{TitoOptions, TitoOperation};

    let user = new_user();
    // Create a user and generate an INSERT event
    tito_db.transaction(|tx| {
        let user_model = user_model.clone();
        async move {
            user_model
                .build_with_options(
                    user,
                    TitoOptions::with_events(TitoOperation::Insert),
                    &tx,
                )
                .await?;
            Ok::<_, TitoError>(())
        }
    }).await?;

    let user = new_user();
    // Update a user and generate an UPDATE event
    tito_db.transaction(|tx| {
        let user_model = user_model.clone();
        async move {
            user_model
                .update_with_options(
                    user,
                    TitoOptions::with_events(TitoOperation::Update),
                    &tx,
                )
                .await?;
            Ok::<_, TitoError>(())
        }
    }).await?;

    // --- Setting Up Workers (seed) ---
    use tito::queue::{TitoQueue, run_worker};
    use tito::types::PartitionConfig;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use tokio::sync::broadcast;

    // Create queue
    let queue = Arc::new(TitoQueue {
        engine: tito_db.clone(),
    });

    // Worker configuration
    let is_leader = Arc::new(AtomicBool::new(true));
    let partition_config = PartitionConfig {
        start: 0,
        end: 1024, // Process all 1024 partitions
    };

    // Create shutdown channel
    let (shutdown_tx, shutdown_rx) = broadcast::channel(1);

    // Define event handler
    let handler = move |event: tito::TitoEvent| {
        Box::pin(async move {
            println!("Processing: {} - {}", event.action, event.entity);
            // Your event processing logic here
            Ok::<_, TitoError>(())
        }) as BoxFuture<'static, Result<(), TitoError>>
    };

    // Start worker for "user" events
    let worker_handle = run_worker(
        queue.clone(),
        String::from("user"), // Event type to process
        handler,
        partition_config,
        is_leader.clone(),
        5, // Concurrency level
        shutdown_rx,
    )
    .await;

    // (Not in the seed: wait until both events are handled.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let handled: u64 = queue
            .checkpoints("user", "default")
            .await?
            .iter()
            .map(|c| c.handled)
            .sum();
        if handled == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "events not handled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Gracefully shutdown when done
    let _ = shutdown_tx.send(());
    let _ = worker_handle.await;

    // (Not in the seed: nothing is left pending, and the worker released its leases.)
    assert!(queue.lag("user", "default").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn only_writes_with_options_publish_events() -> Result<(), TitoError> {
    let tito_db = AnyBackend::from_env(Embedded::temporary_builder()).await?;
    let user_model = tito_db.clone().model::<User>();
    let user = User {
        id: "user-2".to_string(),
        ..User::default()
    };
    tito_db
        .transaction(|tx| {
            let user_model = user_model.clone();
            async move {
                user_model.build(user.clone(), &tx).await?;
                user_model.update(user, &tx).await?;
                user_model.delete_by_id("user-2", &tx).await
            }
        })
        .await?;
    let queue = tito::queue::TitoQueue {
        engine: tito_db.clone(),
    };
    assert!(queue.lag("user", "default").await?.is_empty());
    let with_events = tito::TitoOptions::with_events(tito::TitoOperation::Delete);
    tito_db
        .transaction(|tx| {
            let user_model = user_model.clone();
            async move {
                user_model
                    .build(
                        User {
                            id: "user-3".into(),
                            ..User::default()
                        },
                        &tx,
                    )
                    .await?;
                user_model
                    .delete_by_id_with_options("user-3", with_events, &tx)
                    .await
            }
        })
        .await?;
    let lag = queue.lag("user", "default").await?;
    assert_eq!(
        lag.iter().map(|l| l.pending).sum::<u64>(),
        1,
        "one DELETE event"
    );
    Ok(())
}

/// Handlers written against tito 0.2.0 boxed their futures as `futures::future::BoxFuture`;
/// `tito::BoxFuture` is that very type, so such handlers pass to `run_worker` unchanged.
#[test]
fn the_futures_box_future_is_tito_box_future() {
    let handler = |event: tito::TitoEvent| {
        Box::pin(async move {
            let _ = event.id;
            Ok::<_, TitoError>(())
        }) as futures::future::BoxFuture<'static, Result<(), TitoError>>
    };
    let _: &dyn Fn(tito::TitoEvent) -> BoxFuture<'static, Result<(), TitoError>> = &handler;
}
