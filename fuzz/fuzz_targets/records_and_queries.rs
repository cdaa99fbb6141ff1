//! Stored records and manifests, cursors and query values, through the public API of one
//! embedded database: the input is split into a stored record, a stored manifest, a cursor and
//! a query value. Reads, queries and verification must each succeed or fail with a
//! typed error.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tito::{Embedded, TitoEngine, TitoError, TitoModel, keyspace};
use tokio::runtime::Runtime;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, tito::TitoModel)]
#[tito(table = "item")]
struct Item {
    #[tito(id)]
    id: String,
    #[tito(index(name = "by_n"))]
    n: i64,
}

struct Fixture {
    rt: Runtime,
    db: TitoEngine,
    items: TitoModel<Item>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let db: TitoEngine = rt.block_on(Embedded::temporary()).expect("a database");
        let items = db.clone().model::<Item>();
        // A first write registers the table's schema, which `verify_table` reads.
        rt.block_on(db.transaction(|tx| {
            let items = items.clone();
            let item = Item {
                id: "a".into(),
                n: 1,
            };
            async move { items.build(item, &tx).await }
        }))
        .expect("a first record");
        Fixture { rt, db, items }
    })
}

fn typed(err: &TitoError) -> bool {
    matches!(
        err,
        TitoError::Decode { .. } | TitoError::InvalidCursor(_) | TitoError::InvalidQuery(_)
    )
}

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(4, |b| *b == 0xff);
    let record = parts.next().unwrap_or_default().to_vec();
    let manifest = parts.next().unwrap_or_default().to_vec();
    let cursor = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let value = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let Fixture { rt, db, items } = fixture();
    rt.block_on(async {
        let tx = db.begin().await.expect("begin");
        tx.put(keyspace::record_key("item", "b"), record)
            .await
            .expect("put");
        tx.put(keyspace::manifest_key("item", "b"), manifest)
            .await
            .expect("put");
        tx.commit().await.expect("commit");
        let errors = [
            items.find_by_id("b", vec![]).await.err(),
            items.query_by_index("by_n").value(1).execute().await.err(),
            items.verify().await.err(),
            db.verify_table("item").await.err(),
            (items
                .query_by_index("by_n")
                .cursor(Some(cursor))
                .execute()
                .await)
                .err(),
            (items
                .query_by_index("by_n")
                .value(value.as_str())
                .execute()
                .await)
                .err(),
        ];
        for err in errors.iter().flatten() {
            assert!(typed(err), "{err:?}");
        }
    });
});
