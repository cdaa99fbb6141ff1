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

fn queries(posts: &TitoModel<Post>) {
    let _ = Post::by_category(posts).value(5);
    let _ = Post::by_title(posts);
}

fn main() {}
