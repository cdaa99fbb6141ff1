//! `#[derive(TitoModel)]` behaviour: derived models write exactly the keys of the equivalent
//! hand-written model, keep their index entries right through updates and deletes, answer
//! typed queries like string queries, and never store hydrated fields. They run on the backend
//! `TITO_TIKV_PD` names (see `support`).

mod support;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tito::AnyBackend;
use tito::types::{
    TitoEmbeddedRelationshipConfig, TitoEventConfig, TitoIndexBlockType, TitoIndexConfig,
    TitoIndexField, TitoModelTrait,
};
use tito::{KeyRange, TitoEngine, TitoError, TitoModel};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "tags")]
struct Tag {
    #[tito(id)]
    id: String,
    #[tito(index)]
    name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "authors")]
struct Author {
    #[tito(id)]
    id: String,
    #[tito(unique)]
    email: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Comment {
    author_id: String,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author: Option<Author>,
}

/// Every kind of index and relationship the derive supports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "posts", events("post", "audit"), partition_key = author_id)]
struct Post {
    #[tito(id)]
    id: String,
    #[tito(index(name = "by_category_date", position = 0))]
    category: String,
    #[tito(index(name = "by_category_date", position = 1))]
    published_at: i64,
    #[tito(index(name = "by_status", condition = Post::is_published))]
    status: String,
    #[tito(index)]
    rating: Option<u8>,
    #[tito(index)]
    score: f64,
    #[tito(index)]
    featured: bool,
    #[tito(index, relation(model = Tag, into = tags))]
    tag_ids: Vec<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[tito(
        index(name = "by_comment_author", path = "author_id", ty = String),
        relation(model = Author, path = "author_id", into = author)
    )]
    comments: Vec<Comment>,
    author_id: String,
    #[tito(index(name = "by_origin", path = "origin.country", ty = "Option<String>"))]
    meta: Option<Meta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Meta {
    origin: Origin,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Origin {
    country: Option<String>,
}

impl Post {
    fn is_published(&self) -> bool {
        self.status == "published"
    }
}

/// The same model written by hand, as in tito 0.2.0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ManualPost {
    id: String,
    category: String,
    published_at: i64,
    status: String,
    rating: Option<u8>,
    score: f64,
    featured: bool,
    tag_ids: Vec<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    comments: Vec<Comment>,
    author_id: String,
    meta: Option<Meta>,
}

fn field(name: &str, r#type: TitoIndexBlockType) -> TitoIndexField {
    TitoIndexField {
        name: name.to_string(),
        r#type,
    }
}

fn index(name: &str, condition: bool, fields: Vec<TitoIndexField>) -> TitoIndexConfig {
    TitoIndexConfig {
        condition,
        name: name.to_string(),
        fields,
        custom_generator: None,
    }
}

impl TitoModelTrait for ManualPost {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "posts".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        use TitoIndexBlockType::{Number, String};
        vec![
            index(
                "by_category_date",
                true,
                vec![field("category", String), field("published_at", Number)],
            ),
            index(
                "by_comment_author",
                true,
                vec![field("comments.author_id", String)],
            ),
            index(
                "by_status",
                self.status == "published",
                vec![field("status", String)],
            ),
            index("featured", true, vec![field("featured", String)]),
            index(
                "by_origin",
                true,
                vec![field("meta.origin.country", String)],
            ),
            index("rating", true, vec![field("rating", Number)]),
            index("score", true, vec![field("score", Number)]),
            index("tag_ids", true, vec![field("tag_ids", String)]),
        ]
    }
    fn get_embedded_relationships(&self) -> Vec<TitoEmbeddedRelationshipConfig> {
        vec![
            TitoEmbeddedRelationshipConfig {
                source_field_name: "tag_ids".into(),
                destination_field_name: "tags".into(),
                model: "tags".into(),
            },
            TitoEmbeddedRelationshipConfig {
                source_field_name: "comments.author_id".into(),
                destination_field_name: "comments.author".into(),
                model: "authors".into(),
            },
        ]
    }
}

impl From<&Post> for ManualPost {
    fn from(p: &Post) -> Self {
        ManualPost {
            id: p.id.clone(),
            category: p.category.clone(),
            published_at: p.published_at,
            status: p.status.clone(),
            rating: p.rating,
            score: p.score,
            featured: p.featured,
            tag_ids: p.tag_ids.clone(),
            tags: p.tags.clone(),
            comments: p.comments.clone(),
            author_id: p.author_id.clone(),
            meta: p.meta.clone(),
        }
    }
}

fn comment(author_id: &str) -> Comment {
    Comment {
        author_id: author_id.into(),
        text: format!("by {author_id}"),
        author: None,
    }
}

fn post(id: &str, category: &str, published_at: i64) -> Post {
    Post {
        id: id.into(),
        category: category.into(),
        published_at,
        status: "draft".into(),
        rating: None,
        score: published_at as f64 / 4.0,
        featured: published_at % 2 == 0,
        tag_ids: vec![],
        tags: vec![],
        comments: vec![],
        author_id: "ann".into(),
        meta: None,
    }
}

/// A spread of values: negatives, fractions, sparse options, fan-out and duplicates.
fn posts() -> Vec<Post> {
    let mut out = Vec::new();
    for (i, (category, at)) in [("tech", -5), ("tech", 20230101), ("art", 7), ("tech", 7)]
        .into_iter()
        .enumerate()
    {
        let mut p = post(&format!("p{i}"), category, at);
        p.rating = (i % 2 == 0).then_some(i as u8 * 3);
        p.status = if i < 2 { "published" } else { "draft" }.into();
        p.tag_ids = (0..i).map(|t| format!("t{t}")).collect();
        p.comments = vec![comment("bob"), comment(&format!("a{i}")), comment("bob")];
        p.featured = i != 1;
        p.meta = (i != 0).then(|| Meta {
            origin: Origin {
                country: (i != 1).then(|| format!("c{}", i % 3)),
            },
        });
        out.push(p);
    }
    out
}

async fn write<T: TitoModelTrait>(
    db: &TitoEngine<AnyBackend>,
    build: Vec<T>,
    update: Vec<T>,
    delete: Vec<&str>,
) {
    let model = db.clone().model::<T>();
    let delete: Vec<String> = delete.into_iter().map(String::from).collect();
    db.transaction(|tx| async move {
        for record in build {
            model.build(record, &tx).await?;
        }
        for record in update {
            model.update(record, &tx).await?;
        }
        for id in delete {
            model.delete_by_id(&id, &tx).await?;
        }
        Ok::<_, TitoError>(())
    })
    .await
    .unwrap();
}

/// Every key and value in the database.
async fn dump(db: &TitoEngine<AnyBackend>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let tx = db.snapshot().await.unwrap();
    let all = tx
        .scan(
            KeyRange {
                start: Vec::new(),
                end: None,
            },
            100_000,
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    // Metadata differs between databases (each has its own cursor key).
    all.into_iter()
        .filter(|(key, _)| !tito::keyspace::meta_range().contains(key))
        .collect()
}

fn shape(model: &impl TitoModelTrait) -> Vec<(String, bool, Vec<TitoIndexField>)> {
    let mut out: Vec<_> = model
        .get_indexes()
        .into_iter()
        .map(|i| (i.name, i.condition, i.fields))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn derived_configuration_matches_the_hand_written_one() {
    for p in posts() {
        let manual = ManualPost::from(&p);
        assert_eq!(shape(&p), shape(&manual));
        assert_eq!(
            p.get_embedded_relationships(),
            manual.get_embedded_relationships()
        );
    }
    let p = post("x", "tech", 1);
    // The derived entries come from the typed fields, not from the serialized record.
    assert!(matches!(p.typed_index_entries(), Some(Ok(_))));
    assert_eq!(p.get_unique_indexes(), Vec::<String>::new());
    assert_eq!(Author::default().get_unique_indexes(), vec!["email"]);
    assert_eq!(
        p.get_events(),
        vec![
            TitoEventConfig {
                name: "post".into()
            },
            TitoEventConfig {
                name: "audit".into()
            }
        ]
    );
    assert_eq!(p.partition_key(), "ann");
    assert_eq!(Tag::default().partition_key(), "");
    assert_eq!(Tag::default().get_events(), vec![]);
}

#[tokio::test]
async fn derived_and_hand_written_models_store_identical_keys() {
    let derived = support::engine().await;
    let manual = support::engine().await;
    let posts = posts();
    let mut changed = posts.clone();
    changed[0].status = "draft".into();
    changed[0].rating = None;
    changed[1].tag_ids = vec!["t9".into(), "t0".into()];
    changed[2].comments.push(comment("carl"));
    changed[2].published_at = -1_000_000_000_000;
    changed[3].rating = Some(255);

    write(&derived, posts.clone(), vec![], vec![]).await;
    write(
        &manual,
        posts.iter().map(ManualPost::from).collect(),
        vec![],
        vec![],
    )
    .await;
    assert_eq!(dump(&derived).await, dump(&manual).await);

    write(&derived, vec![], changed.clone(), vec!["p3"]).await;
    write(
        &manual,
        vec![],
        changed.iter().map(ManualPost::from).collect(),
        vec!["p3"],
    )
    .await;
    let keys = dump(&derived).await;
    assert_eq!(keys, dump(&manual).await);
    assert!(keys.len() > 20, "the plan wrote {} keys", keys.len());
}

/// Ids of a page, for comparisons that ignore hydration.
fn ids<T: TitoModelTrait>(page: tito::TitoPage<T>) -> Vec<String> {
    page.items.iter().map(TitoModelTrait::get_id).collect()
}

#[tokio::test]
async fn typed_queries_return_what_string_queries_return() {
    let db = support::engine().await;
    write(&db, posts(), vec![], vec![]).await;
    let posts: TitoModel<Post, AnyBackend> = db.clone().model();

    let typed = ids(Post::by_category_date(&posts)
        .value("tech")
        .execute()
        .await
        .unwrap());
    let untyped = ids(posts
        .query_by_index("by_category_date")
        .value("tech")
        .execute()
        .await
        .unwrap());
    assert_eq!(typed, vec!["p0", "p3", "p1"]);
    assert_eq!(typed, untyped);

    let typed = Post::by_category_date(&posts)
        .value("tech")
        .between(0, 20230101)
        .execute_reverse()
        .await
        .unwrap();
    let untyped = posts
        .query_by_index("by_category_date")
        .value("tech")
        .between(0, 20230101)
        .execute_reverse()
        .await
        .unwrap();
    assert_eq!(ids(typed), vec!["p1", "p3"]);
    assert_eq!(ids(untyped), vec!["p1", "p3"]);

    let exact = Post::by_category_date(&posts)
        .value("tech")
        .value(7)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(exact), vec!["p3"]);
    let prefix = Post::by_category_date(&posts)
        .starts_with("te")
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(prefix).len(), 3);

    // Option: sparse; Vec and nested paths: one entry per element.
    let rated = ids(Post::by_rating(&posts).gte(0).execute().await.unwrap());
    assert_eq!(rated, vec!["p0", "p2"]);
    let tagged = ids(Post::by_tag_ids(&posts)
        .value("t0")
        .execute()
        .await
        .unwrap());
    assert_eq!(tagged, vec!["p1", "p2", "p3"]);
    let by_bob = ids(Post::by_comment_author(&posts)
        .value("bob")
        .execute()
        .await
        .unwrap());
    assert_eq!(by_bob, vec!["p0", "p1", "p2", "p3"]);
    let by_a2 = ids(Post::by_comment_author(&posts)
        .value("a2")
        .execute()
        .await
        .unwrap());
    assert_eq!(by_a2, vec!["p2"]);
    let featured = ids(Post::by_featured(&posts)
        .value(true)
        .execute()
        .await
        .unwrap());
    let untyped = ids(posts
        .query_by_index("featured")
        .value(true)
        .execute()
        .await
        .unwrap());
    assert_eq!(featured, vec!["p0", "p2", "p3"]);
    assert_eq!(featured, untyped);
    let from_c2 = ids(Post::by_origin(&posts).value("c2").execute().await.unwrap());
    assert_eq!(from_c2, vec!["p2"]);
    let with_origin = ids(Post::by_origin(&posts).gte("").execute().await.unwrap());
    assert_eq!(with_origin, vec!["p3", "p2"]);
    let scored = ids(Post::by_score(&posts).lt(1.9).execute().await.unwrap());
    assert_eq!(scored, vec!["p0", "p2", "p3"]);

    // Pages with a cursor go through the typed builder too.
    let first = Post::by_comment_author(&posts)
        .value("bob")
        .limit(Some(3))
        .execute()
        .await
        .unwrap();
    let rest = Post::by_comment_author(&posts)
        .value("bob")
        .limit(Some(3))
        .cursor(first.cursor.clone())
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(first), vec!["p0", "p1", "p2"]);
    assert_eq!(ids(rest), vec!["p3"]);
}

