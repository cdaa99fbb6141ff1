use serde::{Deserialize, Serialize};
use tito::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "tags")]
struct Tag {
    #[tito(id)]
    id: String,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Meta {
    words: u32,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "posts")]
struct Post {
    #[tito(id)]
    id: String,
    #[tito(index)]
    category: String,
    #[tito(index)]
    meta: Meta,
    #[tito(relation(model = Tag, into = tags))]
    published: bool,
    #[serde(default)]
    tags: Vec<Tag>,
    #[tito(version)]
    revision: String,
}

/// Version 2 of `Post` with no `From<Post>` conversion.
#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "posts", version = 2, from = Post)]
struct PostV2 {
    #[tito(id)]
    id: String,
}

fn queries(posts: &TitoModel<Post>) {
    let _ = Post::by_category(posts).value(5);
    let _ = Post::by_title(posts);
}

fn main() {}
