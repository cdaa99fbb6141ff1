//! The city database the command-line and dashboard tests read: a model with an index and
//! events, three cities whose first event a failing worker dead-lettered, and (for the
//! dashboard) a backlog of events nobody handled yet.
#![allow(dead_code)]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tito::queue::{DEFAULT_GROUP, TitoQueue, Worker};
use tito::types::{
    TitoEventConfig, TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoModelTrait,
};
use tito::{Backend, RetryPolicy, TitoEngine, TitoError, TitoOperation, TitoOptions};

/// The event type cities publish.
pub const EVENT: &str = "city";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct City {
    pub id: String,
    pub name: String,
    pub population: i64,
}

impl TitoModelTrait for City {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "city".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![TitoIndexConfig {
            condition: true,
            name: "by_population".into(),
            fields: vec![TitoIndexField {
                name: "population".into(),
                r#type: TitoIndexBlockType::Number,
            }],
            custom_generator: None,
        }]
    }
    fn events(&self) -> Vec<TitoEventConfig> {
        vec![TitoEventConfig { name: EVENT.into() }]
    }
}

/// Inserts `city`, publishing its event.
pub async fn insert<B: Backend>(db: &TitoEngine<B>, id: &str, name: &str, population: i64) {
    let cities = db.clone().model::<City>();
    let city = City {
        id: id.into(),
        name: name.into(),
        population,
    };
    db.transaction(|tx| async move {
        let options = TitoOptions::with_events(TitoOperation::Insert);
        cities.build_with_options(city, options, &tx).await?;
        Ok::<_, TitoError>(())
    })
    .await
    .unwrap();
}

/// Writes three cities, with events, and dead-letters the event of the first one (`c1`, error
/// "the map is missing") with a worker that always fails on it; returns once the queue is
/// empty but for that dead letter.
pub async fn fill<B: Backend>(db: &TitoEngine<B>) {
    for (id, name, population) in [
        ("c1", "Oslo", -5),
        ("c2", "Lima", 10_000_000_000),
        ("c3", "Rome", 7),
    ] {
        insert(db, id, name, population).await;
    }
    let queue = TitoQueue::new(db.clone());
    let worker = Worker::new(queue.clone(), EVENT)
        .poll_interval(Duration::from_millis(5))
        .retry(RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        })
        .run(|event| {
            Box::pin(async move {
                if event.record_id == "c1" {
                    return Err(TitoError::custom("the map is missing"));
                }
                Ok(())
            })
        });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while queue
        .dead_letters(EVENT, DEFAULT_GROUP, 10)
        .await
        .unwrap()
        .is_empty()
        || !queue.lag(EVENT, DEFAULT_GROUP).await.unwrap().is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await.unwrap();
}

/// Publishes `n` more cities (`b000`, `b001`, …) that no worker handles: a backlog spread over
/// the partitions their ids hash to.
pub async fn backlog<B: Backend>(db: &TitoEngine<B>, n: u32) {
    for i in 0..n {
        insert(
            db,
            &format!("b{i:03}"),
            &format!("Town {i}"),
            i64::from(i) * 1000,
        )
        .await;
    }
}

/// The dashboard tests' database: [`fill`]'s cities and dead letter, a city whose name is
/// markup (`x1`), and a backlog of `backlog` more cities.
pub async fn dashboard<B: Backend>(db: &TitoEngine<B>, backlog_len: u32) {
    fill(db).await;
    insert(db, "x1", r#"<script>alert("x")</script>"#, 42).await;
    backlog(db, backlog_len).await;
}
