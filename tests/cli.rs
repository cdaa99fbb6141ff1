//! The `tito` command line reads tables, records, index entries, queue lag and dead letters of a
//! database folder, and fails with a clear message and exit code on bad input.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tito::queue::{DEFAULT_GROUP, TitoQueue, Worker};
use tito::types::{
    TitoEventConfig, TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoModelTrait,
};
use tito::{Embedded, RetryPolicy, TitoError, TitoOperation, TitoOptions};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct City {
    id: String,
    name: String,
    population: i64,
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
        vec![TitoEventConfig {
            name: "city".into(),
        }]
    }
}

fn tito(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tito"))
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Writes three cities, with events, into a database folder, and dead-letters the event of
/// the first one with a worker that always fails.
async fn fill(dir: &Path) {
    let db = Embedded::open(dir).await.unwrap();
    let cities = db.clone().model::<City>();
    for (id, name, population) in [
        ("c1", "Oslo", -5),
        ("c2", "Lima", 10_000_000_000),
        ("c3", "Rome", 7),
    ] {
        let city = City {
            id: id.into(),
            name: name.into(),
            population,
        };
        let cities = cities.clone();
        db.transaction(|tx| async move {
            let options = TitoOptions::with_events(TitoOperation::Insert);
            cities.build_with_options(city, options, &tx).await?;
            Ok::<_, TitoError>(())
        })
        .await
        .unwrap();
    }
    let queue = TitoQueue::new(db.clone());
    let worker = Worker::new(queue.clone(), "city")
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
        .dead_letters("city", DEFAULT_GROUP, 10)
        .await
        .unwrap()
        .is_empty()
        || !queue.lag("city", DEFAULT_GROUP).await.unwrap().is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reads_tables_records_indexes_and_the_queue() {
    let dir = std::env::temp_dir().join(format!("tito-cli-{}", tito::DBUuid::new_v4()));
    fill(&dir).await;

    assert_eq!(stdout(&tito(&dir, &["tables"])), "city\t3\n");
    let records = stdout(&tito(
        &dir,
        &["records", "city", "--after", "c1", "--limit", "1"],
    ));
    assert_eq!(records.lines().count(), 1);
    assert!(records.contains("\"Lima\""), "{records}");
    assert!(stdout(&tito(&dir, &["get", "city", "c3"])).contains("\"Rome\""));
    let index = stdout(&tito(&dir, &["index", "city", "by_population"]));
    assert_eq!(index, "-5\tc1\n7\tc3\n10000000000\tc2\n", "numeric order");
    assert_eq!(stdout(&tito(&dir, &["lag", "city"])), "", "nothing pending");
    let dead = stdout(&tito(&dir, &["dead", "city"]));
    assert!(
        dead.contains("INSERT city:c1") && dead.contains("the map is missing"),
        "{dead}"
    );
    assert_eq!(
        stdout(&tito(&dir, &["replay", "city"])),
        "replayed 1 dead letters\n"
    );
    assert!(stdout(&tito(&dir, &["lag", "city"])).contains("pending 1"));

    let missing = tito(&dir, &["get", "city", "nowhere"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    let unknown = tito(&dir, &["frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("usage: tito"));
    let bad_limit = tito(&dir, &["records", "city", "--limit", "many"]);
    assert_eq!(bad_limit.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The city model with an index on the name added.
#[derive(Debug, Clone, Default, Serialize, Deserialize, tito::TitoModel)]
#[tito(table = "city")]
struct NamedCity {
    #[tito(id)]
    id: String,
    #[tito(index(name = "by_name"))]
    name: String,
    #[tito(index(name = "by_population"))]
    population: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_verifies_and_rebuilds_indexes_through_the_registry() {
    let dir = std::env::temp_dir().join(format!("tito-cli-{}", tito::DBUuid::new_v4()));
    fill(&dir).await;
    {
        // A newer model declares `by_name` on a table with rows: it is registered as building.
        let db = Embedded::open(&dir).await.unwrap();
        let named = db.clone().model::<NamedCity>();
        let err = NamedCity::by_name(&named).value("Rome").all().await;
        assert!(
            matches!(err, Err(TitoError::IndexNotReady { .. })),
            "{err:?}"
        );
    }
    assert_eq!(
        stdout(&tito(&dir, &["schema"])),
        "city\tby_name\tname:string\t-\tbuilding\n\
         city\tby_population\tpopulation:number\t-\treadable\n"
    );

    let verify = tito(&dir, &["verify", "city"]);
    assert_eq!(verify.status.code(), Some(1), "{verify:?}");
    let report = String::from_utf8(verify.stdout).unwrap();
    assert!(
        report.starts_with("records 3\tentries 3\tmissing 3\t"),
        "{report}"
    );
    assert!(
        String::from_utf8(verify.stderr)
            .unwrap()
            .contains("reindex")
    );

    let rebuilt = stdout(&tito(&dir, &["reindex", "city"]));
    assert!(rebuilt.contains("entries added 3"), "{rebuilt}");
    assert!(stdout(&tito(&dir, &["schema", "city"])).contains("by_name\tname:string\t-\treadable"));
    let verified = stdout(&tito(&dir, &["verify", "city"]));
    assert!(verified.starts_with("records 3\tentries 6\tmissing 0\torphans 0\tstale manifests 0"));

    // The newer model now answers from the rebuilt index, and agrees with it.
    let db = Embedded::open(&dir).await.unwrap();
    let named = db.clone().model::<NamedCity>();
    let rome = NamedCity::by_name(&named)
        .value("Rome")
        .all()
        .await
        .unwrap();
    assert_eq!(rome.len(), 1);
    assert!(named.verify().await.unwrap().is_consistent());
    drop(db);
    let missing = tito(&dir, &["schema", "nowhere"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
}
