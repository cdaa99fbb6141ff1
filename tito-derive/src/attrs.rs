//! The `#[tito(..)]` attribute language, parsed by darling into plain structs. Checks that need
//! the whole model (positions, references between fields) live in `model`.

use darling::ast::{Data, NestedMeta};
use darling::util::{Flag, Ignored, SpannedValue};
use darling::{FromDeriveInput, FromField, FromMeta};
use syn::{Attribute, Generics, Ident, LitStr, Path, Type, Visibility};

/// `#[tito(..)]` on the struct.
#[derive(FromDeriveInput)]
#[darling(attributes(tito), supports(struct_named), forward_attrs(serde))]
pub struct ModelAttrs {
    pub ident: Ident,
    pub vis: Visibility,
    pub generics: Generics,
    pub attrs: Vec<Attribute>,
    pub data: Data<Ignored, FieldAttrs>,
    /// `table = "users"`: where records are stored.
    pub table: SpannedValue<String>,
    /// `events("user", "audit")`: event types published on writes with events.
    #[darling(default)]
    pub events: Events,
    /// `partition_key = field`: the field choosing the queue partition (default: the id).
    pub partition_key: Option<Ident>,
    /// `version = 2`: the version of the stored shape (default 1).
    pub version: Option<SpannedValue<u32>>,
    /// `from = PostV1`: the model of the previous version, converted with `From`.
    pub from: Option<Path>,
}

/// `#[tito(..)]` on a field.
#[derive(FromField)]
#[darling(attributes(tito), forward_attrs(serde))]
pub struct FieldAttrs {
    pub ident: Option<Ident>,
    pub ty: Type,
    pub attrs: Vec<Attribute>,
    /// `id`: the primary key.
    pub id: Flag,
    /// `index` or `index(name = "..", position = 0, unique, condition = path, path = "..",
    /// ty = T)`: membership in an index; repeatable.
    #[darling(multiple)]
    pub index: Vec<SpannedValue<IndexAttr>>,
    /// `unique`: the field's own index (named after the field) holds one record per value.
    pub unique: Flag,
    /// `version`: the record's version (a `u64`), checked and advanced by every write.
    pub version: Flag,
    /// `relation(model = Tag, into = tags)`: the field holds ids of `Tag` records, hydrated into
    /// the field `tags`; repeatable.
    #[darling(multiple)]
    pub relation: Vec<SpannedValue<RelationAttr>>,
    /// `has_many(model = Post, index = "by_author")`: the field receives the `Post` records
    /// whose index `by_author` starts with this record's id.
    pub has_many: Option<SpannedValue<HasManyAttr>>,
}

/// One `has_many(..)`.
#[derive(FromMeta)]
pub struct HasManyAttr {
    /// The referencing model type.
    pub model: Path,
    /// Its index whose first field holds this record's id.
    pub index: String,
}

/// One `index(..)` membership.
#[derive(Clone, Default, FromMeta)]
#[darling(from_word = || Ok(IndexAttr::default()))]
pub struct IndexAttr {
    /// The index name; defaults to the field name (joined with the path's segments by `_`).
    pub name: Option<SpannedValue<String>>,
    /// The field's place in a composite index, from 0.
    pub position: Option<SpannedValue<u32>>,
    /// The index holds one record per value.
    pub unique: Flag,
    /// A path to `fn(&Self) -> bool`: only records for which it is true are indexed.
    pub condition: Option<Path>,
    /// A dotted path inside the field's value (`author_id` on `comments: Vec<Comment>`).
    pub path: Option<SpannedValue<String>>,
    /// The type of the value at `path`; needed because the derive cannot see inside other types.
    pub ty: Option<Type>,
}

/// One `relation(..)`.
#[derive(FromMeta)]
pub struct RelationAttr {
    /// The referenced model type.
    pub model: Path,
    /// The field receiving the referenced records (never stored).
    pub into: Ident,
    /// A dotted path inside the field's value holding the ids; `into` is then a field next to it.
    pub path: Option<SpannedValue<String>>,
}

/// The list in `events("a", "b")`.
#[derive(Default)]
pub struct Events(pub Vec<LitStr>);

impl FromMeta for Events {
    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        let mut errors = darling::Error::accumulator();
        let names = items
            .iter()
            .filter_map(|item| match item {
                NestedMeta::Lit(syn::Lit::Str(name)) => Some(name.clone()),
                other => {
                    errors.push(
                        darling::Error::custom("expected an event name such as \"user\"")
                            .with_span(other),
                    );
                    None
                }
            })
            .collect();
        errors.finish_with(Events(names))
    }
}
