use serde::{Deserialize, Serialize};
use tito::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "unknown")]
struct UnknownAttribute {
    #[tito(id)]
    id: String,
    #[tito(indexed)]
    name: String,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "missing_id")]
struct MissingId {
    #[tito(index)]
    name: String,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "positions")]
struct DuplicatePosition {
    #[tito(id)]
    id: String,
    #[tito(index(name = "by_ab", position = 0))]
    a: String,
    #[tito(index(name = "by_ab", position = 0))]
    b: String,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Comment {
    author_id: String,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "paths")]
struct BadPathAndRelation {
    #[tito(id)]
    id: String,
    #[tito(index(path = "author_id"))]
    comments: Vec<Comment>,
    #[tito(relation(model = MissingId, into = missing))]
    tag_ids: Vec<String>,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "versions")]
struct TwoVersions {
    #[tito(id, version)]
    id: u64,
    #[tito(version)]
    a: u64,
    #[tito(version)]
    b: u64,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "owners")]
struct HasManyWithoutIndex {
    #[tito(id)]
    id: String,
    #[tito(has_many(model = MissingId))]
    missing: Vec<MissingId>,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "versions", version = 0)]
struct VersionZero {
    #[tito(id)]
    id: String,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "versions", from = VersionZero)]
struct FromWithoutVersion {
    #[tito(id)]
    id: String,
}

#[derive(Clone, Default, Serialize, Deserialize, TitoModel)]
#[tito(table = "versions", version = 1, from = VersionZero)]
struct FromBeforeTheFirst {
    #[tito(id)]
    id: String,
}

fn main() {}
