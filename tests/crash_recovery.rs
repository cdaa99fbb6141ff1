//! A writer process killed with SIGKILL at an arbitrary point loses no committed write, and
//! leaves no index entry without its record nor a record without its entries.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tito::backend::KeyRange;
use tito::codec::{KeyValue, Number, decode_tuple};
use tito::types::{TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoModelTrait};
use tito::{Embedded, TitoError};

const CHILD_ENV: &str = "TITO_CRASH_CHILD_DIR";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Entry {
    id: String,
    bucket: String,
    version: i64,
}

impl TitoModelTrait for Entry {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "entry".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        let index = |name: &str, field: &str, r#type| TitoIndexConfig {
            condition: true,
            name: name.into(),
            fields: vec![TitoIndexField {
                name: field.into(),
                r#type,
            }],
            custom_generator: None,
        };
        vec![
            index("by_bucket", "bucket", TitoIndexBlockType::String),
            index("by_version", "version", TitoIndexBlockType::Number),
        ]
    }
}

/// The writer: creates and rewrites entries forever, printing each committed state.
#[tokio::test]
#[ignore = "run by kill_9_mid_write_loses_nothing_committed as a child process"]
async fn crash_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Embedded::open(dir).await.unwrap();
    let model = db.clone().model::<Entry>();
    for version in 0i64.. {
        let id = format!("e{}", version % 50);
        let entry = Entry {
            id: id.clone(),
            bucket: format!("b{}", version % 7),
            version,
        };
        let m = model.clone();
        db.transaction(|tx| async move {
            match m.find_optional_tx(&entry.id, vec![], &tx).await? {
                Some(_) => m.update(entry, &tx).await,
                None => m.build(entry, &tx).await,
            }
        })
        .await
        .unwrap();
        println!("committed {id} {version}");
    }
}

async fn entries(db: &tito::TitoEngine, index: &str) -> Vec<(KeyValue, String)> {
    let prefix = tito::keyspace::index_prefix("entry", index, false);
    let tx = db.snapshot().await.unwrap();
    let rows = tx
        .scan(KeyRange::prefix(&prefix), usize::MAX)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(key, _)| {
            let mut parts = decode_tuple(&key[prefix.len()..]).unwrap();
            let id = match parts.pop() {
                Some(KeyValue::Str(id)) => id,
                other => panic!("bad entry {other:?}"),
            };
            (parts.remove(0), id)
        })
        .collect()
}

/// The writer process, killed (SIGKILL) and reaped when dropped, also if the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn kill_9_mid_write_loses_nothing_committed() {
    let dir = std::env::temp_dir().join(format!("tito-crash-{}", tito::DBUuid::new_v4()));
    for round in 0..3 {
        let mut child = KillOnDrop(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "crash_writer",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let printed = Arc::new(AtomicUsize::new(0));
        let reader = {
            let printed = printed.clone();
            std::thread::spawn(move || {
                let mut committed = BTreeMap::new();
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("committed ") {
                        let (id, version) = rest.split_once(' ').unwrap();
                        committed.insert(id.to_string(), version.parse::<i64>().unwrap());
                        printed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                committed
            })
        };
        // Wait until the writer is busy (however slow the machine), let it go on for a
        // different while each round, then kill it mid-stride.
        let started = Instant::now();
        while printed.load(Ordering::Relaxed) < 50 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the writer did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20 + 37 * round));
        drop(child);
        let committed = reader.join().unwrap();
        let db = Embedded::open(&dir).await.unwrap();
        let model = db.clone().model::<Entry>();
        for (id, version) in &committed {
            let stored = model.find_by_id(id, vec![]).await.unwrap();
            // The last printed version was committed; one more may have committed unprinted.
            assert!(
                stored.version >= *version,
                "{id}: {} < {version}",
                stored.version
            );
        }
        let tx = db.snapshot().await.unwrap();
        let records = tx
            .scan(tito::keyspace::record_range("entry"), usize::MAX)
            .await
            .unwrap();
        drop(tx);
        let all: Vec<Entry> = load_all(&model, &records).await;
        let ids: HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
        let by_bucket = entries(&db, "by_bucket").await;
        let by_version = entries(&db, "by_version").await;
        assert_eq!(by_bucket.len(), all.len());
        assert_eq!(by_version.len(), all.len());
        for entry in &all {
            assert!(by_bucket.contains(&(KeyValue::Str(entry.bucket.clone()), entry.id.clone())));
            assert!(by_version.contains(&(
                KeyValue::Number(Number::Int(entry.version)),
                entry.id.clone()
            )));
        }
        assert!(by_bucket.iter().all(|(_, id)| ids.contains(id.as_str())));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn load_all(model: &tito::TitoModel<Entry>, records: &[(Vec<u8>, Vec<u8>)]) -> Vec<Entry> {
    let mut out = Vec::new();
    for (key, _) in records {
        let id = match decode_tuple(&key[1..]).unwrap().pop() {
            Some(KeyValue::Str(id)) => id,
            other => panic!("bad record key {other:?}"),
        };
        match model.find_by_id(&id, vec![]).await {
            Ok(entry) => out.push(entry),
            Err(TitoError::NotFound(_)) => panic!("record {id} vanished"),
            Err(e) => panic!("{e}"),
        }
    }
    out
}
