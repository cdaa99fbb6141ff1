//! A small blog: authors, posts and tags, with relationships, a composite index, reverse
//! chronological queries and cursor pagination.
//!
//! Run with `cargo run --example blog` (embedded, no setup), or on TiKV with
//! `TITO_TIKV_PD=127.0.0.1:2379 cargo run --features tikv --example blog`.

use serde::{Deserialize, Serialize};
use tito::prelude::*;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Author {
    id: String,
    name: String,
}

impl TitoModelTrait for Author {
    fn get_id(&self) -> String {
        self.id.clone()
    }

    fn get_table_name(&self) -> String {
        "author".to_string()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tag {
    id: String,
    name: String,
}

impl TitoModelTrait for Tag {
    fn get_id(&self) -> String {
        self.id.clone()
    }

    fn get_table_name(&self) -> String {
        "tag".to_string()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Post {
    id: String,
    title: String,
    author_id: String,
    #[serde(default)]
    author: Option<Author>,
    tag_ids: Vec<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    year: i32,
    created_at: i64,
    published: bool,
}

impl TitoModelTrait for Post {
    fn get_id(&self) -> String {
        self.id.clone()
    }

    fn get_table_name(&self) -> String {
        "post".to_string()
    }

    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        let field = |name: &str, r#type| TitoIndexField {
            name: name.to_string(),
            r#type,
        };
        vec![
            TitoIndexConfig {
                condition: true,
                name: "post-by-author".to_string(),
                fields: vec![
                    field("author_id", TitoIndexBlockType::String),
                    field("created_at", TitoIndexBlockType::Number),
                ],
                custom_generator: None,
            },
            TitoIndexConfig {
                // Drafts stay out of the public timeline.
                condition: self.published,
                name: "post-by-created".to_string(),
                fields: vec![
                    field("year", TitoIndexBlockType::Number),
                    field("created_at", TitoIndexBlockType::Number),
                ],
                custom_generator: None,
            },
            TitoIndexConfig {
                condition: true,
                name: "post-by-tag".to_string(),
                fields: vec![field("tag_ids", TitoIndexBlockType::String)],
                custom_generator: None,
            },
        ]
    }

    fn get_embedded_relationships(&self) -> Vec<TitoEmbeddedRelationshipConfig> {
        vec![
            TitoEmbeddedRelationshipConfig {
                source_field_name: "tag_ids".to_string(),
                destination_field_name: "tags".to_string(),
                model: "tag".to_string(),
            },
            TitoEmbeddedRelationshipConfig {
                source_field_name: "author_id".to_string(),
                destination_field_name: "author".to_string(),
                model: "author".to_string(),
            },
        ]
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
    let mut query = posts.query_by_index("post-by-author");
    let page = query
        .value("ann")
        .relationship("tags")
        .relationship("author")
        .limit(Some(10))
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
        let mut query = posts.query_by_index("post-by-created");
        let page = query
            .value("2024")
            .limit(Some(3))
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
    let page = posts
        .query_by_index("post-by-created")
        .value(2023)
        .gt(1_700_000_000 + 2 * 86_400)
        .execute()
        .await?;
    for post in &page.items {
        println!("  {}", post.title);
    }

    let tagged = posts
        .query_by_index("post-by-tag")
        .value("tikv")
        .execute()
        .await?;
    println!("{} posts are tagged TiKV", tagged.items.len());
    assert_eq!(tagged.items.len(), 4);
    Ok(())
}
