//! Model versions: a model that changes a field's type declares `#[tito(version = N, from =
//! Older)]`, reads every record older versions wrote through the `From` chain (by id, in
//! queries and when hydrated by another model), stores what it writes with its own version,
//! and `migrate` rewrites the rest. They run on the backend `TITO_TIKV_PD` names (see
//! `support`).

mod support;

use serde::{Deserialize, Serialize};
use tito::{AnyBackend, TitoEngine, TitoError, TitoModel};

/// The first shape: views as text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "posts")]
struct PostV1 {
    #[tito(id)]
    id: String,
    #[tito(index)]
    author: String,
    title: String,
    views: String,
}

/// Views become a number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "posts", version = 2, from = PostV1)]
struct PostV2 {
    #[tito(id)]
    id: String,
    #[tito(index)]
    author: String,
    title: String,
    views: u64,
}

impl From<PostV1> for PostV2 {
    fn from(old: PostV1) -> Self {
        PostV2 {
            id: old.id,
            author: old.author,
            title: old.title,
            views: old.views.trim().parse().unwrap_or(0),
        }
    }
}

/// The title becomes a headline, and views get an index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "posts", version = 3, from = PostV2)]
struct Post {
    #[tito(id)]
    id: String,
    #[tito(index)]
    author: String,
    headline: String,
    #[tito(index)]
    views: u64,
}

impl From<PostV2> for Post {
    fn from(old: PostV2) -> Self {
        Post {
            id: old.id,
            author: old.author,
            headline: old.title.to_uppercase(),
            views: old.views,
        }
    }
}

/// Version 3 with no conversion: reads its own records only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "posts", version = 3)]
struct PostWithoutHistory {
    #[tito(id)]
    id: String,
    #[tito(index)]
    author: String,
    headline: String,
    views: u64,
}

/// Hydrates posts of any version through their `by_author`-style index and by reference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "authors")]
struct Author {
    #[tito(id)]
    id: String,
    #[tito(index)]
    team: String,
    favourite: String,
    #[serde(default)]
    #[tito(relation(model = Post, into = favourite_post))]
    favourite_ids: Vec<String>,
    #[serde(default)]
    favourite_post: Vec<Post>,
    #[serde(default)]
    #[tito(has_many(model = Post, index = "author"))]
    posts: Vec<Post>,
}

/// Writes `v1`, `v2` and `v3` posts, one transaction per model version.
async fn write_history(db: &TitoEngine<AnyBackend>) {
    let v1 = db.clone().model::<PostV1>();
    let v2 = db.clone().model::<PostV2>();
    let v3 = db.clone().model::<Post>();
    db.transaction(|tx| {
        let v1 = v1.clone();
        async move {
            for (id, views) in [("a", "7"), ("b", " 12 "), ("c", "many")] {
                let post = PostV1 {
                    id: id.into(),
                    author: "ada".into(),
                    title: format!("post {id}"),
                    views: views.into(),
                };
                v1.build(post, &tx).await?;
            }
            Ok::<_, TitoError>(())
        }
    })
    .await
    .unwrap();
    db.transaction(|tx| {
        let v2 = v2.clone();
        async move {
            for (id, views) in [("d", 30), ("e", 2)] {
                let post = PostV2 {
                    id: id.into(),
                    author: if id == "d" { "ada" } else { "bob" }.into(),
                    title: format!("post {id}"),
                    views,
                };
                v2.build(post, &tx).await?;
            }
            Ok::<_, TitoError>(())
        }
    })
    .await
    .unwrap();
    db.transaction(|tx| {
        let v3 = v3.clone();
        async move {
            let post = Post {
                id: "f".into(),
                author: "bob".into(),
                headline: "Current".into(),
                views: 5,
            };
            v3.build(post, &tx).await
        }
    })
    .await
    .unwrap();
}

/// `(id, headline, views)` of posts, for comparisons.
fn summary(posts: &[Post]) -> Vec<(String, String, u64)> {
    (posts.iter())
        .map(|p| (p.id.clone(), p.headline.clone(), p.views))
        .collect()
}

fn expected(ids: &[&str]) -> Vec<(String, String, u64)> {
    let all = [
        ("a", "POST A", 7),
        ("b", "POST B", 12),
        ("c", "POST C", 0),
        ("d", "POST D", 30),
        ("e", "POST E", 2),
        ("f", "Current", 5),
    ];
    (all.iter())
        .filter(|(id, _, _)| ids.contains(id))
        .map(|(id, headline, views)| (id.to_string(), headline.to_string(), *views))
        .collect()
}

