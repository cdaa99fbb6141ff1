//! The configuration a model declares: indexes, relationships and event types.
//!
//! These are plain structs so that a model can be written by hand exactly as in tito 0.2.0;
//! `#[derive(TitoModel)]` generates the same values from attributes.

use std::fmt;
use std::sync::Arc;

/// The type of an index field, which decides how its values are encoded and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TitoIndexBlockType {
    /// Ordered by UTF-8 bytes, case preserved.
    String,
    /// Ordered numerically: negative, fractional and large numbers included.
    Number,
}

/// One field of an index: a field name or a dotted path into nested values (`blocks.author_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitoIndexField {
    /// The field name or dotted path; arrays along the path fan out to one entry per element.
    pub name: String,
    /// How the field's values are encoded.
    pub r#type: TitoIndexBlockType,
}

/// One value of an index field, as produced by a [`TitoIndexGenerator`].
#[derive(Debug, Clone, PartialEq)]
pub enum TitoIndexValue {
    /// A string value, for [`TitoIndexBlockType::String`] fields.
    String(String),
    /// An integer, for [`TitoIndexBlockType::Number`] fields.
    Int(i64),
    /// An unsigned integer, for [`TitoIndexBlockType::Number`] fields.
    UInt(u64),
    /// A float, for [`TitoIndexBlockType::Number`] fields.
    Float(f64),
}

type GeneratorFn = dyn Fn() -> Vec<Vec<TitoIndexValue>> + Send + Sync;

/// Computes an index's entries in code instead of reading them from fields: each inner `Vec`
/// is one entry, one value per index field, in order.
#[derive(Clone)]
pub struct TitoIndexGenerator(Arc<GeneratorFn>);

impl TitoIndexGenerator {
    /// Wraps a function returning the index's entries for the record it was built from.
    pub fn new(f: impl Fn() -> Vec<Vec<TitoIndexValue>> + Send + Sync + 'static) -> Self {
        TitoIndexGenerator(Arc::new(f))
    }

    /// Runs the generator.
    pub fn generate(&self) -> Vec<Vec<TitoIndexValue>> {
        (self.0)()
    }
}

impl fmt::Debug for TitoIndexGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TitoIndexGenerator(..)")
    }
}

/// A secondary index of a model.
#[derive(Debug, Clone)]
pub struct TitoIndexConfig {
    /// Whether this record is indexed at all (a conditional index when computed from the record).
    pub condition: bool,
    /// The index's name, used by queries.
    pub name: String,
    /// The indexed fields, in key order.
    pub fields: Vec<TitoIndexField>,
    /// Computes the entries in code instead of reading `fields` from the record.
    pub custom_generator: Option<TitoIndexGenerator>,
}

/// A relationship: ids in `source_field_name` are replaced by the records they name (from the
/// table `model`) in `destination_field_name` when the relationship is requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitoEmbeddedRelationshipConfig {
    /// Field or dotted path holding an id or a list of ids (`tag_ids`, `blocks.author_id`).
    pub source_field_name: String,
    /// Field or dotted path receiving the records (`tags`, `blocks.author`); never stored.
    pub destination_field_name: String,
    /// Table name of the referenced model.
    pub model: String,
}

/// A reverse relationship: the records of table `model` whose index `index` starts with this
/// record's id (an author's posts, through the posts' `by_author` index), hydrated in index
/// order into `destination_field_name` when the relationship is requested. Build it with
/// [`TitoHasManyConfig::through`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitoHasManyConfig {
    /// Field receiving the records (`posts`); never stored.
    pub destination_field_name: String,
    /// Table name of the referencing model.
    pub model: String,
    /// That model's index whose first field holds this record's id.
    pub index: String,
    /// Whether that index is unique.
    pub unique: bool,
    /// The index's first field; `None` when the model has no index `index`.
    pub key_field: Option<TitoIndexField>,
}

/// An event type a model publishes when written with events enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitoEventConfig {
    /// The event type name; workers subscribe to it.
    pub name: String,
}