/// `first`, `count` and `all` agree with paging, and `limit` takes a plain number.
#[tokio::test]
async fn first_count_and_all_agree_with_pages() {
    let db = support::engine().await;
    write(&db, posts(), vec![], vec![]).await;
    let posts: TitoModel<Post, AnyBackend> = db.clone().model();
    let tech = || Post::by_category_date(&posts).value("tech");

    let page = tech().limit(2).execute().await.unwrap();
    assert_eq!(ids(page.clone()), vec!["p0", "p3"]);
    assert_eq!(
        tech().first().await.unwrap().map(|p| p.id),
        Some("p0".to_string())
    );
    assert_eq!(tech().count().await.unwrap(), 3);
    let all: Vec<String> = (tech().limit(1).all().await.unwrap())
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(all, vec!["p0", "p3", "p1"], "all pages, whatever the limit");
    // After a cursor: what the next pages hold.
    let rest = tech().cursor(page.cursor.clone());
    assert_eq!(rest.count().await.unwrap(), 1);
    // After a reverse page's cursor: the rows before it.
    let reverse = tech().limit(1).execute_reverse().await.unwrap();
    let before = tech().cursor(reverse.cursor.clone());
    assert_eq!(before.count().await.unwrap(), 2);
    assert_eq!(
        rest.first().await.unwrap().map(|p| p.id),
        Some("p1".to_string())
    );
    // A range, and nothing matching.
    assert_eq!(tech().between(0, 20230101).count().await.unwrap(), 2);
    let none = Post::by_category_date(&posts).value("cooking");
    assert_eq!(none.count().await.unwrap(), 0);
    assert!(none.first().await.unwrap().is_none());
    assert!(none.all().await.unwrap().is_empty());
    // Untyped, inside a transaction that sees its own writes.
    let tx = db.begin().await.unwrap();
    let extra = Post {
        id: "p9".into(),
        category: "tech".into(),
        published_at: -9,
        ..Post::default()
    };
    posts.build(extra, &tx).await.unwrap();
    let mut query = posts.query_by_index("by_category_date");
    query.value("tech").limit(Some(1));
    assert_eq!(query.count_tx(&tx).await.unwrap(), 4);
    assert_eq!(
        query.first_tx(&tx).await.unwrap().map(|p| p.id),
        Some("p9".to_string())
    );
    assert_eq!(query.all_tx(&tx).await.unwrap().len(), 4);
    tx.rollback().await.unwrap();
    assert_eq!(query.count().await.unwrap(), 3);
}

