//! `#[derive(TitoModel)]`: a tito model's configuration and typed queries from attributes.
//!
//! Use it through the `tito` crate (`use tito::prelude::*;`); the attribute language is
//! documented on [`TitoModel`](derive@TitoModel).

#![warn(missing_docs)]

mod attrs;
mod expand;
mod model;
mod relation;
mod serde_names;

use darling::FromDeriveInput;
use proc_macro::TokenStream;

/// Derives `TitoModelTrait` from `#[tito(..)]` attributes, plus one typed query constructor per
/// index and one constant per relationship.
///
/// | attribute | on | meaning |
/// |---|---|---|
/// | `table = "users"` | struct | the table the records live in (required) |
/// | `events("user", "audit")` | struct | event types published by writes with events |
/// | `partition_key = field` | struct | the field choosing the events' queue partition (default: the id) |
/// | `version = 2, from = PostV1` | struct | the version of the stored shape (default 1): records are stored with it, and records an older version wrote are read as `PostV1` (a model of the same table with a lower version, itself converting from older ones) and converted with `From<PostV1>`; `TitoModel::migrate` rewrites them |
/// | `id` | field | the primary key (exactly one field; any `Display` type) |
/// | `index` | field | an index on this field alone, named after the field's serialized name |
/// | `unique` | field | the field's own index (as `index`) holds one record per value |
/// | `index(name = "by_x")` | field | the field's index under another name |
/// | `index(name = "by_x", position = 1)` | field | this field is field 1 (from 0) of composite index `by_x`; give every member a position, or none to use field order |
/// | `index(.., unique)` | field | the index holds one record per value (on any member) |
/// | `index(.., condition = Self::is_active)` | field | only records for which this `fn(&Self) -> bool` is true are indexed (on one member) |
/// | `index(path = "author_id", ty = String)` | field | indexes the value at a dotted path inside the field; collections and `Option`s along the path fan out; `ty` is the type found there (quote generic types: `ty = "Option<String>"`) |
/// | `version` | field | the record's version, a `u64`: updates and upserts fail with `VersionConflict` unless it is the stored one, and store it plus one; `build` stores 1 |
/// | `relation(model = Tag, into = tags)` | field | the field holds ids of `Tag` records, hydrated into field `tags` on request (never stored) |
/// | `has_many(model = Post, index = "by_author")` | field | the field receives, on request, the `Post` records whose index `by_author` starts with this record's id, in index order (never stored; at most `MAX_PAGE_LEN` per record) |
/// | `relation(model = User, path = "author_id", into = author)` | field | the ids are at `path` inside the field; `author` is the field next to them |
///
/// Index fields may be strings, integers of any width, floats, bools and uuids, or an
/// `Option` (`None` is not indexed), `Vec` or set of them (one entry per element); other types
/// can implement `IndexComponent`. The entries are computed from the typed fields and are
/// byte-for-byte those of the equivalent hand-written model.
///
/// Generated items, for each index named `x`, and each relationship into field `y`:
/// - `fn by_x(model: &TitoModel<Self, B>) -> TypedQuery<..>` (`x` in snake case, `by_` not
///   doubled): a query whose `.value(..)` calls take the index fields' types in order
///   (`Option`/`Vec`/set fields take their element type), then at most one range (`gt`, `gte`,
///   `lt`, `lte`, `between`, and `starts_with` on string fields).
/// - for a unique index `x`, `async fn get_by_x(model, values..) -> Result<Option<Self>>`: the
///   record holding those values, or `None`.
/// - `async fn get(model, id) -> Result<Option<Self>>`: the record with that id, or `None`.
/// - `const Y: Relation<Self>`, for `.relationship(Post::TAGS)` and `find_by_id`; the same for
///   each `has_many` field (`Author::POSTS`).
///
/// Names in the serialized record (relationship and index paths, and the default index names)
/// follow serde's `rename` and `rename_all`, so renaming a Rust field behind a `#[serde(rename)]`
/// keeps its stored index; segments of a `path` are used as written.
#[proc_macro_derive(TitoModel, attributes(tito))]
pub fn derive_tito_model(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    attrs::ModelAttrs::from_derive_input(&input)
        .and_then(model::Model::resolve)
        .map(|model| expand::model(&model))
        .unwrap_or_else(darling::Error::write_errors)
        .into()
}
