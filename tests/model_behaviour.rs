//! Model behaviour beyond the seed: unique indexes, bad input, round-trip budgets, concurrency,
//! record evolution and the stored format version.
//!
//! Every test runs on the backend `TITO_TIKV_PD` names (see `support`), except the format-version
//! check, which is about a folder of the embedded engine.

mod support;

use serde::{Deserialize, Serialize};
use tito::backend::{Counting, Embedded};
use tito::types::{TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoModelTrait};
use tito::{RetryPolicy, TitoEngine, TitoError};

fn field(name: &str, r#type: TitoIndexBlockType) -> TitoIndexField {
    TitoIndexField {
        name: name.to_string(),
        r#type,
    }
}

fn index(name: &str, fields: Vec<TitoIndexField>) -> TitoIndexConfig {
    TitoIndexConfig {
        condition: true,
        name: name.to_string(),
        fields,
        custom_generator: None,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Account {
    id: String,
    email: String,
    balance: i64,
    score: f64,
}

impl TitoModelTrait for Account {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "account".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![
            index("by_email", vec![field("email", TitoIndexBlockType::String)]),
            index(
                "by_balance",
                vec![field("balance", TitoIndexBlockType::Number)],
            ),
            index("by_score", vec![field("score", TitoIndexBlockType::Number)]),
        ]
    }
    fn get_unique_indexes(&self) -> Vec<String> {
        vec!["by_email".into()]
    }
}

fn account(id: &str, email: &str, balance: i64) -> Account {
    Account {
        id: id.into(),
        email: email.into(),
        balance,
        score: balance as f64 / 10.0,
    }
}

async fn insert<B: tito::Backend>(
    db: &TitoEngine<B>,
    accounts: Vec<Account>,
) -> Result<(), TitoError> {
    let model = db.clone().model::<Account>();
    db.transaction(|tx| async move {
        for a in accounts {
            model.build(a, &tx).await?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unique_index_rejects_a_second_holder_and_frees_on_change() {
    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    insert(&db, vec![account("a", "ann@x.io", 1)])
        .await
        .unwrap();

    let err = insert(&db, vec![account("b", "ann@x.io", 2)])
        .await
        .unwrap_err();
    match err {
        TitoError::UniqueViolation {
            index, existing_id, ..
        } => {
            assert_eq!(index, "by_email");
            assert_eq!(existing_id, "a");
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert!(matches!(
        model.find_by_id("b", vec![]).await,
        Err(TitoError::NotFound(_))
    ));

    // Changing a's email frees the old value for b.
    let m = model.clone();
    db.transaction(|tx| async move { m.update(account("a", "ann@new.io", 1), &tx).await })
        .await
        .unwrap();
    insert(&db, vec![account("b", "ann@x.io", 2)])
        .await
        .unwrap();
    let page = model
        .query_by_index("by_email")
        .value("ann@x.io")
        .execute()
        .await
        .unwrap();
    assert_eq!(page.items, vec![account("b", "ann@x.io", 2)]);
    // Updating a record without changing its unique value is not a violation.
    let m = model.clone();
    db.transaction(|tx| async move { m.update(account("b", "ann@x.io", 3), &tx).await })
        .await
        .unwrap();
}

#[tokio::test]
async fn racing_unique_inserts_let_exactly_one_win() {
    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    let first = db.begin().await.unwrap();
    let second = db.begin().await.unwrap();
    model
        .build(account("a", "same@x.io", 1), &first)
        .await
        .unwrap();
    model
        .build(account("b", "same@x.io", 2), &second)
        .await
        .unwrap();
    first.commit().await.unwrap();
    assert!(matches!(second.commit().await, Err(TitoError::Conflict(_))));
    let page = model
        .query_by_index("by_email")
        .value("same@x.io")
        .execute()
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn key_exists_and_not_found_are_typed() {
    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    insert(&db, vec![account("a", "a@x.io", 1)]).await.unwrap();
    let err = insert(&db, vec![account("a", "other@x.io", 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, TitoError::KeyExists(_)), "{err:?}");
    let m = model.clone();
    let err = db
        .transaction(|tx| async move { m.update(account("zz", "z@x.io", 1), &tx).await })
        .await
        .unwrap_err();
    assert!(matches!(err, TitoError::NotFound(_)), "{err:?}");
    let m = model.clone();
    let err = db
        .transaction(|tx| async move { m.delete_by_id("zz", &tx).await })
        .await
        .unwrap_err();
    assert!(matches!(err, TitoError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn bad_queries_are_typed_errors() {
    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    insert(
        &db,
        vec![account("a", "a@x.io", 1), account("b", "b@x.io", 2)],
    )
    .await
    .unwrap();

    let invalid = |r: Result<tito::TitoPage<Account>, TitoError>| match r {
        Err(TitoError::InvalidQuery(msg)) => msg,
        other => panic!("expected InvalidQuery, got {other:?}"),
    };
    let msg = invalid(model.query_by_index("by_emial").value("a").execute().await);
    assert!(
        msg.contains("by_emial") && msg.contains("by_email"),
        "{msg}"
    );
    invalid(
        model
            .query_by_index("by_email")
            .value("a")
            .value("b")
            .execute()
            .await,
    );
    invalid(
        model
            .query_by_index("by_balance")
            .value("ten")
            .execute()
            .await,
    );
    invalid(model.query_by_index("by_email").value(5).execute().await);
    invalid(
        model
            .query_by_index("by_email")
            .relationship("nope")
            .execute()
            .await,
    );
    invalid(
        model
            .query_by_index("by_balance")
            .starts_with("1")
            .execute()
            .await,
    );

    let page = model
        .query_by_index("by_balance")
        .limit(Some(1))
        .execute()
        .await
        .unwrap();
    let cursor = page.cursor.expect("a second page exists");
    for bad in ["", "not-hex", "00ff", &cursor[..cursor.len() - 2]] {
        let r = model
            .query_by_index("by_balance")
            .cursor(Some(bad.to_string()))
            .execute()
            .await;
        assert!(
            matches!(r, Err(TitoError::InvalidCursor(_))),
            "{bad}: {r:?}"
        );
    }
    // A cursor of one index is refused by another, and by the other direction.
    let r = model
        .query_by_index("by_score")
        .cursor(Some(cursor.clone()))
        .execute()
        .await;
    assert!(matches!(r, Err(TitoError::InvalidCursor(_))));
    let r = model
        .query_by_index("by_balance")
        .cursor(Some(cursor.clone()))
        .execute_reverse()
        .await;
    assert!(matches!(r, Err(TitoError::InvalidCursor(_))));
    let next = model
        .query_by_index("by_balance")
        .limit(Some(1))
        .cursor(Some(cursor))
        .execute()
        .await
        .unwrap();
    assert_eq!(next.items[0].id, "b");
    assert!(next.cursor.is_none());
}

#[tokio::test]
async fn oversized_values_and_empty_ids_are_refused_without_partial_writes() {
    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    let huge = account("big", &"x".repeat(7 * 1024 * 1024), 1);
    let err = insert(&db, vec![account("ok", "ok@x.io", 1), huge])
        .await
        .unwrap_err();
    assert!(matches!(err, TitoError::TooLarge { .. }), "{err:?}");
    // The whole transaction rolled back: the first record is not there either.
    assert!(matches!(
        model.find_by_id("ok", vec![]).await,
        Err(TitoError::NotFound(_))
    ));
    let long_key = account(&"k".repeat(5000), "k@x.io", 1);
    let err = insert(&db, vec![long_key]).await.unwrap_err();
    assert!(
        matches!(err, TitoError::TooLarge { what: "key", .. }),
        "{err:?}"
    );
    let err = insert(&db, vec![account("", "e@x.io", 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, TitoError::Serialize(_)), "{err:?}");
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Doc {
    id: String,
    body: serde_json::Value,
    weight: Option<f64>,
}

impl TitoModelTrait for Doc {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "doc".into()
    }
}

/// `levels` arrays nested around a number.
fn nested(levels: usize) -> serde_json::Value {
    (0..levels).fold(serde_json::json!(1), |inner, _| serde_json::json!([inner]))
}

#[tokio::test]
async fn values_json_cannot_read_back_are_refused_and_change_nothing() {
    let db = support::engine().await;
    let accounts = db.clone().model::<Account>();
    insert(&db, vec![account("a", "a@x.io", 10)]).await.unwrap();
    let refused = |err: TitoError, field: &str, what: &str| match err {
        TitoError::Serialize(message) => {
            assert!(
                message.contains(field) && message.contains(what),
                "{message}"
            )
        }
        other => panic!("expected a serialize error, got {other:?}"),
    };

    // NaN and infinities: JSON would store null, which no longer reads as a number.
    let mut nan = account("a", "a@x.io", 10);
    nan.score = f64::NAN;
    let err = db
        .transaction(|tx| {
            let (accounts, nan) = (accounts.clone(), nan.clone());
            async move { accounts.update(nan, &tx).await }
        })
        .await
        .unwrap_err();
    refused(err, "`score`", "NaN");
    let mut infinite = account("b", "b@x.io", 1);
    infinite.score = f64::NEG_INFINITY;
    refused(
        insert(&db, vec![infinite]).await.unwrap_err(),
        "`score`",
        "infinite",
    );
    // The stored record, its index entries and the refused id are as before.
    assert_eq!(
        accounts.get("a").await.unwrap(),
        Some(account("a", "a@x.io", 10))
    );
    assert_eq!(accounts.get("b").await.unwrap(), None);
    let by_score = accounts
        .query_by_index("by_score")
        .value(1.0)
        .execute()
        .await
        .unwrap();
    assert_eq!(by_score.items, vec![account("a", "a@x.io", 10)]);
    assert!(accounts.verify().await.unwrap().is_consistent());

    // An optional number would read back as None: refused too, not silently changed.
    let docs = db.clone().model::<Doc>();
    let doc = |id: &str, body, weight| Doc {
        id: id.into(),
        body,
        weight,
    };
    let save = |record: Doc| {
        let docs = docs.clone();
        db.transaction(move |tx| {
            let (docs, record) = (docs.clone(), record.clone());
            async move { docs.build(record, &tx).await }
        })
    };
    refused(
        save(doc("w", nested(1), Some(f64::NAN))).await.unwrap_err(),
        "`weight`",
        "NaN",
    );
    // Nesting: reads stop at 128 levels, so writes stop well before.
    refused(
        save(doc("deep", nested(100), None)).await.unwrap_err(),
        "`body[0]",
        "nested deeper than 100",
    );
    assert_eq!(docs.get("deep").await.unwrap(), None);
    let at_limit = doc("deep", nested(99), Some(0.5));
    save(at_limit.clone()).await.unwrap();
    assert_eq!(docs.get("deep").await.unwrap(), Some(at_limit));
}

#[tokio::test]
async fn corrupt_rows_are_decode_errors_naming_the_key() {
    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    insert(&db, vec![account("a", "a@x.io", 1)]).await.unwrap();
    let tx = db.begin().await.unwrap();
    tx.put(
        tito::keyspace::record_key("account", "a"),
        b"\x01{not json".to_vec(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    match model.find_by_id("a", vec![]).await {
        Err(TitoError::Decode { key, .. }) => assert!(key.contains("account"), "{key}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    let r = model
        .query_by_index("by_email")
        .value("a@x.io")
        .execute()
        .await;
    assert!(matches!(r, Err(TitoError::Decode { .. })));
}

#[tokio::test]
async fn numbers_order_numerically_and_strings_keep_case() {
    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    let balances = [-5, -3, 0, 7, 9_999_999_999, 10_000_000_000, -10_000_000_000];
    let accounts: Vec<Account> = balances
        .iter()
        .enumerate()
        .map(|(i, b)| account(&format!("n{i}"), &format!("U{i}@x.io"), *b))
        .collect();
    insert(&db, accounts).await.unwrap();
    let page = model.query_by_index("by_balance").execute().await.unwrap();
    let got: Vec<i64> = page.items.iter().map(|a| a.balance).collect();
    let mut want = balances.to_vec();
    want.sort();
    assert_eq!(got, want);
    let page = model
        .query_by_index("by_score")
        .execute_reverse()
        .await
        .unwrap();
    let got: Vec<f64> = page.items.iter().map(|a| a.score).collect();
    assert!(got.windows(2).all(|w| w[0] >= w[1]), "{got:?}");
    let range = model
        .query_by_index("by_balance")
        .between(-4, "9999999999")
        .execute()
        .await
        .unwrap();
    let got: Vec<i64> = range.items.iter().map(|a| a.balance).collect();
    assert_eq!(got, vec![-3, 0, 7, 9_999_999_999]);
    let upper = model
        .query_by_index("by_email")
        .value("U1@x.io")
        .execute()
        .await
        .unwrap();
    assert_eq!(upper.items.len(), 1);
    let lower = model
        .query_by_index("by_email")
        .value("u1@x.io")
        .execute()
        .await
        .unwrap();
    assert!(lower.items.is_empty());
}

#[tokio::test]
async fn a_page_with_one_relationship_costs_one_scan_and_two_batched_reads() {
    use serde_json::json;

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct Tag {
        id: String,
    }
    impl TitoModelTrait for Tag {
        fn get_id(&self) -> String {
            self.id.clone()
        }
        fn get_table_name(&self) -> String {
            "tag".into()
        }
    }
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct Post {
        id: String,
        author: String,
        tag_ids: Vec<String>,
        #[serde(default)]
        tags: Vec<Tag>,
    }
    impl TitoModelTrait for Post {
        fn get_id(&self) -> String {
            self.id.clone()
        }
        fn get_table_name(&self) -> String {
            "post".into()
        }
        fn get_indexes(&self) -> Vec<TitoIndexConfig> {
            vec![index(
                "by_author",
                vec![field("author", TitoIndexBlockType::String)],
            )]
        }
        fn get_embedded_relationships(&self) -> Vec<tito::types::TitoEmbeddedRelationshipConfig> {
            vec![tito::types::TitoEmbeddedRelationshipConfig {
                source_field_name: "tag_ids".into(),
                destination_field_name: "tags".into(),
                model: "tag".into(),
            }]
        }
    }

    let backend = Counting::new(support::backend().await);
    let db = TitoEngine::new(backend.clone()).await.unwrap();
    let tags = db.clone().model::<Tag>();
    let posts = db.clone().model::<Post>();
    let (tags_w, posts_w) = (tags.clone(), posts.clone());
    db.transaction(|tx| async move {
        for t in 0..5 {
            tags_w
                .build(
                    Tag {
                        id: format!("t{t}"),
                    },
                    &tx,
                )
                .await?;
        }
        for p in 0..10 {
            let post = Post {
                id: format!("p{p}"),
                author: "ann".into(),
                tag_ids: vec![
                    format!("t{}", p % 5),
                    format!("t{}", (p + 1) % 5),
                    "gone".into(),
                ],
                tags: vec![Tag {
                    id: "never stored".into(),
                }],
            };
            posts_w.build(post, &tx).await?;
        }
        Ok::<_, TitoError>(())
    })
    .await
    .unwrap();

    backend.take();
    let page = posts
        .query_by_index("by_author")
        .value("ann")
        .relationship("tags")
        .limit(Some(10))
        .execute()
        .await
        .unwrap();
    let calls = backend.take();
    assert_eq!(page.items.len(), 10);
    assert!(
        page.items.iter().all(|p| p.tags.len() == 2),
        "missing tags are skipped"
    );
    assert_eq!(
        (calls.scan, calls.batch_get, calls.get, calls.commit),
        (1, 2, 0, 0),
        "{calls:?}"
    );

    // The hydrated field is never stored.
    let tx = db.snapshot().await.unwrap();
    let raw = tx
        .get(&tito::keyspace::record_key("post", "p0"))
        .await
        .unwrap()
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&raw[1..]).unwrap();
    assert_eq!(stored["tags"], json!([]));

    // A get by id is one read; an insert is one commit with one batched read.
    backend.take();
    posts.find_by_id("p1", vec![]).await.unwrap();
    let calls = backend.take();
    assert_eq!(calls.round_trips(), 1, "{calls:?}");
    let p = posts.clone();
    db.transaction(|tx| async move {
        let post = Post {
            id: "new".into(),
            author: "bob".into(),
            ..Post::default()
        };
        p.build(post, &tx).await
    })
    .await
    .unwrap();
    let calls = backend.take();
    assert_eq!(
        (calls.batch_get, calls.get, calls.scan, calls.commit),
        (1, 0, 0, 1),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_lose_nothing_and_keep_indexes_consistent() {
    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    insert(
        &db,
        vec![account("a", "a@x.io", 0), account("b", "b@x.io", 0)],
    )
    .await
    .unwrap();
    let policy = RetryPolicy {
        max_attempts: 1000,
        base_delay: std::time::Duration::from_micros(50),
        max_delay: std::time::Duration::from_millis(5),
    };
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (db, model) = (db.clone(), model.clone());
            tokio::spawn(async move {
                for _ in 0..25 {
                    let id = if t % 2 == 0 { "a" } else { "b" };
                    db.transaction_with_retry(policy, |tx| {
                        let model = model.clone();
                        async move {
                            let mut acc = model.find_by_id_tx(id, vec![], &tx).await?;
                            acc.balance += 1;
                            model.update(acc, &tx).await
                        }
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let a = model.find_by_id("a", vec![]).await.unwrap();
    let b = model.find_by_id("b", vec![]).await.unwrap();
    assert_eq!((a.balance, b.balance), (100, 100));
    // Exactly one index entry per record, at the final value.
    let all = model.query_by_index("by_balance").execute().await.unwrap();
    assert_eq!(all.items.len(), 2);
    let at_100 = model
        .query_by_index("by_balance")
        .value(100)
        .execute()
        .await
        .unwrap();
    assert_eq!(at_100.items.len(), 2);
}

#[tokio::test]
async fn retrying_runner_retries_conflicts_but_not_closure_errors() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    insert(&db, vec![account("a", "a@x.io", 0)]).await.unwrap();

    // The first attempt is made to conflict by a write that commits while it runs.
    let attempts = Arc::new(AtomicU32::new(0));
    let result = db
        .transaction_with_retry(RetryPolicy::default(), |tx| {
            let (db, model, attempts) = (db.clone(), model.clone(), attempts.clone());
            async move {
                let mut acc = model.find_by_id_tx("a", vec![], &tx).await?;
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    let m = model.clone();
                    db.transaction(|other| async move {
                        m.update(account("a", "a@x.io", 50), &other).await
                    })
                    .await?;
                }
                acc.balance += 1;
                model.update(acc, &tx).await
            }
        })
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(result.balance, 51);

    let calls = Arc::new(AtomicU32::new(0));
    let err = db
        .transaction_with_retry(RetryPolicy::default(), |_tx| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(TitoError::custom("application error"))
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(err, TitoError::Custom(_)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Without retries the same conflict surfaces as a retryable error.
    let tx = db.begin().await.unwrap();
    let mut acc = model.find_by_id_tx("a", vec![], &tx).await.unwrap();
    let m = model.clone();
    db.transaction(|other| async move { m.update(account("a", "a@x.io", 7), &other).await })
        .await
        .unwrap();
    acc.balance = 0;
    model.update(acc, &tx).await.unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(err.is_retryable());
}

#[tokio::test]
async fn records_survive_added_and_removed_fields() {
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct V1 {
        id: String,
        name: String,
        legacy: String,
    }
    impl TitoModelTrait for V1 {
        fn get_id(&self) -> String {
            self.id.clone()
        }
        fn get_table_name(&self) -> String {
            "evolving".into()
        }
    }
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct V2 {
        id: String,
        name: String,
        #[serde(default)]
        nickname: Option<String>,
        #[serde(default)]
        visits: u32,
    }
    impl TitoModelTrait for V2 {
        fn get_id(&self) -> String {
            self.id.clone()
        }
        fn get_table_name(&self) -> String {
            "evolving".into()
        }
    }
    let db = support::engine().await;
    let v1 = db.clone().model::<V1>();
    db.transaction(|tx| async move {
        let old = V1 {
            id: "1".into(),
            name: "Ann".into(),
            legacy: "dropped later".into(),
        };
        v1.build(old, &tx).await
    })
    .await
    .unwrap();
    let v2 = db
        .clone()
        .model::<V2>()
        .find_by_id("1", vec![])
        .await
        .unwrap();
    assert_eq!((v2.name.as_str(), v2.nickname, v2.visits), ("Ann", None, 0));
}

#[tokio::test]
async fn a_database_of_a_newer_format_is_refused() {
    use tito::backend::{Backend, BackendTx, TxKind};
    let dir = std::env::temp_dir().join(format!("tito-format-{}", tito::DBUuid::new_v4()));
    {
        let backend = Embedded::builder(&dir).open_backend().unwrap();
        let mut tx = backend.begin(TxKind::Optimistic).await.unwrap();
        let newer = tito::keyspace::FORMAT_VERSION + 1;
        tx.put(tito::keyspace::format_key(), newer.to_be_bytes().to_vec())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let err = Embedded::builder(&dir)
        .temporary(true)
        .open()
        .await
        .unwrap_err();
    assert!(matches!(err, TitoError::IncompatibleFormat(_)), "{err:?}");
}

#[tokio::test]
async fn build_many_checks_every_record_in_one_batched_read() {
    let backend = Counting::new(support::backend().await);
    let db = TitoEngine::new(backend.clone()).await.unwrap();
    let model = db.clone().model::<Account>();
    let batch: Vec<Account> = (0..100)
        .map(|i| account(&format!("a{i}"), &format!("a{i}@x"), i))
        .collect();
    // The first write registers the model's indexes, once per engine.
    let tx = db.begin().await.unwrap();
    model.build_many(Vec::new(), &tx).await.unwrap();
    tx.commit().await.unwrap();
    backend.take();
    let tx = db.begin().await.unwrap();
    model.build_many(batch, &tx).await.unwrap();
    tx.commit().await.unwrap();
    let calls = backend.take();
    assert_eq!(
        (calls.get, calls.batch_get, calls.scan, calls.commit),
        (0, 1, 0, 1),
        "{calls:?}"
    );

    // Clashes inside one batch, or with stored records, are typed errors.
    let clash = |records: Vec<Account>| {
        let db = db.clone();
        let model = model.clone();
        async move {
            db.transaction(|tx| async move { model.build_many(records, &tx).await })
                .await
                .unwrap_err()
        }
    };
    let twice = clash(vec![account("n1", "n1@x", 1), account("n1", "n2@x", 2)]).await;
    assert!(matches!(twice, TitoError::KeyExists(_)), "{twice:?}");
    let same_email = clash(vec![account("n1", "same@x", 1), account("n2", "same@x", 2)]).await;
    assert!(
        matches!(&same_email, TitoError::UniqueViolation { index, existing_id, .. }
            if index == "by_email" && existing_id == "n1"),
        "{same_email:?}"
    );
    let stored_email = clash(vec![account("n3", "n3@x", 3), account("n4", "a7@x", 4)]).await;
    assert!(
        matches!(&stored_email, TitoError::UniqueViolation { existing_id, .. } if existing_id == "a7"),
        "{stored_email:?}"
    );
    assert!(
        model.find_by_id("n3", vec![]).await.is_err(),
        "a failed batch stores nothing"
    );
}

#[tokio::test]
async fn map_fields_are_indexed_by_key_path_and_a_whole_map_is_refused() {
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct Product {
        id: String,
        attributes: BTreeMap<String, String>,
    }
    impl TitoModelTrait for Product {
        fn get_id(&self) -> String {
            self.id.clone()
        }
        fn get_table_name(&self) -> String {
            "product".into()
        }
        fn get_indexes(&self) -> Vec<TitoIndexConfig> {
            let whole = self.attributes.contains_key("whole");
            let mut indexes = vec![index(
                "by_color",
                vec![field("attributes.color", TitoIndexBlockType::String)],
            )];
            if whole {
                indexes.push(index(
                    "by_attributes",
                    vec![field("attributes", TitoIndexBlockType::String)],
                ));
            }
            indexes
        }
    }
    let product = |id: &str, pairs: &[(&str, &str)]| Product {
        id: id.into(),
        attributes: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let db = support::engine().await;
    let model = db.clone().model::<Product>();
    for p in [
        product("p1", &[("color", "red"), ("size", "L")]),
        product("p2", &[("size", "M")]),
        product("p3", &[("color", "red")]),
    ] {
        let model = model.clone();
        db.transaction(|tx| async move { model.build(p, &tx).await })
            .await
            .unwrap();
    }
    let red = model
        .query_by_index("by_color")
        .value("red")
        .execute()
        .await
        .unwrap();
    let ids: Vec<String> = red.items.iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids, ["p1", "p3"], "a record without the key is not indexed");

    let refused = db
        .transaction(|tx| {
            let model = model.clone();
            async move { model.build(product("p4", &[("whole", "x")]), &tx).await }
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, TitoError::Serialize(m) if m.contains("by_attributes")),
        "{refused:?}"
    );
    assert!(
        model.find_by_id("p4", vec![]).await.is_err(),
        "nothing stored"
    );
}

#[tokio::test]
async fn pages_never_skip_or_repeat_rows_written_between_pages() {
    for reverse in [false, true] {
        let db = support::engine().await;
        let model = db.clone().model::<Account>();
        let start: Vec<Account> = (0..10)
            .map(|i| account(&format!("a{i}"), &format!("a{i}@x"), i * 10))
            .collect();
        insert(&db, start).await.unwrap();

        let mut seen: Vec<i64> = Vec::new();
        let mut cursor = None;
        for round in 0.. {
            let mut query = model.query_by_index("by_balance");
            query.limit(Some(2)).cursor(cursor.take());
            let page = if reverse {
                query.execute_reverse().await.unwrap()
            } else {
                query.execute().await.unwrap()
            };
            seen.extend(page.items.iter().map(|a| a.balance));
            let Some(next) = page.cursor else { break };
            cursor = Some(next);
            if round == 1 {
                let last = *seen.last().unwrap();
                let (behind, ahead) = if reverse {
                    (last + 5, last - 5)
                } else {
                    (last - 5, last + 5)
                };
                // A row behind the cursor is not shown; one ahead is. The last row shown and a
                // row further ahead are deleted: the cursor still continues right after it.
                insert(
                    &db,
                    vec![
                        account("behind", "behind@x", behind),
                        account("ahead", "ahead@x", ahead),
                    ],
                )
                .await
                .unwrap();
                let gone_ahead = if reverse { 10 } else { 80 };
                for id in [format!("a{}", last / 10), format!("a{}", gone_ahead / 10)] {
                    let model = model.clone();
                    db.transaction(|tx| async move { model.delete_by_id(&id, &tx).await })
                        .await
                        .unwrap();
                }
            }
        }
        let mut expected: Vec<i64> = (0..10)
            .map(|i| i * 10)
            .filter(|b| *b != if reverse { 10 } else { 80 })
            .collect();
        let after_round_1 = if reverse { 60 } else { 30 };
        expected.push(if reverse {
            after_round_1 - 5
        } else {
            after_round_1 + 5
        });
        expected.sort_unstable();
        if reverse {
            expected.reverse();
        }
        assert_eq!(seen, expected, "reverse = {reverse}");
    }
}

#[tokio::test]
async fn no_page_holds_more_than_the_page_bound_whatever_the_limit() {
    use tito::limits::MAX_PAGE_LEN;

    let db = support::engine().await;
    let model = db.clone().model::<Account>();
    let rows = MAX_PAGE_LEN + 5;
    let accounts = (0..rows)
        .map(|n| account(&format!("a{n:05}"), &format!("{n}@x.io"), 7))
        .collect();
    insert(&db, accounts).await.unwrap();
    let query = || {
        let mut query = model.query_by_index("by_balance");
        query.value(7);
        query
    };
    for limit in [None, Some(usize::MAX), Some(MAX_PAGE_LEN + 1)] {
        let page = query().limit(limit).execute().await.unwrap();
        assert_eq!(page.items.len(), MAX_PAGE_LEN, "limit {limit:?}");
        let rest = query()
            .limit(limit)
            .cursor(page.cursor.clone())
            .execute()
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 5);
        assert_eq!(rest.cursor, None);
    }
    // Every record is still one call away, a page at a time.
    let all = query().all().await.unwrap();
    assert_eq!(all.len(), rows);
    assert_eq!(all[rows - 1].id, format!("a{:05}", rows - 1));
    assert_eq!(query().count().await.unwrap(), rows);
    let reverse = query().limit(None).execute_reverse().await.unwrap();
    assert_eq!(reverse.items.len(), MAX_PAGE_LEN);
    assert_eq!(reverse.items[0].id, format!("a{:05}", rows - 1));
}

#[tokio::test]
async fn cursors_are_sealed_per_database_unless_the_application_shares_a_secret() {
    let page_of = |db: TitoEngine<tito::AnyBackend>, cursor: Option<String>| async move {
        let model = db.clone().model::<Account>();
        model
            .query_by_index("by_email")
            .limit(1)
            .cursor(cursor)
            .execute()
            .await
    };
    let (a, b) = (support::engine().await, support::engine().await);
    for db in [&a, &b] {
        let accounts = vec![
            account("1", "alice@example.com", 1),
            account("2", "bob@example.com", 2),
        ];
        insert(db, accounts).await.unwrap();
    }
    let cursor = page_of(a.clone(), None).await.unwrap().cursor.unwrap();
    // Nothing of the row's email shows, in any spelling.
    assert!(
        cursor
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    for needle in ["alice", "YWxpY2", "616c696365"] {
        assert!(!cursor.contains(needle), "{cursor}");
    }
    assert_eq!(
        page_of(a.clone(), Some(cursor.clone()))
            .await
            .unwrap()
            .items[0]
            .id,
        "2"
    );
    let err = page_of(b.clone(), Some(cursor)).await.unwrap_err();
    assert!(matches!(err, TitoError::InvalidCursor(_)), "{err:?}");

    // Services that share a secret take each other's cursors, and a rotation keeps the old
    // secret's cursors valid.
    let (old, new) = (
        tito::CursorKeys::random_secret(),
        tito::CursorKeys::random_secret(),
    );
    let a = a.with_cursor_keys(tito::CursorKeys::new(old, &[]));
    let cursor = page_of(a.clone(), None).await.unwrap().cursor.unwrap();
    let b = b.with_cursor_keys(tito::CursorKeys::new(new, &[old]));
    assert_eq!(
        page_of(b.clone(), Some(cursor)).await.unwrap().items[0].id,
        "2"
    );
}