fn is_decode_error(result: Result<Option<impl std::fmt::Debug>, TitoError>, mentions: &str) {
    match result {
        Err(TitoError::Decode { reason, .. }) => {
            assert!(reason.contains(mentions), "{reason}")
        }
        other => panic!("expected a decode error mentioning `{mentions}`, got {other:?}"),
    }
}

#[tokio::test]
async fn records_of_every_older_version_are_read_through_the_chain() {
    let db = support::engine().await;
    write_history(&db).await;
    let posts = db.clone().model::<Post>();

    let mut by_id = Vec::new();
    for id in ["a", "b", "c", "d", "e", "f"] {
        by_id.push(Post::get(&posts, id).await.unwrap().unwrap());
    }
    assert_eq!(summary(&by_id), expected(&["a", "b", "c", "d", "e", "f"]));

    // The `author` index kept its definition across versions, so it answers at once.
    let ada = Post::by_author(&posts).value("ada").all().await.unwrap();
    assert_eq!(summary(&ada), expected(&["a", "b", "c", "d"]));

    // An older model refuses records a newer one wrote, instead of misreading them.
    let v2 = db.clone().model::<PostV2>();
    assert_eq!(PostV2::get(&v2, "d").await.unwrap().unwrap().views, 30);
    is_decode_error(PostV2::get(&v2, "f").await, "version 3");
    let v1 = db.clone().model::<PostV1>();
    is_decode_error(PostV1::get(&v1, "d").await, "version 2");
    // A version with no conversion refuses what older versions wrote.
    let bare = db.clone().model::<PostWithoutHistory>();
    is_decode_error(PostWithoutHistory::get(&bare, "a").await, "no conversion");
    assert_eq!(
        PostWithoutHistory::get(&bare, "f")
            .await
            .unwrap()
            .unwrap()
            .headline,
        "Current"
    );
}

#[tokio::test]
async fn a_write_stores_the_current_version() {
    let db = support::engine().await;
    write_history(&db).await;
    let posts = db.clone().model::<Post>();
    let updated = posts
        .update_with("a", |post| post.views += 1)
        .await
        .unwrap();
    assert_eq!((updated.headline.as_str(), updated.views), ("POST A", 8));
    let v1 = db.clone().model::<PostV1>();
    is_decode_error(PostV1::get(&v1, "a").await, "version 3");
    assert_eq!(PostV1::get(&v1, "b").await.unwrap().unwrap().views, " 12 ");
    assert_eq!(
        summary(&[Post::get(&posts, "a").await.unwrap().unwrap()]),
        vec![("a".to_string(), "POST A".to_string(), 8)]
    );
    // The update wrote the entry of the index new in version 3; the four records no model of
    // version 3 wrote yet still lack theirs.
    let report = posts.verify().await.unwrap();
    assert_eq!((report.missing, report.orphans), (4, 0), "{report:?}");
}

#[tokio::test]
async fn migrate_rewrites_older_records_and_builds_the_new_index() {
    let db = support::engine().await;
    write_history(&db).await;
    let posts = db.clone().model::<Post>();

    // `views` is indexed from version 3 on; records written before have no entries yet.
    let err = Post::by_views(&posts).gte(0).all().await.unwrap_err();
    assert!(matches!(err, TitoError::IndexNotReady { .. }), "{err:?}");

    // Without the model, the registry cannot recompute what older versions wrote: those records
    // are left unchecked, the rest verified.
    let untyped = db.verify_table("posts").await.unwrap();
    assert_eq!((untyped.records, untyped.unchecked), (6, 5), "{untyped:?}");
    assert!(untyped.is_consistent(), "{untyped:?}");
    // Nor rebuild their entries: the new index stays unreadable until `migrate` runs.
    let (_, rebuilt) = db.reindex_table("posts", 10, |_| {}).await.unwrap();
    assert_eq!((rebuilt.records, rebuilt.skipped), (6, 5), "{rebuilt:?}");
    let err = Post::by_views(&posts).gte(0).all().await.unwrap_err();
    assert!(matches!(err, TitoError::IndexNotReady { .. }), "{err:?}");

    let mut seen = Vec::new();
    let done = posts.migrate(2, |p| seen.push(*p)).await.unwrap();
    assert_eq!((done.records, done.migrated), (6, 5), "{done:?}");
    assert_eq!(seen.len(), 3, "one report per batch of 2: {seen:?}");
    assert_eq!(seen.last(), Some(&done));

    let by_views = Post::by_views(&posts).gte(0).all().await.unwrap();
    let order: Vec<&str> = by_views.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(order, ["c", "e", "f", "a", "b", "d"]);
    assert!(posts.verify().await.unwrap().is_consistent());

    // Every record is now stored by version 3: version 2 reads none of them.
    let v2 = db.clone().model::<PostV2>();
    for id in ["a", "d", "f"] {
        is_decode_error(PostV2::get(&v2, id).await, "version 3");
    }
    let untyped = db.verify_table("posts").await.unwrap();
    assert_eq!((untyped.unchecked, untyped.entries), (0, 12), "{untyped:?}");
    assert!(untyped.is_consistent(), "{untyped:?}");
    // Nothing is left to migrate.
    let again = posts.migrate(10, |_| {}).await.unwrap();
    assert_eq!((again.records, again.migrated), (6, 0));
}