/// The generated reads by id and by unique index give the record or `None`.
#[tokio::test]
async fn generated_gets_read_by_id_and_by_unique_value() {
    let db = support::engine().await;
    let authors: TitoModel<Author, AnyBackend> = db.clone().model();
    let ada = Author {
        id: "a1".into(),
        email: "ada@example.com".into(),
    };
    let tx = db.begin().await.unwrap();
    authors.build(ada.clone(), &tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        Author::get(&authors, "a1").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(Author::get(&authors, "a2").await.unwrap(), None);
    assert_eq!(
        Author::get_by_email(&authors, "ada@example.com")
            .await
            .unwrap(),
        Some(ada)
    );
    assert_eq!(
        Author::get_by_email(&authors, "bob@example.com")
            .await
            .unwrap(),
        None
    );
}

/// `stream` yields every matching record, page after page, in index order.
#[tokio::test]
async fn streams_page_lazily_through_every_match() {
    use futures::TryStreamExt;
    let db = support::engine().await;
    let posts: TitoModel<Post, AnyBackend> = db.clone().model();
    let many: Vec<Post> = (0..250)
        .map(|i| Post {
            id: format!("s{i:03}"),
            category: "bulk".into(),
            published_at: i,
            ..Post::default()
        })
        .collect();
    let tx = db.begin().await.unwrap();
    posts.build_many(many, &tx).await.unwrap();
    tx.commit().await.unwrap();
    let bulk = || Post::by_category_date(&posts).value("bulk");
    let streamed: Vec<String> = (bulk().limit(7).stream().try_collect::<Vec<_>>().await)
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    let expected: Vec<String> = (0..250).map(|i| format!("s{i:03}")).collect();
    assert_eq!(streamed, expected, "three pages, the limit ignored");
    let after = bulk()
        .gte(200)
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(after.len(), 50);
    let tx = db.begin().await.unwrap();
    posts.delete_by_id("s000", &tx).await.unwrap();
    let seen = bulk().stream_tx(&tx).try_collect::<Vec<_>>().await.unwrap();
    assert_eq!(seen.len(), 249, "the transaction's own delete");
    tx.rollback().await.unwrap();
}

/// `upsert` creates or replaces, moving index entries; `update_with` changes a stored record
/// through a closure; both keep every index in step with its record.
#[tokio::test]
async fn upsert_and_closure_updates_move_index_entries() {
    let db = support::engine().await;
    let posts: TitoModel<Post, AnyBackend> = db.clone().model();
    let tech = || Post::by_category_date(&posts).value("tech");
    let post = Post {
        id: "u1".into(),
        category: "tech".into(),
        published_at: 3,
        ..Post::default()
    };
    let tx = db.begin().await.unwrap();
    posts.upsert(post.clone(), &tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(Post::get(&posts, "u1").await.unwrap(), Some(post.clone()));
    assert_eq!(tech().count().await.unwrap(), 1);

    let moved = Post {
        category: "art".into(),
        ..post.clone()
    };
    let tx = db.begin().await.unwrap();
    posts.upsert(moved, &tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(tech().count().await.unwrap(), 0);
    let art = Post::by_category_date(&posts).value("art");
    assert_eq!(art.count().await.unwrap(), 1);

    let changed = posts
        .update_with("u1", |p| p.category = "tech".into())
        .await
        .unwrap();
    assert_eq!(changed.category, "tech");
    assert_eq!(
        tech().first().await.unwrap().map(|p| p.id),
        Some("u1".into())
    );
    assert_eq!(art.count().await.unwrap(), 0);

    let missing = posts.update_with("nope", |p| p.score = 1.0).await;
    assert!(
        matches!(missing, Err(TitoError::NotFound(_))),
        "{missing:?}"
    );
    let renamed = posts.update_with("u1", |p| p.id = "u2".into()).await;
    assert!(
        matches!(renamed, Err(TitoError::InvalidQuery(_))),
        "{renamed:?}"
    );
    assert_eq!(Post::get(&posts, "u2").await.unwrap(), None);
    assert!(posts.verify().await.unwrap().is_consistent());

    // A unique value held by another record is refused on upsert as on build.
    let authors: TitoModel<Author, AnyBackend> = db.clone().model();
    let tx = db.begin().await.unwrap();
    let ada = |id: &str| Author {
        id: id.into(),
        email: "ada@example.com".into(),
    };
    authors.upsert(ada("a1"), &tx).await.unwrap();
    let taken = authors.upsert(ada("a2"), &tx).await;
    assert!(
        matches!(&taken, Err(TitoError::UniqueViolation { existing_id, .. }) if existing_id == "a1"),
        "{taken:?}"
    );
}

#[tokio::test]
async fn conditional_index_follows_its_condition_through_updates() {
    let db = support::engine().await;
    let posts: TitoModel<Post, AnyBackend> = db.clone().model();
    let draft = post("p", "tech", 1);
    write(&db, vec![draft.clone()], vec![], vec![]).await;
    let published = || async {
        ids(Post::by_status(&posts)
            .value("published")
            .execute()
            .await
            .unwrap())
    };
    assert!(published().await.is_empty());

    let mut live = draft.clone();
    live.status = "published".into();
    write(&db, vec![], vec![live], vec![]).await;
    assert_eq!(published().await, vec!["p"]);

    write(&db, vec![], vec![draft], vec![]).await;
    assert!(published().await.is_empty());
    assert!(
        ids(Post::by_status(&posts)
            .value("draft")
            .execute()
            .await
            .unwrap())
        .is_empty()
    );
}

#[tokio::test]
async fn unique_violation_is_a_typed_error_naming_the_index() {
    let db = support::engine().await;
    let author = |id: &str| Author {
        id: id.into(),
        email: "ann@x.io".into(),
    };
    write(&db, vec![author("a")], vec![], vec![]).await;
    let authors = db.clone().model::<Author>();
    let result = db
        .transaction(|tx| async move { authors.build(author("b"), &tx).await })
        .await;
    match result {
        Err(TitoError::UniqueViolation {
            index, existing_id, ..
        }) => {
            assert_eq!(index, "email");
            assert_eq!(existing_id, "a");
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
}

async fn seed_relations(db: &TitoEngine<AnyBackend>) -> Post {
    write(
        db,
        vec![
            Tag {
                id: "t0".into(),
                name: "rust".into(),
            },
            Tag {
                id: "t1".into(),
                name: "db".into(),
            },
        ],
        vec![],
        vec![],
    )
    .await;
    write(
        db,
        vec![Author {
            id: "bob".into(),
            email: "bob@x.io".into(),
        }],
        vec![],
        vec![],
    )
    .await;
    let mut p = post("p", "tech", 1);
    p.tag_ids = vec!["t1".into(), "t0".into(), "gone".into()];
    p.comments = vec![comment("bob"), comment("nobody")];
    p
}

#[tokio::test]
async fn relationships_hydrate_through_the_derived_configuration() {
    let db = support::engine().await;
    let p = seed_relations(&db).await;
    write(&db, vec![p], vec![], vec![]).await;
    let posts: TitoModel<Post, AnyBackend> = db.clone().model();

    let found = posts
        .find_by_id("p", vec![Post::TAGS.into(), Post::COMMENTS_AUTHOR.into()])
        .await
        .unwrap();
    let tags: Vec<&str> = found.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tags, vec!["db", "rust"]);
    let authors: Vec<Option<&str>> = found
        .comments
        .iter()
        .map(|c| c.author.as_ref().map(|a| a.email.as_str()))
        .collect();
    assert_eq!(authors, vec![Some("bob@x.io"), None]);

    let page = Post::by_tag_ids(&posts)
        .value("t0")
        .relationship(Post::TAGS)
        .execute()
        .await
        .unwrap();
    assert_eq!(
        page.items,
        vec![found.clone()]
            .into_iter()
            .map(|mut p| {
                p.comments.iter_mut().for_each(|c| c.author = None);
                p
            })
            .collect::<Vec<_>>()
    );
    let plain = posts.find_by_id("p", vec![]).await.unwrap();
    assert!(plain.tags.is_empty());
}

#[tokio::test]
async fn hydrated_fields_are_never_stored() {
    let db = support::engine().await;
    let mut p = seed_relations(&db).await;
    p.tags = vec![Tag {
        id: "t0".into(),
        name: "copy".into(),
    }];
    p.comments[0].author = Some(Author {
        id: "bob".into(),
        email: "copy@x.io".into(),
    });
    write(&db, vec![p.clone()], vec![], vec![]).await;
    write(&db, vec![], vec![p], vec![]).await;

    let tx = db.snapshot().await.unwrap();
    let bytes = tx
        .get(&tito::keyspace::record_key("posts", "p"))
        .await
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    let stored: Value = serde_json::from_slice(&bytes[1..]).unwrap();
    assert_eq!(stored["tags"], serde_json::json!([]));
    assert_eq!(stored["comments"][0].get("author"), None);
    assert_eq!(stored["comments"][0]["author_id"], "bob");
    assert!(!String::from_utf8_lossy(&bytes).contains("copy"));
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[serde(rename_all = "camelCase")]
#[tito(table = "renamed")]
struct Renamed {
    #[tito(id)]
    record_id: u64,
    #[tito(index(name = "by-owner-day", position = 1))]
    day_of_year: u16,
    #[serde(rename = "owner")]
    #[tito(index(name = "by-owner-day", position = 0), relation(model = Author, into = owner_record))]
    owner_id: Option<String>,
    #[serde(default)]
    owner_record: Option<Author>,
}

#[tokio::test]
async fn serde_renames_name_paths_and_odd_index_names_get_query_methods() {
    let r = Renamed {
        record_id: 7,
        day_of_year: 32,
        owner_id: Some("bob".into()),
        owner_record: None,
    };
    assert_eq!(r.get_id(), "7");
    assert_eq!(
        shape(&r),
        vec![(
            "by-owner-day".to_string(),
            true,
            vec![
                field("owner", TitoIndexBlockType::String),
                field("dayOfYear", TitoIndexBlockType::Number)
            ]
        )]
    );
    assert_eq!(
        r.get_embedded_relationships(),
        vec![TitoEmbeddedRelationshipConfig {
            source_field_name: "owner".into(),
            destination_field_name: "ownerRecord".into(),
            model: "authors".into(),
        }]
    );

    let db = support::engine().await;
    let _ = seed_relations(&db).await;
    write(&db, vec![r], vec![], vec![]).await;
    let model: TitoModel<Renamed, AnyBackend> = db.clone().model();
    let page = Renamed::by_owner_day(&model)
        .value("bob")
        .gt(31)
        .relationship(Renamed::OWNER_RECORD)
        .execute()
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.items[0]
            .owner_record
            .as_ref()
            .map(|a| a.email.as_str()),
        Some("bob@x.io")
    );
}

#[tokio::test]
async fn a_reference_repeated_in_a_list_is_hydrated_once_on_either_route() {
    let db = support::engine().await;
    let mut p = seed_relations(&db).await;
    p.tag_ids = vec!["t1".into(), "t0".into(), "t1".into(), "t1".into()];
    write(&db, vec![p], vec![], vec![]).await;
    let posts: TitoModel<Post, AnyBackend> = db.clone().model();
    let names = |post: &Post| post.tags.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    // Top-level fields only: the stored JSON is spliced.
    let spliced = posts
        .find_by_id("p", vec![Post::TAGS.into()])
        .await
        .unwrap();
    assert_eq!(names(&spliced), vec!["db", "rust"]);
    // A nested path among the relationships: every record goes through a JSON value.
    let valued = posts
        .find_by_id("p", vec![Post::TAGS.into(), Post::COMMENTS_AUTHOR.into()])
        .await
        .unwrap();
    assert_eq!(names(&valued), vec!["db", "rust"]);
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "blobs")]
struct Blob {
    #[tito(id)]
    id: String,
    data: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "holders")]
struct Holder {
    #[tito(id)]
    id: String,
    #[tito(index)]
    group: String,
    #[tito(relation(model = Blob, into = blob))]
    blob_id: String,
    #[serde(default)]
    blob: Option<Blob>,
}

#[tokio::test]
async fn a_page_hydrates_at_most_its_byte_bound() {
    use tito::limits::MAX_HYDRATED_LEN;

    let db = support::engine().await;
    // One record of 5 MiB, referenced by enough holders that a page of them all would copy it
    // past the bound.
    let big = Blob {
        id: "big".into(),
        data: "x".repeat(5 << 20),
    };
    let holders = MAX_HYDRATED_LEN / big.data.len() + 1;
    write(&db, vec![big.clone()], vec![], vec![]).await;
    let holder = |n: usize| Holder {
        id: format!("h{n:02}"),
        group: "g".into(),
        blob_id: "big".into(),
        blob: None,
    };
    write(&db, (0..holders).map(holder).collect(), vec![], vec![]).await;
    let model: TitoModel<Holder, AnyBackend> = db.clone().model();

    let err = Holder::by_group(&model)
        .value("g")
        .relationship(Holder::BLOB)
        .execute()
        .await
        .unwrap_err();
    assert!(
        matches!(err, TitoError::TooLarge { what: "hydrated page", limit, .. } if limit == MAX_HYDRATED_LEN),
        "{err:?}"
    );
    // Smaller pages hydrate in full, and the records read without it are whole.
    let page = Holder::by_group(&model)
        .value("g")
        .relationship(Holder::BLOB)
        .limit(2)
        .execute()
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.items.iter().all(|h| h.blob.as_ref() == Some(&big)));
    assert_eq!(
        Holder::by_group(&model).value("g").count().await.unwrap(),
        holders
    );
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "notes")]
struct Note {
    #[tito(id)]
    id: String,
    #[tito(index)]
    title: String,
    #[serde(default, rename = "rev")]
    #[tito(version)]
    version: u64,
}

