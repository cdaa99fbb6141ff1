//! Restart: a database reopened from disk resumes from its checkpoints; acknowledged events are
//! never handled again and unacknowledged ones are. It reopens a folder, so it is about the
//! embedded engine and stays on it whatever `TITO_TIKV_PD` says.

mod queue_support;

use std::sync::Arc;

use queue_support::*;
use tito::Embedded;
use tito::queue::{DEFAULT_GROUP, TitoQueue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_database_resumes_without_losing_events() {
    let dir = std::env::temp_dir().join(format!("tito-queue-restart-{}", tito::DBUuid::new_v4()));
    let before = Log::default();
    {
        let db = Embedded::open(&dir).await.unwrap();
        let queue = Arc::new(TitoQueue { engine: db.clone() });
        for seq in 0..30 {
            publish(&db, &format!("owner-{}", seq % 5), seq)
                .await
                .unwrap();
        }
        // Handles the first ten events of owner-0's partition (and others), then stops.
        let worker = {
            let log = before.clone();
            fast(&queue).concurrency(1).batch_size(4).run(move |event| {
                log.push(&event);
                Box::pin(async { Ok(()) })
            })
        };
        wait_until("some events handled", || async { before.len() >= 10 }).await;
        worker.shutdown().await.unwrap();
    }
    let handled_before = before.ids();
    assert!(handled_before.len() >= 10);

    let after = Log::default();
    let db = Embedded::open(&dir).await.unwrap();
    let queue = Arc::new(TitoQueue { engine: db.clone() });
    assert_eq!(
        backlog(&queue).await as usize,
        30 - handled_before.len(),
        "acknowledged events survived the restart as handled"
    );
    let worker = {
        let log = after.clone();
        fast(&queue).run(move |event| {
            log.push(&event);
            Box::pin(async { Ok(()) })
        })
    };
    wait_until("the rest handled", || async {
        handled_before.len() + after.ids().len() == 30
    })
    .await;
    worker.shutdown().await.unwrap();
    assert!(
        after.ids().is_disjoint(&handled_before),
        "nothing handled twice"
    );
    let checkpoints = queue.checkpoints(EVENT, DEFAULT_GROUP).await.unwrap();
    assert_eq!(checkpoints.iter().map(|c| c.handled).sum::<u64>(), 30);
    drop((queue, db));
    let _ = std::fs::remove_dir_all(&dir);
}
