//! Property test of index maintenance and queries: after random builds, updates and deletes on
//! a model with composite, conditional, multi-valued and unique indexes, the stored index entries
//! are exactly those the surviving records call for, and every query returns exactly what a
//! linear filter returns, in order, across pages of random size, forward and reverse. It runs on
//! the backend `TITO_TIKV_PD` names (see `support`).

mod support;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tito::backend::KeyRange;
use tito::codec::{KeyValue, Number, decode_tuple};
use tito::types::{TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoModelTrait};
use tito::{AnyBackend, TitoEngine, TitoError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Item {
    id: String,
    group: String,
    rank: i64,
    tags: Vec<String>,
    active: bool,
    code: Option<String>,
}

fn field(name: &str, r#type: TitoIndexBlockType) -> TitoIndexField {
    TitoIndexField {
        name: name.into(),
        r#type,
    }
}

impl TitoModelTrait for Item {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "item".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        let index = |name: &str, condition: bool, fields| TitoIndexConfig {
            condition,
            name: name.into(),
            fields,
            custom_generator: None,
        };
        vec![
            index(
                "by_group_rank",
                true,
                vec![
                    field("group", TitoIndexBlockType::String),
                    field("rank", TitoIndexBlockType::Number),
                ],
            ),
            index(
                "active_by_rank",
                self.active,
                vec![field("rank", TitoIndexBlockType::Number)],
            ),
            index(
                "by_tag",
                true,
                vec![field("tags", TitoIndexBlockType::String)],
            ),
            index(
                "by_code",
                true,
                vec![field("code", TitoIndexBlockType::String)],
            ),
        ]
    }
    fn get_unique_indexes(&self) -> Vec<String> {
        vec!["by_code".into()]
    }
}

/// The values an index holds for `item`, one tuple per entry (before the id).
fn expected_tuples(index: &str, item: &Item) -> Vec<Vec<KeyValue>> {
    let s = |v: &str| KeyValue::Str(v.to_string());
    let n = |v: i64| KeyValue::Number(Number::Int(v));
    let mut tuples = match index {
        "by_group_rank" => vec![vec![s(&item.group), n(item.rank)]],
        "active_by_rank" if item.active => vec![vec![n(item.rank)]],
        "active_by_rank" => vec![],
        "by_tag" => item.tags.iter().map(|t| vec![s(t)]).collect(),
        "by_code" => item.code.iter().map(|c| vec![s(c)]).collect(),
        _ => unreachable!(),
    };
    tuples.sort_by(|a, b| cmp_tuple(a, b));
    tuples.dedup();
    tuples
}

const INDEXES: [&str; 4] = ["by_group_rank", "active_by_rank", "by_tag", "by_code"];

fn cmp_value(a: &KeyValue, b: &KeyValue) -> Ordering {
    match (a, b) {
        (KeyValue::Str(a), KeyValue::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        (KeyValue::Number(a), KeyValue::Number(b)) => a.total_cmp(b),
        _ => unreachable!(),
    }
}

fn cmp_tuple(a: &[KeyValue], b: &[KeyValue]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| cmp_value(x, y))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(a.len().cmp(&b.len()))
}

#[derive(Debug, Clone)]
enum Op {
    Build(Item),
    Update(Item),
    Delete(String),
}

fn item() -> impl Strategy<Value = Item> {
    (
        0..6u8,
        prop::sample::select(vec!["a", "B", "a\0", "", "ab"]),
        -3i64..4,
        prop::collection::vec(prop::sample::select(vec!["x", "y", "Z", "x/y"]), 0..3),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["c1", "c2", "c3"])),
    )
        .prop_map(|(id, group, rank, tags, active, code)| Item {
            id: format!("i{id}"),
            group: group.into(),
            rank: rank * 1_000_000_007,
            tags: tags.into_iter().map(String::from).collect(),
            active,
            code: code.map(String::from),
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => item().prop_map(Op::Build),
        3 => item().prop_map(Op::Update),
        1 => (0..6u8).prop_map(|i| Op::Delete(format!("i{i}"))),
    ]
}

/// A query: an index, how many leading values to fix (taken from a live record), a page size and
/// a direction.
#[derive(Debug, Clone)]
struct QuerySpec {
    index: usize,
    fixed: usize,
    pick: prop::sample::Index,
    page: usize,
    reverse: bool,
    lower_bound: Option<i64>,
}

fn query_spec() -> impl Strategy<Value = QuerySpec> {
    (
        0..4usize,
        0..3usize,
        any::<prop::sample::Index>(),
        1..5usize,
        any::<bool>(),
        prop::option::of(-3i64..4),
    )
        .prop_map(|(index, fixed, pick, page, reverse, lower)| QuerySpec {
            index,
            fixed,
            pick,
            page,
            reverse,
            lower_bound: lower.map(|r| r * 1_000_000_007),
        })
}