/// The same table as a model without a version field, as a program written before it was added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "notes")]
struct UnversionedNote {
    #[tito(id)]
    id: String,
    #[tito(index)]
    title: String,
}

#[tokio::test]
async fn a_version_field_refuses_writes_of_a_stale_read() {
    let db = support::engine().await;
    let notes: TitoModel<Note, AnyBackend> = db.clone().model();
    let note = |id: &str, title: &str, version| Note {
        id: id.into(),
        title: title.into(),
        version,
    };
    let run = |write: &'static str, record: Note| {
        let notes = notes.clone();
        db.transaction(move |tx| {
            let (notes, record) = (notes.clone(), record.clone());
            async move {
                match write {
                    "build" => notes.build(record, &tx).await,
                    "update" => notes.update(record, &tx).await,
                    _ => notes.upsert(record, &tx).await,
                }
            }
        })
    };
    let conflict = |err: TitoError, want_expected: u64, want_stored: Option<u64>| match err {
        TitoError::VersionConflict {
            table,
            expected,
            stored,
            ..
        } => {
            assert_eq!(table, "notes");
            assert_eq!((expected, stored), (want_expected, want_stored));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    };

    // A build stores version 1, whatever the record carried.
    let built = run("build", note("n", "draft", 9)).await.unwrap();
    assert_eq!(built.version, 1);
    let first = Note::get(&notes, "n").await.unwrap().unwrap();
    let second = first.clone();
    assert_eq!(first, note("n", "draft", 1));

    // Two writers read version 1: the first write wins, the second is refused.
    let mut edited = first;
    edited.title = "first".into();
    assert_eq!(run("update", edited).await.unwrap().version, 2);
    let mut stale = second;
    stale.title = "second".into();
    conflict(run("update", stale.clone()).await.unwrap_err(), 1, Some(2));
    conflict(run("upsert", stale).await.unwrap_err(), 1, Some(2));
    let stored = Note::get(&notes, "n").await.unwrap().unwrap();
    assert_eq!(stored, note("n", "first", 2));
    // Index entries stayed with the stored record.
    let by_title = Note::by_title(&notes).value("first").all().await.unwrap();
    assert_eq!(by_title, vec![stored]);
    assert!(notes.verify().await.unwrap().is_consistent());

    // A closure update reads and writes in one transaction: always current.
    let changed = notes
        .update_with("n", |n| n.title = "third".into())
        .await
        .unwrap();
    assert_eq!(changed, note("n", "third", 3));

    // Upsert creates only from version 0, and never brings back a deleted record.
    conflict(run("upsert", note("m", "x", 4)).await.unwrap_err(), 4, None);
    let created = run("upsert", note("m", "x", 0)).await.unwrap();
    assert_eq!(created.version, 1);
    db.transaction(|tx| {
        let notes = notes.clone();
        async move { notes.delete_by_id("n", &tx).await }
    })
    .await
    .unwrap();
    conflict(
        run("upsert", note("n", "back", 3)).await.unwrap_err(),
        3,
        None,
    );
    assert!(matches!(
        run("update", note("n", "back", 3)).await,
        Err(TitoError::NotFound(_))
    ));

    // A record written without the field is at version 0.
    let old: TitoModel<UnversionedNote, AnyBackend> = db.clone().model();
    db.transaction(|tx| {
        let old = old.clone();
        async move {
            old.build(
                UnversionedNote {
                    id: "o".into(),
                    title: "old".into(),
                },
                &tx,
            )
            .await
        }
    })
    .await
    .unwrap();
    let read = Note::get(&notes, "o").await.unwrap().unwrap();
    assert_eq!(read.version, 0);
    assert_eq!(run("update", read).await.unwrap().version, 1);
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "writers")]
struct Writer {
    #[tito(id)]
    id: String,
    #[tito(index)]
    guild: String,
    #[serde(default)]
    #[tito(has_many(model = Article, index = "by_writer_day"))]
    articles: Vec<Article>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "articles")]
