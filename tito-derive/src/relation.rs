//! Relationships: which field holds the ids, which field receives the records, and their
//! names in the serialized record.

use std::collections::HashMap;

use darling::Error;
use darling::util::SpannedValue;
use proc_macro2::Span;
use syn::{Ident, Path, Type};

use crate::attrs::{FieldAttrs, RelationAttr};
use crate::model::segments;

/// One relationship, ready for code generation.
pub struct Relation {
    pub model: Path,
    /// The source field's type, checked to hold ids when the ids are the field itself.
    pub source_ty: Option<Type>,
    pub json_source: String,
    pub json_destination: String,
    /// The generated associated constant (`TAGS`, `COMMENTS_AUTHOR`).
    pub constant: Ident,
    pub span: Span,
}

/// Resolves `relation` on the field `ident`; `json_names` maps field names to serialized names.
pub fn relation_of(
    ident: &Ident,
    field: &FieldAttrs,
    relation: &SpannedValue<RelationAttr>,
    json_names: &HashMap<String, String>,
) -> darling::Result<Relation> {
    let json = json_names
        .get(&ident.to_string())
        .cloned()
        .unwrap_or_default();
    let into = &relation.into;
    let resolved = match &relation.path {
        None => {
            let destination = json_names.get(&into.to_string()).ok_or_else(|| {
                Error::custom(format!("`into`: the model has no field `{into}`")).with_span(into)
            })?;
            if into == ident {
                return Err(
                    Error::custom("`into` must name another field than the ids").with_span(into)
                );
            }
            Relation {
                model: relation.model.clone(),
                source_ty: Some(field.ty.clone()),
                json_source: json,
                json_destination: destination.clone(),
                constant: constant(&[ident_string(into)], into),
                span: relation.span(),
            }
        }
        Some(path) => {
            // The ids sit at `path` inside the field; the records go next to them.
            let segments = segments(path)?;
            let parent = &segments[..segments.len() - 1];
            let json_parent: Vec<String> = std::iter::once(json)
                .chain(parent.iter().map(ident_string))
                .collect();
            let rust_parent: Vec<String> = std::iter::once(ident)
                .chain(parent)
                .chain([into])
                .map(ident_string)
                .collect();
            Relation {
                model: relation.model.clone(),
                source_ty: None,
                json_source: format!(
                    "{}.{}",
                    json_parent.join("."),
                    path.rsplit('.').next().unwrap_or_default()
                ),
                json_destination: format!("{}.{into}", json_parent.join(".")),
                constant: constant(&rust_parent, into),
                span: relation.span(),
            }
        }
    };
    Ok(resolved)
}

fn ident_string(ident: &Ident) -> String {
    ident.to_string()
}

/// The relationship constant: the destination's field names, upper case, joined by `_`.
fn constant(names: &[String], span: &Ident) -> Ident {
    Ident::new(&names.join("_").to_uppercase(), span.span())
}