async fn apply(db: &TitoEngine<AnyBackend>, state: &mut BTreeMap<String, Item>, op: Op) {
    let model = db.clone().model::<Item>();
    let unique_holder = |item: &Item, state: &BTreeMap<String, Item>| {
        item.code.as_ref().and_then(|code| {
            state
                .values()
                .find(|other| other.id != item.id && other.code.as_ref() == Some(code))
                .map(|other| other.id.clone())
        })
    };
    match op {
        Op::Build(item) => {
            let result = db
                .transaction(|tx| {
                    let (model, item) = (model.clone(), item.clone());
                    async move { model.build(item, &tx).await }
                })
                .await;
            if state.contains_key(&item.id) {
                assert!(matches!(result, Err(TitoError::KeyExists(_))), "{result:?}");
            } else if let Some(holder) = unique_holder(&item, state) {
                assert!(
                    matches!(&result, Err(TitoError::UniqueViolation { existing_id, .. }) if *existing_id == holder),
                    "{result:?}"
                );
            } else {
                result.unwrap();
                state.insert(item.id.clone(), item);
            }
        }
        Op::Update(item) => {
            let result = db
                .transaction(|tx| {
                    let (model, item) = (model.clone(), item.clone());
                    async move { model.update(item, &tx).await }
                })
                .await;
            if !state.contains_key(&item.id) {
                assert!(matches!(result, Err(TitoError::NotFound(_))), "{result:?}");
            } else if unique_holder(&item, state).is_some() {
                assert!(
                    matches!(result, Err(TitoError::UniqueViolation { .. })),
                    "{result:?}"
                );
            } else {
                result.unwrap();
                state.insert(item.id.clone(), item);
            }
        }
        Op::Delete(id) => {
            let result = db
                .transaction(|tx| {
                    let (model, id) = (model.clone(), id.clone());
                    async move { model.delete_by_id(&id, &tx).await }
                })
                .await;
            if state.remove(&id).is_some() {
                result.unwrap();
            } else {
                assert!(matches!(result, Err(TitoError::NotFound(_))), "{result:?}");
            }
        }
    }
}

/// The index entries actually stored: (values, id) per entry.
async fn stored_entries(db: &TitoEngine<AnyBackend>, index: &str) -> Vec<(Vec<KeyValue>, String)> {
    let unique = index == "by_code";
    let prefix = tito::keyspace::index_prefix("item", index, unique);
    let tx = db.snapshot().await.unwrap();
    let rows = tx
        .scan(KeyRange::prefix(&prefix), usize::MAX)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows.into_iter()
        .map(|(key, value)| {
            let mut values = decode_tuple(&key[prefix.len()..]).unwrap();
            let id = if unique {
                String::from_utf8(value).unwrap()
            } else {
                match values.pop() {
                    Some(KeyValue::Str(id)) => id,
                    other => panic!("entry without id: {other:?}"),
                }
            };
            (values, id)
        })
        .collect()
}

fn expected_entries(state: &BTreeMap<String, Item>, index: &str) -> Vec<(Vec<KeyValue>, String)> {
    let mut entries: Vec<(Vec<KeyValue>, String)> = state
        .values()
        .flat_map(|item| {
            expected_tuples(index, item)
                .into_iter()
                .map(|t| (t, item.id.clone()))
        })
        .collect();
    entries.sort_by(|a, b| cmp_tuple(&a.0, &b.0).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
    entries
}

fn to_query_value(v: &KeyValue) -> tito::QueryValue {
    match v {
        KeyValue::Str(s) => s.clone().into(),
        KeyValue::Number(n) => (*n).into(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn check_query(
    db: &TitoEngine<AnyBackend>,
    state: &BTreeMap<String, Item>,
    spec: &QuerySpec,
) {
    let index = INDEXES[spec.index];
    let expected_all = expected_entries(state, index);
    let width = match index {
        "by_group_rank" => 2,
        _ => 1,
    };
    let fixed = spec.fixed.min(width);
    let fixed_values: Vec<KeyValue> = if expected_all.is_empty() {
        Vec::new()
    } else {
        expected_all[spec.pick.index(expected_all.len())].0[..fixed].to_vec()
    };
    // A lower bound on the rank field, when the next field is the rank.
    let rank_next = matches!(
        (index, fixed_values.len()),
        ("by_group_rank", 1) | ("active_by_rank", 0)
    );
    let bound = spec.lower_bound.filter(|_| rank_next);
    let mut expected: Vec<String> = expected_all
        .iter()
        .filter(|(values, _)| values[..fixed_values.len()] == fixed_values[..])
        .filter(|(values, _)| {
            bound.is_none_or(|b| {
                cmp_value(
                    &values[fixed_values.len()],
                    &KeyValue::Number(Number::Int(b)),
                ) != Ordering::Less
            })
        })
        .map(|(_, id)| id.clone())
        .collect();
    if spec.reverse {
        expected.reverse();
    }

    let model = db.clone().model::<Item>();
    let mut got = Vec::new();
    let mut cursor = None;
    loop {
        let mut query = model.query_by_index(index);
        for v in &fixed_values {
            query.value(to_query_value(v));
        }
        if let Some(b) = bound {
            query.gte(b);
        }
        query.limit(Some(spec.page)).cursor(cursor.take());
        let page = if spec.reverse {
            query.execute_reverse().await.unwrap()
        } else {
            query.execute().await.unwrap()
        };
        assert!(page.items.len() <= spec.page);
        got.extend(page.items.iter().map(|i| i.id.clone()));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(
            got.len() <= expected.len() + spec.page,
            "runaway pagination"
        );
    }
    assert_eq!(
        got, expected,
        "query {spec:?} on {index} with {fixed_values:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn indexes_match_records_and_queries_match_linear_filters(
        ops in prop::collection::vec(op(), 1..30),
        queries in prop::collection::vec(query_spec(), 1..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let db = support::engine().await;
            let mut state = BTreeMap::new();
            for op in ops {
                apply(&db, &mut state, op).await;
            }
            for index in INDEXES {
                assert_eq!(stored_entries(&db, index).await, expected_entries(&state, index), "{index}");
            }
            let model = db.clone().model::<Item>();
            for (id, item) in &state {
                assert_eq!(&model.find_by_id(id, vec![]).await.unwrap(), item);
            }
            for spec in &queries {
                check_query(&db, &state, spec).await;
            }
        });
    }
}
