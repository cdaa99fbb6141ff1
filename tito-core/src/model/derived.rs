//! Support for the code `#[derive(TitoModel)]` generates: index entries read straight from typed
//! fields, nested paths that fan out over collections, and the checks that turn attribute
//! mistakes into readable compile errors.
//!
//! Generated code computes the same entries as the serialized-record path in `plan`: every
//! field goes through [`IndexComponent`], and [`combine_components`] builds the tuples.

use std::collections::{BTreeSet, HashSet, VecDeque};

use std::cmp::Ordering;

use crate::error::TitoError;
use crate::model::TitoModelTrait;
use crate::model::component::{IndexComponent, IndexedValues, combine_components};
use crate::model::record::unreadable_version;

/// Runs `build` to collect a record's index entries: the body of a generated
/// `typed_index_entries`.
pub fn typed_entries(
    build: impl FnOnce(&mut Vec<IndexedValues>) -> Result<(), TitoError>,
) -> Option<Result<Vec<IndexedValues>, TitoError>> {
    let mut entries = Vec::new();
    Some(build(&mut entries).map(|()| entries))
}

/// Decodes a record stored by version `version` of model `T`, whose previous version is
/// `Older`: the body of the `from_stored` that `#[tito(version = N, from = Older)]` generates.
/// Older records are read as `Older` (through its own chain) and converted with `From`.
pub fn read_versioned<T, Older>(version: u32, json: &[u8]) -> serde_json::Result<T>
where
    T: TitoModelTrait + From<Older>,
    Older: TitoModelTrait,
{
    const {
        assert!(
            Older::MODEL_VERSION < T::MODEL_VERSION,
            "a model's `from` model must have a lower version"
        )
    };
    match version.cmp(&T::MODEL_VERSION) {
        Ordering::Equal => serde_json::from_slice(json),
        Ordering::Less => Older::from_stored(version, json).map(T::from),
        Ordering::Greater => Err(unreadable_version(version, T::MODEL_VERSION)),
    }
}

/// Appends the components of one index field value to `out`.
pub fn push_components<T: IndexComponent + ?Sized>(
    value: &T,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), TitoError> {
    value.index_components(out)
}

/// Adds the entries of index `index`, given the components of each of its fields in order.
pub fn push_index(
    entries: &mut Vec<IndexedValues>,
    index: &str,
    fields: &[Vec<Vec<u8>>],
) -> Result<(), TitoError> {
    entries.push(IndexedValues {
        index: index.to_string(),
        tuples: combine_components(fields)?,
    });
    Ok(())
}

/// One step of a nested index path (`comments.author_id`): the value reached so far.
///
/// `(&Hop(&value)).each(..)` visits every element when `value` is a collection or an `Option`,
/// and `value` itself otherwise, as the serialized-record path fans out over JSON arrays. The
/// collection impls are on `&Hop`, the fallback on `Hop`, so method lookup prefers them
/// (autoref specialization); it needs the concrete type, which generated code always has.
pub struct Hop<'a, T: ?Sized>(pub &'a T);

impl<T: ?Sized> Clone for Hop<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Hop<'_, T> {}

/// Visits the values one [`Hop`] of a nested path reaches.
pub trait Fanout<'a> {
    /// The type of the values visited.
    type Item: ?Sized + 'a;

    /// Calls `f` on each value, stopping at the first error.
    fn each(self, f: impl FnMut(&'a Self::Item) -> Result<(), TitoError>) -> Result<(), TitoError>;
}

impl<'a, T: ?Sized> Fanout<'a> for Hop<'a, T> {
    type Item = T;
    fn each(self, mut f: impl FnMut(&'a T) -> Result<(), TitoError>) -> Result<(), TitoError> {
        f(self.0)
    }
}

macro_rules! fanout_collection {
    ($($c:ident),*) => {$(
        impl<'a, T> Fanout<'a> for &Hop<'a, $c<T>> {
            type Item = T;
            fn each(
                self,
                f: impl FnMut(&'a T) -> Result<(), TitoError>,
            ) -> Result<(), TitoError> {
                self.0.iter().try_for_each(f)
            }
        }
    )*};
}

fanout_collection!(Option, Vec, VecDeque, BTreeSet);

impl<'a, T, S> Fanout<'a> for &Hop<'a, HashSet<T, S>> {
    type Item = T;
    fn each(self, f: impl FnMut(&'a T) -> Result<(), TitoError>) -> Result<(), TitoError> {
        self.0.iter().try_for_each(f)
    }
}

impl<'a, T: ?Sized> Fanout<'a> for &Hop<'a, Box<T>> {
    type Item = T;
    fn each(self, mut f: impl FnMut(&'a T) -> Result<(), TitoError>) -> Result<(), TitoError> {
        f(self.0)
    }
}

/// Field types that can hold the ids of a relationship: a string, uuid or integer, or an
/// `Option`, `Vec` or set of them.
#[diagnostic::on_unimplemented(
    message = "a relationship source must hold record ids, not `{Self}`",
    label = "not an id or a collection of ids",
    note = "use a String, Uuid or integer field, or an Option, Vec or set of them"
)]
pub trait RelationSource {}

macro_rules! relation_source {
    ($($t:ty),*) => {$( impl RelationSource for $t {} )*};
}

relation_source!(
    String,
    str,
    uuid::Uuid,
    i8,
    i16,
    i32,
    i64,
    isize,
    u8,
    u16,
    u32,
    u64,
    usize
);

impl<T: RelationSource> RelationSource for Option<T> {}
impl<T: RelationSource> RelationSource for Vec<T> {}
impl<T: RelationSource> RelationSource for VecDeque<T> {}
impl<T: RelationSource> RelationSource for BTreeSet<T> {}
impl<T: RelationSource, S> RelationSource for HashSet<T, S> {}

/// Compiles only when `T` can be a relationship source (a check in generated code).
pub fn relation_source<T: RelationSource + ?Sized>() {}

/// The type of a `#[tito(version)]` field: a `u64`.
#[diagnostic::on_unimplemented(
    message = "a version field must be a `u64`, not `{Self}`",
    label = "not a u64",
    note = "record versions count writes from 1; declare the field `u64` with `#[serde(default)]`"
)]
pub trait VersionField {
    /// The version held.
    fn get(&self) -> u64;
    /// Holds `version`.
    fn set(&mut self, version: u64);
}

impl VersionField for u64 {
    fn get(&self) -> u64 {
        *self
    }
    fn set(&mut self, version: u64) {
        *self = version;
    }
}

/// The table of model `T`, for the `model` of a generated relationship.
pub fn table_of<T: crate::model::TitoModelTrait>() -> String {
    T::default().get_table_name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::component::string_component;

    struct Comment {
        author_id: Option<String>,
    }

    #[test]
    // The borrow in `(&Hop(..))` is what selects the collection impls.
    #[allow(clippy::needless_borrow)]
    fn hops_fan_out_over_collections_and_options_only() {
        let one = Comment {
            author_id: Some("a".into()),
        };
        let many = vec![
            Comment {
                author_id: Some("b".into()),
            },
            Comment { author_id: None },
        ];
        let none: Option<Comment> = None;
        let mut out = Vec::new();
        (&Hop(&one))
            .each(|c| push_components(&c.author_id, &mut out))
            .unwrap();
        (&Hop(&many))
            .each(|c| push_components(&c.author_id, &mut out))
            .unwrap();
        (&Hop(&none))
            .each(|c| push_components(&c.author_id, &mut out))
            .unwrap();
        assert_eq!(out, vec![string_component("a"), string_component("b")]);
    }
}
