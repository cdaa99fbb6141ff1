//! Every decoder of stored or client-supplied bytes, fed arbitrary input: the key codec and key
//! parsers, cursors, stored records and manifests, events and ready marks, and every stored queue
//! value. None panics; each rejection is a typed error. Embedded only: the point is the
//! decoders, not the backend.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::{Deserialize, Serialize};
use tito::queue::{
    CallRecord, Checkpoint, DeadLetter, Member, PartitionLease, PendingTimes, ReadyMark,
    RetryEntry, decode_event,
};
use tito::types::{TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoModelTrait};
use tito::{Embedded, TitoEngine, TitoError, codec, keyspace};

const CASES: u32 = 512;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        // Valid-looking prefixes with a corrupt tail reach deeper into the decoders.
        (0u8..4, prop::collection::vec(any::<u8>(), 0..48)).prop_map(|(v, rest)| {
            let mut out = vec![v, b'{'];
            out.extend(rest);
            out
        }),
    ]
}

/// Typed errors a decoder may give for bad bytes.
fn typed(err: &TitoError) -> bool {
    matches!(
        err,
        TitoError::Decode { .. } | TitoError::InvalidCursor(_) | TitoError::InvalidQuery(_)
    )
}

#[test]
fn pure_decoders_never_panic() {
    runner()
        .run(&bytes(), |input| {
            let _ = codec::decode_tuple(&input);
            let _ = codec::display_key(&input);
            let _ = keyspace::parse_record_key(&input);
            let _ = keyspace::parse_schema_key(&input);
            for at in [0, 1, 2, input.len()] {
                let _ = keyspace::id_from_index_key(&input, at);
                let _ = keyspace::split_index_key(&input, at);
                let _ = keyspace::queue::pending_key_parts(&input, at);
                let _ = keyspace::queue::ready_key_parts(&input, at);
                let _ = keyspace::queue::corrupt_source(&input, at);
            }
            let key = b"k";
            let _ = PendingTimes::of(&input, 0);
            let results = [
                decode_event(key, &input).err(),
                ReadyMark::decode(key, &input).err(),
                PartitionLease::decode(key, &input).err(),
                Member::decode(key, &input).err(),
                Checkpoint::decode(key, &input).err(),
                RetryEntry::decode(key, &input).err(),
                DeadLetter::decode(key, &input).err(),
                CallRecord::decode(key, &input).err(),
            ];
            for err in results.iter().flatten() {
                prop_assert!(typed(err), "{err:?}");
            }
            Ok(())
        })
        .unwrap();
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Item {
    id: String,
    n: i64,
}

impl TitoModelTrait for Item {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "item".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![TitoIndexConfig {
            condition: true,
            name: "by_n".into(),
            fields: vec![TitoIndexField {
                name: "n".into(),
                r#type: TitoIndexBlockType::Number,
            }],
            custom_generator: None,
        }]
    }
}

#[test]
fn stored_records_manifests_cursors_and_query_values_never_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db: TitoEngine = rt.block_on(Embedded::temporary()).unwrap();
    let items = db.clone().model::<Item>();
    rt.block_on(db.transaction(|tx| {
        let items = items.clone();
        async move {
            let one = Item {
                id: "a".into(),
                n: 1,
            };
            let two = Item {
                id: "b".into(),
                n: 2,
            };
            items.build_many(vec![one, two], &tx).await
        }
    }))
    .unwrap();
    let text = || prop::string::string_regex("[ -~]{0,80}").unwrap();
    let input = (bytes(), bytes(), text(), text());
    runner()
        .run(&input, |(record, manifest, cursor, value)| {
            rt.block_on(async {
                let tx = db.begin().await.unwrap();
                tx.put(keyspace::record_key("item", "b"), record)
                    .await
                    .unwrap();
                tx.put(keyspace::manifest_key("item", "b"), manifest)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                let found = items.find_by_id("b", vec![]).await.err();
                let page = items.query_by_index("by_n").value(1).execute().await.err();
                let verified = items.verify().await.err();
                let untyped = db.verify_table("item").await.err();
                let cursor = items
                    .query_by_index("by_n")
                    .cursor(Some(cursor))
                    .execute()
                    .await
                    .err();
                let value = items
                    .query_by_index("by_n")
                    .value(value.as_str())
                    .execute()
                    .await
                    .err();
                let updated = db
                    .transaction(|tx| {
                        let items = items.clone();
                        async move {
                            items
                                .update(
                                    Item {
                                        id: "b".into(),
                                        n: 3,
                                    },
                                    &tx,
                                )
                                .await
                        }
                    })
                    .await
                    .err();
                for err in [found, page, verified, untyped, cursor, value, updated]
                    .iter()
                    .flatten()
                {
                    prop_assert!(typed(err), "{err:?}");
                }
                // Writing a good record back keeps the next case's starting point.
                let tx = db.begin().await.unwrap();
                tx.delete(keyspace::manifest_key("item", "b"))
                    .await
                    .unwrap();
                tx.delete(keyspace::record_key("item", "b")).await.unwrap();
                tx.commit().await.unwrap();
                Ok(())
            })
        })
        .unwrap();
}
