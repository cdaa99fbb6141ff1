//! Typed index components: how field values become encoded index key parts.
//!
//! `#[derive(TitoModel)]` builds index entries straight from typed fields through
//! [`IndexComponent`]; hand-written models go through the serialized record instead
//! (see `plan`). Both produce the same bytes for the same values.

use std::collections::{BTreeSet, HashSet};

use crate::codec::{self, Direction, Number};
use crate::error::TitoError;
use crate::model::TitoIndexBlockType;

/// The most entries one record may add to one index (fan-out over arrays multiplies).
pub const MAX_ENTRIES_PER_INDEX: usize = 1024;

/// The encoded value tuples one record contributes to one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedValues {
    /// The index name.
    pub index: String,
    /// One encoded tuple of field values per entry.
    pub tuples: Vec<Vec<u8>>,
}

/// A field type that can be part of an index.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an index field",
    label = "not indexable",
    note = "index fields are strings, numbers, bools or uuids, or an Option, Vec or set of them; implement `IndexComponent` for other types"
)]
pub trait IndexComponent {
    /// How values of this type are encoded and ordered.
    const BLOCK_TYPE: TitoIndexBlockType;

    /// Appends one encoded component per value: none for `None`, one per element of a collection.
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError>;
}

/// Encodes a string index component.
pub fn string_component(value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 3);
    codec::put_str(&mut out, value, Direction::Asc);
    out
}

/// Encodes a number index component; NaN is refused.
pub fn number_component(value: Number) -> Result<Vec<u8>, TitoError> {
    let mut out = Vec::with_capacity(9);
    put_number_component(&mut out, value)?;
    Ok(out)
}

/// Appends a number index component to `out`; NaN is refused.
pub(crate) fn put_number_component(out: &mut Vec<u8>, value: Number) -> Result<(), TitoError> {
    codec::put_number(out, value, Direction::Asc)
        .map_err(|e| TitoError::Serialize(format!("index value {value}: {e}")))
}

/// Every combination of one component per field, concatenated in field order.
pub fn combine_components(fields: &[Vec<Vec<u8>>]) -> Result<Vec<Vec<u8>>, TitoError> {
    // The common case, one value per field, is one tuple built in one allocation.
    if fields.iter().all(|components| components.len() == 1) {
        let mut tuple = Vec::with_capacity(fields.iter().map(|c| c[0].len()).sum());
        fields.iter().for_each(|c| tuple.extend_from_slice(&c[0]));
        return Ok(vec![tuple]);
    }
    let mut tuples: Vec<Vec<u8>> = vec![Vec::new()];
    for components in fields {
        let count = tuples.len() * components.len();
        if count > MAX_ENTRIES_PER_INDEX {
            return Err(TitoError::TooLarge {
                what: "index fan-out",
                size: count,
                limit: MAX_ENTRIES_PER_INDEX,
            });
        }
        let mut next = Vec::with_capacity(count);
        for prefix in &tuples {
            for component in components {
                let mut tuple = Vec::with_capacity(prefix.len() + component.len());
                tuple.extend_from_slice(prefix);
                tuple.extend_from_slice(component);
                next.push(tuple);
            }
        }
        tuples = next;
    }
    tuples.sort_unstable();
    tuples.dedup();
    Ok(tuples)
}

impl IndexComponent for str {
    const BLOCK_TYPE: TitoIndexBlockType = TitoIndexBlockType::String;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        out.push(string_component(self));
        Ok(())
    }
}

impl IndexComponent for String {
    const BLOCK_TYPE: TitoIndexBlockType = TitoIndexBlockType::String;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        self.as_str().index_components(out)
    }
}

impl IndexComponent for bool {
    const BLOCK_TYPE: TitoIndexBlockType = TitoIndexBlockType::String;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        out.push(string_component(if *self { "true" } else { "false" }));
        Ok(())
    }
}

impl IndexComponent for uuid::Uuid {
    const BLOCK_TYPE: TitoIndexBlockType = TitoIndexBlockType::String;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        out.push(string_component(&self.to_string()));
        Ok(())
    }
}

macro_rules! number_component_impl {
    ($variant:ident, $wide:ty: $($t:ty),*) => {$(
        impl IndexComponent for $t {
            const BLOCK_TYPE: TitoIndexBlockType = TitoIndexBlockType::Number;
            fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
                out.push(number_component(Number::$variant(<$wide>::from(*self)))?);
                Ok(())
            }
        }
    )*};
}

number_component_impl!(Int, i64: i8, i16, i32, i64);
number_component_impl!(UInt, u64: u8, u16, u32, u64);
number_component_impl!(Float, f64: f32, f64);

impl IndexComponent for isize {
    const BLOCK_TYPE: TitoIndexBlockType = TitoIndexBlockType::Number;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        (*self as i64).index_components(out)
    }
}

impl IndexComponent for usize {
    const BLOCK_TYPE: TitoIndexBlockType = TitoIndexBlockType::Number;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        (*self as u64).index_components(out)
    }
}

impl<T: IndexComponent + ?Sized> IndexComponent for &T {
    const BLOCK_TYPE: TitoIndexBlockType = T::BLOCK_TYPE;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        (**self).index_components(out)
    }
}

impl<T: IndexComponent> IndexComponent for Option<T> {
    const BLOCK_TYPE: TitoIndexBlockType = T::BLOCK_TYPE;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        match self {
            Some(value) => value.index_components(out),
            None => Ok(()),
        }
    }
}

macro_rules! collection_component_impl {
    ($($c:ident),*) => {$(
        impl<T: IndexComponent> IndexComponent for $c<T> {
            const BLOCK_TYPE: TitoIndexBlockType = T::BLOCK_TYPE;
            fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
                self.iter().try_for_each(|value| value.index_components(out))
            }
        }
    )*};
}

collection_component_impl!(Vec, BTreeSet);

impl<T: IndexComponent> IndexComponent for [T] {
    const BLOCK_TYPE: TitoIndexBlockType = T::BLOCK_TYPE;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        self.iter()
            .try_for_each(|value| value.index_components(out))
    }
}

impl<T: IndexComponent, S> IndexComponent for HashSet<T, S> {
    const BLOCK_TYPE: TitoIndexBlockType = T::BLOCK_TYPE;
    fn index_components(&self, out: &mut Vec<Vec<u8>>) -> Result<(), TitoError> {
        self.iter()
            .try_for_each(|value| value.index_components(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components<T: IndexComponent + ?Sized>(value: &T) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        value.index_components(&mut out).unwrap();
        out
    }

    #[test]
    fn integer_widths_encode_alike() {
        assert_eq!(components(&5u8), components(&5i64));
        assert_eq!(components(&5.0f64), components(&5u64));
    }

    #[test]
    fn options_are_sparse_and_vectors_fan_out() {
        assert!(components(&None::<String>).is_empty());
        assert_eq!(components(&vec!["a", "b"]).len(), 2);
    }

    #[test]
    fn combinations_cover_every_pair_once() {
        let a = vec![string_component("x"), string_component("y")];
        let b = vec![string_component("1"), string_component("1")];
        let tuples = combine_components(&[a, b]).unwrap();
        assert_eq!(tuples.len(), 2);
        let empty = combine_components(&[vec![], vec![string_component("1")]]).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn nan_is_refused() {
        let mut out = Vec::new();
        assert!(f64::NAN.index_components(&mut out).is_err());
    }
}