struct Article {
    #[tito(id)]
    id: String,
    #[tito(index(name = "by_writer_day", position = 0))]
    writer_id: String,
    #[tito(index(name = "by_writer_day", position = 1))]
    day: u32,
}

/// The same model by hand, naming an index the article model lacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct BrokenWriter {
    id: String,
    #[serde(default)]
    articles: Vec<Article>,
}

impl TitoModelTrait for BrokenWriter {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "writers".into()
    }
    fn get_has_many(&self) -> Vec<tito::types::TitoHasManyConfig> {
        vec![tito::types::TitoHasManyConfig::through::<Article>(
            "by_author",
            "articles",
        )]
    }
}

#[tokio::test]
async fn has_many_hydrates_the_records_pointing_here_in_one_scan_per_page() {
    let backend = tito::backend::Counting::new(support::backend().await);
    let db = TitoEngine::new(backend).await.unwrap();
    let writer = |id: &str| Writer {
        id: id.into(),
        guild: "g".into(),
        articles: Vec::new(),
    };
    let article = |id: &str, writer_id: &str, day| Article {
        id: id.into(),
        writer_id: writer_id.into(),
        day,
    };
    let articles = vec![
        article("a3", "w1", 3),
        article("a1", "w1", 1),
        article("b1", "w2", 5),
        article("a2", "w1", 2),
        article("x", "nobody", 1),
    ];
    // What a writer is saved with in `articles` is not stored.
    let mut carrying = writer("w3");
    carrying.articles = vec![article("ghost", "w3", 9)];
    let writers_model = db.clone().model::<Writer>();
    let articles_model = db.clone().model::<Article>();
    db.transaction(|tx| {
        let (writers_model, articles_model, articles, carrying) = (
            writers_model.clone(),
            articles_model.clone(),
            articles.clone(),
            carrying.clone(),
        );
        async move {
            writers_model
                .build_many(vec![writer("w1"), writer("w2"), carrying], &tx)
                .await?;
            articles_model.build_many(articles, &tx).await
        }
    })
    .await
    .unwrap();

    let days = |w: &Writer| w.articles.iter().map(|a| a.day).collect::<Vec<_>>();
    db.backend().take();
    let page = Writer::by_guild(&writers_model)
        .value("g")
        .relationship(Writer::ARTICLES)
        .execute()
        .await
        .unwrap();
    let calls = db.backend().take();
    let by_writer: Vec<(&str, Vec<u32>)> = (page.items.iter())
        .map(|w| (w.id.as_str(), days(w)))
        .collect();
    assert_eq!(
        by_writer,
        vec![("w1", vec![1, 2, 3]), ("w2", vec![5]), ("w3", vec![])]
    );
    // The page's index scan and the articles' entries for every writer at once; a batched
    // read of the writers and one of their articles.
    assert_eq!(
        (calls.scan, calls.batch_get, calls.get),
        (2, 2, 0),
        "{calls:?}"
    );

    let one = writers_model
        .find_by_id("w1", vec![Writer::ARTICLES.into()])
        .await
        .unwrap();
    assert_eq!(days(&one), vec![1, 2, 3]);
    assert!(
        writers_model
            .find_by_id("w1", vec![])
            .await
            .unwrap()
            .articles
            .is_empty()
    );

    let broken = db.clone().model::<BrokenWriter>();
    match broken.find_by_id("w1", vec!["articles".into()]).await {
        Err(TitoError::InvalidQuery(message)) => {
            assert!(message.contains("has no index `by_author`"), "{message}")
        }
        other => panic!("expected an invalid query, got {other:?}"),
    }
}

