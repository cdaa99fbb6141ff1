//! Index maintenance over stored rows: an index added to a model with existing rows is built by
//! `reindex`, `verify` finds missing and orphan entries, and `repair` fixes them. They run on
//! the backend `TITO_TIKV_PD` names (see `support`).

mod support;

use serde::{Deserialize, Serialize};
use tito::types::{TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoModelTrait};
use tito::{AnyBackend, TitoEngine, TitoError, keyspace};

/// The first version of the model: no indexes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct GadgetV1 {
    id: String,
    color: String,
    serial: String,
}

impl TitoModelTrait for GadgetV1 {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "gadget".into()
    }
}

/// The same table after two indexes were added, one of them unique.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct GadgetV2 {
    id: String,
    color: String,
    serial: String,
}

fn index(name: &str, field: &str) -> TitoIndexConfig {
    TitoIndexConfig {
        condition: true,
        name: name.into(),
        fields: vec![TitoIndexField {
            name: field.into(),
            r#type: TitoIndexBlockType::String,
        }],
        custom_generator: None,
    }
}

impl TitoModelTrait for GadgetV2 {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "gadget".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![index("by_color", "color"), index("by_serial", "serial")]
    }
    fn get_unique_indexes(&self) -> Vec<String> {
        vec!["by_serial".into()]
    }
}

async fn seed_v1(db: &TitoEngine<AnyBackend>, count: usize, duplicate_serial: bool) {
    let model = db.clone().model::<GadgetV1>();
    db.transaction(|tx| async move {
        for i in 0..count {
            let serial = if duplicate_serial && i < 2 {
                "same".to_string()
            } else {
                format!("s{i}")
            };
            let gadget = GadgetV1 {
                id: format!("g{i:03}"),
                color: ["red", "blue"][i % 2].into(),
                serial,
            };
            model.build(gadget, &tx).await?;
        }
        Ok::<_, TitoError>(())
    })
    .await
    .unwrap();
}

async fn reds(db: &TitoEngine<AnyBackend>) -> usize {
    let model = db.clone().model::<GadgetV2>();
    let page = model
        .query_by_index("by_color")
        .value("red")
        .execute()
        .await
        .unwrap();
    page.items.len()
}

#[tokio::test]
async fn reindex_builds_an_index_added_after_the_rows_were_written() {
    let db = support::engine().await;
    seed_v1(&db, 25, false).await;
    let model = db.clone().model::<GadgetV2>();

    // Rows written before the index have no entries: the index refuses to answer instead of
    // answering with none of them, and so does a write-then-query through the new model.
    let not_ready = |err: TitoError| match err {
        TitoError::IndexNotReady { table, index } => {
            assert_eq!((table.as_str(), index.as_str()), ("gadget", "by_color"))
        }
        other => panic!("expected IndexNotReady, got {other:?}"),
    };
    let query = model.query_by_index("by_color").value("red").clone();
    not_ready(query.execute().await.unwrap_err());
    not_ready(query.count().await.unwrap_err());
    let before = model.verify().await.unwrap();
    assert_eq!(before.records, 25);
    assert_eq!(before.missing, 50, "two entries per record are missing");
    assert_eq!(before.stale_manifests, 25);
    assert!(!before.is_consistent());

    let mut reports = Vec::new();
    let done = model.reindex(10, |p| reports.push(*p)).await.unwrap();
    assert_eq!(done.records, 25);
    assert_eq!(done.added, 50);
    assert_eq!(done.removed, 0);
    let seen: Vec<u64> = reports.iter().map(|p| p.records).collect();
    assert_eq!(
        seen,
        vec![10, 20, 25],
        "progress is reported after every batch"
    );

    assert_eq!(reds(&db).await, 13);
    let after = model.verify().await.unwrap();
    assert!(after.is_consistent(), "{after:?}");
    assert_eq!(after.entries, 50);

    let again = model.reindex(10, |_| {}).await.unwrap();
    assert_eq!(
        (again.added, again.removed),
        (0, 0),
        "a second run changes nothing"
    );
}

