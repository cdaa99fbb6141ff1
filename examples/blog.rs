//! A small blog: authors, posts and tags declared with `#[derive(TitoModel)]`, with
//! relationships, composite, conditional and unique indexes, typed queries, reverse
//! chronological pages with cursors, counts and closure updates.
//!
//! Run with `cargo run --example blog` (embedded, no setup), or on TiKV with
//! `TITO_TIKV_PD=127.0.0.1:2379 cargo run --features tikv --example blog`.

use serde::{Deserialize, Serialize};
use tito::prelude::*;

#[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "author")]
struct Author {
    #[tito(id)]
    id: String,
    name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "tag")]
struct Tag {
    #[tito(id)]
    id: String,
    #[tito(unique)]
    name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "post")]
struct Post {
    #[tito(id)]
    id: String,
    title: String,
    #[tito(
        index(name = "by_author", position = 0),
        relation(model = Author, into = author)
    )]
    author_id: String,
    #[serde(default)]
    author: Option<Author>,
    #[tito(index(name = "by_tag"), relation(model = Tag, into = tags))]
    tag_ids: Vec<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    // Drafts stay out of the public timeline.
    #[tito(index(name = "by_year_created", position = 0, condition = Post::is_published))]
    year: i32,
    #[tito(
        index(name = "by_author", position = 1),
        index(name = "by_year_created", position = 1)
    )]
    created_at: i64,
    published: bool,
}

impl Post {
    fn is_published(&self) -> bool {
        self.published
    }
}

#[tokio::main]
pub async fn main() -> Result<(), TitoError> {
    // Embedded, no setup; with `TITO_TIKV_PD=host:2379` (feature `tikv`) it runs on TiKV.
    let db = AnyBackend::from_env(Embedded::temporary_builder()).await?;
    let authors = db.clone().model::<Author>();
    let tags = db.clone().model::<Tag>();
    let posts = db.clone().model::<Post>();

    db.transaction(|tx| {
        let (authors, tags) = (authors.clone(), tags.clone());
        async move {
            for (id, name) in [("ann", "Ann"), ("bob", "Bob")] {
                let author = Author {
                    id: id.into(),
                    name: name.into(),
                };
                authors.build(author, &tx).await?;
            }
            for (id, name) in [("rust", "Rust"), ("db", "Databases"), ("tikv", "TiKV")] {
                tags.build(
                    Tag {
                        id: id.into(),
                        name: name.into(),
                    },
                    &tx,
                )
                .await?;
            }
            Ok::<_, TitoError>(())
        }
    })
    .await?;

    // Twelve posts over two years; every third one is a draft.
    db.transaction(|tx| {
        let posts = posts.clone();
        async move {
            for i in 0..12i64 {
                let post = Post {
                    id: format!("post-{i:02}"),
                    title: format!("Post number {i}"),
                    author_id: if i % 2 == 0 { "ann" } else { "bob" }.into(),
                    tag_ids: match i % 3 {
                        0 => vec!["rust".into(), "db".into()],
                        1 => vec!["tikv".into()],
                        _ => vec!["rust".into(), "missing-tag".into()],
                    },
                    year: if i < 6 { 2023 } else { 2024 },
                    created_at: 1_700_000_000 + i * 86_400,
                    published: i % 3 != 2,
                    ..Post::default()
                };
                posts.build(post, &tx).await?;
            }
            Ok::<_, TitoError>(())
        }
    })
    .await?;

    println!("Ann's posts, with tags and author:");
    let page = Post::by_author(&posts)
        .value("ann")
        .relationship(Post::TAGS)
        .relationship(Post::AUTHOR)
        .limit(10)
        .execute()
        .await?;
    for post in &page.items {
        let tag_names: Vec<&str> = post.tags.iter().map(|t| t.name.as_str()).collect();
        let author = post.author.as_ref().map_or("?", |a| a.name.as_str());
        println!("  {} by {author} [{}]", post.title, tag_names.join(", "));
    }
    assert_eq!(page.items.len(), 6);

    println!("Latest published posts of 2024, newest first, three per page:");
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = Post::by_year_created(&posts)
            .value(2024)
            .limit(3)
            .cursor(cursor)
            .execute_reverse()
            .await?;
        for post in &page.items {
            println!("  {} (created {})", post.title, post.created_at);
            seen.push(post.created_at);
        }
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
        println!("  -- next page --");
    }
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(seen.len(), 4, "drafts are not in the timeline");

    println!("Posts of 2023 created after day 2:");
    let later = Post::by_year_created(&posts)
        .value(2023)
        .gt(1_700_000_000 + 2 * 86_400);
    for post in later.all().await? {
        println!("  {}", post.title);
    }

    // A unique index gives a read by value; an index gives counts without reading records.
    let tikv = Tag::get_by_name(&tags, "TiKV")
        .await?
        .expect("the tag exists");
    let tagged = Post::by_tag(&posts).value(tikv.id.as_str()).count().await?;
    println!("{tagged} posts are tagged {}", tikv.name);
    assert_eq!(tagged, 4);

    // A closure update moves the post between index entries.
    posts
        .update_with("post-00", |post| post.author_id = "bob".into())
        .await?;
    let first = Post::by_author(&posts).value("bob").first().await?;
    assert_eq!(first.map(|post| post.id).as_deref(), Some("post-00"));
    Ok(())
}