/// A first version of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "members")]
struct MemberV1 {
    #[tito(id)]
    id: String,
    #[tito(unique)]
    mail: String,
    #[tito(index)]
    display_name: String,
}

/// The same table after renaming the Rust fields, keeping their serialized names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[serde(rename_all = "camelCase")]
#[tito(table = "members")]
struct MemberV2 {
    #[tito(id)]
    id: String,
    #[serde(rename = "mail")]
    #[tito(unique)]
    email_address: String,
    #[serde(rename = "display_name")]
    #[tito(index)]
    shown_as: String,
    #[serde(default)]
    #[tito(index)]
    home_town: String,
}

#[tokio::test]
async fn index_names_follow_serialized_names_so_a_rust_rename_keeps_them() {
    let names = |indexes: Vec<tito::types::TitoIndexConfig>| {
        let mut names: Vec<String> = indexes.into_iter().map(|i| i.name).collect();
        names.sort();
        names
    };
    assert_eq!(
        names(MemberV2::default().get_indexes()),
        vec!["display_name", "homeTown", "mail"]
    );
    assert_eq!(MemberV2::default().get_unique_indexes(), vec!["mail"]);

    let db = support::engine().await;
    let v1 = MemberV1 {
        id: "m".into(),
        mail: "m@x.io".into(),
        display_name: "Em".into(),
    };
    write(&db, vec![v1], vec![], vec![]).await;
    let members: TitoModel<MemberV2, AnyBackend> = db.clone().model();
    // The entries the first version wrote answer the renamed fields' generated methods, whose
    // names are the serialized names in snake case.
    let found = MemberV2::get_by_mail(&members, "m@x.io")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.email_address.as_str(), found.shown_as.as_str()),
        ("m@x.io", "Em")
    );
    let by_name = MemberV2::by_display_name(&members)
        .value("Em")
        .all()
        .await
        .unwrap();
    assert_eq!(by_name.len(), 1);
    // The index of the new field lacks the first version's rows until a reindex builds them.
    let home_town = MemberV2::by_home_town(&members).value("");
    assert!(matches!(
        home_town.count().await,
        Err(TitoError::IndexNotReady { .. })
    ));
    members.reindex(100, |_| {}).await.unwrap();
    assert_eq!(home_town.count().await.unwrap(), 1);
}