#[tokio::test]
async fn hydrated_records_of_older_versions_arrive_converted() {
    let db = support::engine().await;
    write_history(&db).await;
    let authors = db.clone().model::<Author>();
    db.transaction(|tx| {
        let authors = authors.clone();
        async move {
            let ada = Author {
                id: "ada".into(),
                team: "t".into(),
                favourite: "b".into(),
                favourite_ids: vec!["b".into(), "f".into()],
                ..Author::default()
            };
            let bob = Author {
                id: "bob".into(),
                team: "t".into(),
                favourite_ids: vec!["c".into()],
                ..Author::default()
            };
            authors.build_many(vec![ada, bob], &tx).await
        }
    })
    .await
    .unwrap();

    // Every relationship at the top level: the stored JSON of the posts is spliced in.
    let favourites = Author::by_team(&authors)
        .value("t")
        .relationship(Author::FAVOURITE_POST)
        .all()
        .await
        .unwrap();
    let hydrated: Vec<_> = favourites
        .iter()
        .map(|a| summary(&a.favourite_post))
        .collect();
    assert_eq!(hydrated, [expected(&["b", "f"]), expected(&["c"])]);

    // A reverse relationship takes the JSON value route.
    let ada = authors
        .find_by_id(
            "ada",
            vec![Author::POSTS.into(), Author::FAVOURITE_POST.into()],
        )
        .await
        .unwrap();
    assert_eq!(summary(&ada.posts), expected(&["a", "b", "c", "d"]));
    assert_eq!(summary(&ada.favourite_post), expected(&["b", "f"]));
}

/// The first shape of a shelf: its posts as one comma-separated text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "shelves")]
struct ShelfV1 {
    #[tito(id)]
    id: String,
    post_ids: String,
}

/// Posts as a list of ids, hydrated into `posts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "shelves", version = 2, from = ShelfV1)]
struct Shelf {
    #[tito(id)]
    id: String,
    #[tito(relation(model = Post, into = posts))]
    post_ids: Vec<String>,
    #[serde(default)]
    posts: Vec<Post>,
}

impl From<ShelfV1> for Shelf {
    fn from(old: ShelfV1) -> Self {
        Shelf {
            id: old.id,
            post_ids: old.post_ids.split(',').map(str::to_string).collect(),
            posts: Vec::new(),
        }
    }
}

#[tokio::test]
async fn an_older_record_hydrates_after_its_conversion() {
    let db = support::engine().await;
    write_history(&db).await;
    let v1 = db.clone().model::<ShelfV1>();
    db.transaction(|tx| {
        let v1 = v1.clone();
        async move {
            let shelf = ShelfV1 {
                id: "s".into(),
                post_ids: "f,a".into(),
            };
            v1.build(shelf, &tx).await
        }
    })
    .await
    .unwrap();
    let shelves = db.clone().model::<Shelf>();
    let shelf = shelves
        .find_by_id("s", vec![Shelf::POSTS.into()])
        .await
        .unwrap();
    assert_eq!(shelf.post_ids, ["f", "a"]);
    assert_eq!(
        summary(&shelf.posts),
        [expected(&["f"]), expected(&["a"])].concat()
    );
}

/// A note as an older build knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "notes")]
struct NoteOld {
    #[tito(id)]
    id: String,
    #[tito(index)]
    title: String,
    priority: u32,
}

/// The newer model: a new field with its index, and an index on a field the older one has. A
/// new indexed field is an `Option`: records an older build writes lack it, and so have no entry
/// in its index, as the newer model computes too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "notes")]
struct NoteNew {
    #[tito(id)]
    id: String,
    #[tito(index)]
    title: String,
    #[tito(index)]
    priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tito(index)]
    tag: Option<String>,
}