#[tokio::test]
async fn reindex_refuses_duplicate_values_of_a_new_unique_index() {
    let db = support::engine().await;
    seed_v1(&db, 4, true).await;
    let model = db.clone().model::<GadgetV2>();
    let err = model.reindex(100, |_| {}).await.unwrap_err();
    assert!(
        matches!(&err, TitoError::UniqueViolation { index, .. } if index == "by_serial"),
        "{err:?}"
    );
    // A unique index two rows violate never becomes readable: no query trusts it.
    let by_serial = model.query_by_index("by_serial").value("same").clone();
    let err = by_serial.execute().await.unwrap_err();
    assert!(matches!(err, TitoError::IndexNotReady { .. }), "{err:?}");
    // Once the rows are fixed, the reindex completes and the index answers.
    let v1 = db.clone().model::<GadgetV1>();
    db.transaction(|tx| async move {
        let mut gadget = v1.find_by_id_tx("g000", vec![], &tx).await?;
        gadget.serial = "fixed".into();
        v1.update(gadget, &tx).await
    })
    .await
    .unwrap();
    model.reindex(100, |_| {}).await.unwrap();
    assert_eq!(by_serial.execute().await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn verify_finds_and_repair_fixes_missing_and_orphan_entries() {
    let db = support::engine().await;
    let model = db.clone().model::<GadgetV2>();
    db.transaction(|tx| {
        let model = model.clone();
        async move {
            for i in 0..6 {
                let gadget = GadgetV2 {
                    id: format!("g{i}"),
                    color: "red".into(),
                    serial: format!("s{i}"),
                };
                model.build(gadget, &tx).await?;
            }
            Ok::<_, TitoError>(())
        }
    })
    .await
    .unwrap();
    assert!(model.verify().await.unwrap().is_consistent());

    // Damage the index behind tito's back: drop one entry, add one no record owns.
    let entry = |id: &str, color: &str| {
        let mut key = keyspace::index_prefix("gadget", "by_color", false);
        tito::codec::put_str(&mut key, color, tito::codec::Direction::Asc);
        keyspace::finish_index_key(key, id, false)
    };
    let tx = db.begin().await.unwrap();
    tx.delete(entry("g3", "red")).await.unwrap();
    tx.put(entry("ghost", "red"), Vec::new()).await.unwrap();
    tx.commit().await.unwrap();

    let report = model.verify().await.unwrap();
    assert_eq!((report.missing, report.orphans), (1, 1), "{report:?}");
    assert_eq!(report.samples.len(), 2);

    let (orphans, progress) = model.repair(4).await.unwrap();
    assert_eq!(orphans, 1);
    assert_eq!(progress.added, 1);
    assert!(model.verify().await.unwrap().is_consistent());
    assert_eq!(reds(&db).await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_runs_online_beside_concurrent_updates() {
    let db = support::engine().await;
    seed_v1(&db, 200, false).await;
    let model = db.clone().model::<GadgetV2>();
    let writer = {
        let db = db.clone();
        let model = model.clone();
        tokio::spawn(async move {
            for round in 0..200 {
                let gadget = GadgetV2 {
                    id: format!("g{:03}", (round * 7) % 200),
                    color: format!("c{round}"),
                    serial: format!("s{}", (round * 7) % 200),
                };
                db.transaction_with_retry(tito::RetryPolicy::default(), |tx| {
                    let model = model.clone();
                    let gadget = gadget.clone();
                    async move { model.update(gadget, &tx).await }
                })
                .await
                .unwrap();
            }
        })
    };
    model.reindex(16, |_| {}).await.unwrap();
    writer.await.unwrap();
    let report = model.verify().await.unwrap();
    assert!(report.is_consistent(), "{report:?}");
}

/// An update through a model that lacks the new indexes, landing between two batches of the
/// reindex that builds them, keeps the entries the reindex already wrote: the reindex registers
/// the indexes before its first batch, so the older model maintains them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_model_keeps_entries_a_running_reindex_already_wrote() {
    let db = support::engine().await;
    seed_v1(&db, 20, false).await;
    let (paused_tx, paused) = tokio::sync::oneshot::channel();
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    let resumed = std::sync::Mutex::new(resumed);
    let reindex = {
        let model = db.clone().model::<GadgetV2>();
        let mut paused_tx = Some(paused_tx);
        tokio::spawn(async move {
            model
                .reindex(10, |_| {
                    // After the first batch: hold the reindex while the older model writes.
                    if let Some(paused_tx) = paused_tx.take() {
                        paused_tx.send(()).unwrap();
                        resumed.lock().unwrap().recv().unwrap();
                    }
                })
                .await
        })
    };
    paused.await.unwrap();
    let v1 = db.clone().model::<GadgetV1>();
    db.transaction(|tx| async move {
        let mut gadget = v1.find_by_id_tx("g003", vec![], &tx).await?;
        gadget.color = "green".into();
        v1.update(gadget, &tx).await
    })
    .await
    .unwrap();
    resume.send(()).unwrap();
    reindex.await.unwrap().unwrap();

    let model = db.clone().model::<GadgetV2>();
    let report = model.verify().await.unwrap();
    assert!(report.is_consistent(), "{report:?}");
    let greens = model.query_by_index("by_color").value("green").clone();
    let found = greens.execute().await.unwrap().items;
    assert_eq!(
        found.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["g003"]
    );
}

#[tokio::test]
async fn reindex_writes_each_record_back_byte_for_byte() {
    let db = support::engine().await;
    // A record written by a program whose model has fields this one lacks, with an order and
    // spelling of its own: reindexing through this model must not drop or rewrite any of it.
    let key = keyspace::record_key("gadget", "g1");
    let stored = br#"{"serial":"s1","id":"g1","weight":1.50,"notes":{"deep":[1,2]},"color":"red"}"#;
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(stored);
    let tx = db.begin().await.unwrap();
    tx.put(key.clone(), bytes.clone()).await.unwrap();
    tx.commit().await.unwrap();

    let model = db.clone().model::<GadgetV2>();
    let done = model.reindex(10, |_| {}).await.unwrap();
    assert_eq!((done.records, done.added), (1, 2));
    let tx = db.snapshot().await.unwrap();
    assert_eq!(tx.get(&key).await.unwrap(), Some(bytes));
    tx.rollback().await.unwrap();
    assert_eq!(reds(&db).await, 1);
    assert!(model.verify().await.unwrap().is_consistent());
}

/// The table once more, after `by_serial` was removed from the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct GadgetV3 {
    id: String,
    color: String,
    serial: String,
}

impl TitoModelTrait for GadgetV3 {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "gadget".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![index("by_color", "color")]
    }
}

#[tokio::test]
async fn reindex_through_a_model_without_an_index_removes_its_entries_and_registration() {
    let db = support::engine().await;
    let v2 = db.clone().model::<GadgetV2>();
    let gadgets = (0..6).map(|i| GadgetV2 {
        id: format!("g{i}"),
        color: "red".into(),
        serial: format!("s{i}"),
    });
    db.transaction(|tx| {
        let (v2, gadgets) = (v2.clone(), gadgets.collect());
        async move { v2.build_many(gadgets, &tx).await }
    })
    .await
    .unwrap();
    let by_serial = v2.query_by_index("by_serial").value("s1").clone();
    assert_eq!(by_serial.execute().await.unwrap().items.len(), 1);

    let v3 = db.clone().model::<GadgetV3>();
    let done = v3.reindex(4, |_| {}).await.unwrap();
    assert_eq!((done.records, done.added, done.removed), (6, 0, 6));
    let entries = |unique| {
        let db = db.clone();
        async move {
            let tx = db.snapshot().await.unwrap();
            let rows = tx
                .scan(keyspace::index_range("gadget", unique), 100)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            rows.len()
        }
    };
    assert_eq!(
        entries(true).await,
        0,
        "the unique index's entries are gone"
    );
    assert_eq!(entries(false).await, 6);
    assert!(v3.verify().await.unwrap().is_consistent());
    // A model that still declares the index must not trust it: it is building again.
    let err = by_serial.execute().await.unwrap_err();
    assert!(matches!(err, TitoError::IndexNotReady { .. }), "{err:?}");
    v2.reindex(100, |_| {}).await.unwrap();
    assert_eq!(by_serial.execute().await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn raw_index_pages_follow_their_cursor_through_plain_and_unique_indexes() {
    let db = support::engine().await;
    let model = db.clone().model::<GadgetV2>();
    db.transaction(|tx| async move {
        for i in 0..7 {
            let gadget = GadgetV2 {
                id: format!("g{i:03}"),
                color: ["red", "blue"][i % 2].into(),
                serial: format!("s{}", 9 - i),
            };
            model.build(gadget, &tx).await?;
        }
        Ok::<_, TitoError>(())
    })
    .await
    .unwrap();
    for (index, first) in [("by_color", "g001"), ("by_serial", "g006")] {
        let (mut ids, mut after, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let page = db
                .raw_index_page("gadget", index, after.as_deref(), 3)
                .await
                .unwrap();
            ids.extend(page.entries.iter().map(|e| e.id.clone()));
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(ids.len(), 7, "{index}: {ids:?}");
        assert_eq!(ids[0], first, "{index} in index order: {ids:?}");
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 7, "{index}: nothing repeated");
        assert_eq!(pages, 3, "{index}: 3 + 3 + 1");
        assert_eq!(
            db.raw_index_entries("gadget", index, 3)
                .await
                .unwrap()
                .len(),
            3
        );
    }
    // A cursor belongs to its index; anything else is refused.
    let color = db
        .raw_index_page("gadget", "by_color", None, 1)
        .await
        .unwrap();
    let cursor = color.next.unwrap();
    for (index, after) in [
        ("by_serial", cursor.as_str()),
        ("by_color", "xyz"),
        ("by_color", "0"),
    ] {
        let refused = db.raw_index_page("gadget", index, Some(after), 3).await;
        assert!(
            matches!(refused, Err(TitoError::InvalidCursor(_))),
            "{index} after {after}: {refused:?}"
        );
    }
}