/// A model with an index whose condition other models cannot evaluate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "notes")]
struct NoteFlagged {
    #[tito(id)]
    id: String,
    #[tito(index)]
    title: String,
    priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tito(index(name = "urgent", condition = NoteFlagged::is_urgent))]
    tag: Option<String>,
}

impl NoteFlagged {
    fn is_urgent(&self) -> bool {
        self.priority > 5
    }
}

fn note(id: &str, priority: u32, tag: &str) -> NoteNew {
    NoteNew {
        id: id.into(),
        title: format!("note {id}"),
        priority,
        tag: Some(tag.into()),
    }
}

async fn ids_by_priority(notes: &TitoModel<NoteNew, AnyBackend>, priority: u32) -> Vec<String> {
    let found = NoteNew::by_priority(notes).value(priority).all().await;
    found.unwrap().into_iter().map(|n| n.id).collect()
}

#[tokio::test]
async fn an_older_model_keeps_the_fields_and_indexes_of_a_newer_one() {
    let backend = support::backend().await;
    let restarted = backend.clone();
    // The older build starts first and caches the registry before the newer one exists.
    let old_db = TitoEngine::new(backend.clone()).await.unwrap();
    let old = old_db.clone().model::<NoteOld>();
    assert!(NoteOld::get(&old, "warm-up").await.unwrap().is_none());

    let new_db = TitoEngine::new(backend).await.unwrap();
    let new = new_db.clone().model::<NoteNew>();
    new_db
        .transaction(|tx| {
            let new = new.clone();
            async move {
                new.build_many(vec![note("a", 1, "red"), note("b", 2, "blue")], &tx)
                    .await
            }
        })
        .await
        .unwrap();

    // The older build updates a record: the tag it does not know survives, and the `priority`
    // and `tag` indexes it does not declare follow the change.
    old_db
        .transaction(|tx| {
            let old = old.clone();
            async move {
                let mut a = old.find_by_id_tx("a", vec![], &tx).await?;
                a.priority = 9;
                old.update(a, &tx).await
            }
        })
        .await
        .unwrap();
    let a = NoteNew::get(&new, "a").await.unwrap().unwrap();
    assert_eq!((a.priority, a.tag.as_deref()), (9, Some("red")));
    assert_eq!(ids_by_priority(&new, 9).await, ["a"]);
    assert!(ids_by_priority(&new, 1).await.is_empty());
    let red = NoteNew::by_tag(&new).value("red").all().await.unwrap();
    assert_eq!(red.len(), 1);

    // A record the older build creates gets the entries of the newer indexes too.
    old_db
        .transaction(|tx| {
            let old = old.clone();
            async move {
                let c = NoteOld {
                    id: "c".into(),
                    title: "note c".into(),
                    priority: 2,
                };
                old.build(c, &tx).await
            }
        })
        .await
        .unwrap();
    assert_eq!(ids_by_priority(&new, 2).await, ["b", "c"]);
    let report = new.verify().await.unwrap();
    assert!(report.is_consistent(), "{report:?}");

    // An index with a condition cannot be maintained by a model without it: the write is
    // refused and nothing changes (seen by an older build started after it was registered).
    let flagged = new_db.clone().model::<NoteFlagged>();
    let titled = NoteFlagged::by_title(&flagged).value("note a").all().await;
    assert_eq!(titled.unwrap().len(), 1);
    let old_db = TitoEngine::new(restarted).await.unwrap();
    let old = old_db.clone().model::<NoteOld>();
    let refused = old_db
        .transaction(|tx| {
            let old = old.clone();
            async move {
                let mut b = old.find_by_id_tx("b", vec![], &tx).await?;
                b.priority = 8;
                old.update(b, &tx).await
            }
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, TitoError::IndexNotMaintained { index, .. } if index == "urgent"),
        "{refused:?}"
    );
    assert_eq!(NoteNew::get(&new, "b").await.unwrap().unwrap().priority, 2);

    // Without models, the conditional index is kept as it is and the others are rebuilt.
    let report = new_db.verify_table("notes").await.unwrap();
    assert!(report.is_consistent(), "{report:?}");
    let (orphans, rebuilt) = new_db.reindex_table("notes", 2, |_| {}).await.unwrap();
    assert_eq!((orphans, rebuilt.added, rebuilt.removed), (0, 0, 0));
    assert!(new.verify().await.unwrap().is_consistent());
}
