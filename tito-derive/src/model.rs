//! The model the attributes describe, checked as a whole: one id, indexes gathered by name with
//! their fields in order, relationships pointing at real fields. Every mistake is collected
//! with the span of the attribute that caused it, and all are reported together.

use std::collections::{BTreeMap, HashMap};

use darling::Error;
use darling::util::SpannedValue;
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Generics, Ident, LitStr, Path, Type, Visibility};

use crate::attrs::{FieldAttrs, IndexAttr, ModelAttrs};
use crate::relation::{Relation, relation_of};
use crate::serde_names::{SerdeNames, json_name, read_names};

/// A model ready for code generation.
pub struct Model {
    pub ident: Ident,
    pub vis: Visibility,
    pub generics: Generics,
    pub table: String,
    pub id: Ident,
    pub id_span: Span,
    pub events: Vec<LitStr>,
    pub partition_key: Option<Ident>,
    pub version: Option<Version>,
    /// Every top-level name a stored record's fields are read under; `None` with a flattened
    /// field.
    pub stored_fields: Option<Vec<String>>,
    /// `version = N, from = Older`: the stored shape's version and the previous version's model.
    pub shape: Option<Shape>,
    pub indexes: Vec<Index>,
    pub relations: Vec<Relation>,
    pub has_many: Vec<HasMany>,
}

/// A `has_many` field.
pub struct HasMany {
    pub model: Path,
    pub index: String,
    /// The field's name in the serialized record.
    pub json_destination: String,
    /// The generated associated constant (`POSTS`).
    pub constant: Ident,
    pub span: Span,
}

/// A model version above 1: `#[tito(version = N, from = Older)]` on the struct.
pub struct Shape {
    pub version: u32,
    pub from: Option<Path>,
}

/// The `#[tito(version)]` field.
pub struct Version {
    pub field: Ident,
    pub ty: Type,
    /// Its name in the serialized record.
    pub json_name: String,
}

/// One index, its fields in key order.
pub struct Index {
    pub name: String,
    /// The generated typed-query constructor (`by_email`).
    pub method: Ident,
    pub unique: bool,
    pub condition: Option<Path>,
    pub fields: Vec<IndexField>,
}

/// One field of an index: a struct field, or a path inside it.
pub struct IndexField {
    pub field: Ident,
    /// The path's segments below `field` (empty for the field itself).
    pub path: Vec<Ident>,
    /// The type of the indexed value: the field's type, or `ty` for a path.
    pub ty: Type,
    /// The dotted name in the serialized record (`comments.author_id`).
    pub json_path: String,
    pub span: Span,
}

/// A field's membership in an index, before the index is assembled.
struct Member {
    attr: SpannedValue<IndexAttr>,
    field: IndexField,
    order: usize,
}

impl Model {
    /// Checks the parsed attributes, collecting every error.
    pub fn resolve(attrs: ModelAttrs) -> darling::Result<Model> {
        let mut errors = Error::accumulator();
        let serde = SerdeNames::of(&attrs.attrs);
        let fields = attrs
            .data
            .take_struct()
            .map(|fields| fields.fields)
            .unwrap_or_default();
        let json_names: HashMap<String, String> = fields
            .iter()
            .filter_map(|f| {
                let ident = f.ident.as_ref()?;
                Some((ident.to_string(), json_name(ident, &f.attrs, &serde)))
            })
            .collect();

        let stored_fields = (fields.iter())
            .filter_map(|f| Some(read_names(f.ident.as_ref()?, &f.attrs, &serde)))
            .collect::<Option<Vec<_>>>()
            .map(|names| names.concat());
        let mut id: Option<(Ident, Span)> = None;
        let mut version: Option<Version> = None;
        let mut members: BTreeMap<String, Vec<Member>> = BTreeMap::new();
        let mut relations = Vec::new();
        let mut has_many = Vec::new();
        for (order, field) in fields.iter().enumerate() {
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            if field.id.is_present() {
                match &id {
                    Some((first, _)) => errors.push(
                        Error::custom(format!(
                            "a model has one id; `{first}` is already marked `#[tito(id)]`"
                        ))
                        .with_span(&field.id.span()),
                    ),
                    None => id = Some((ident.clone(), field.id.span())),
                }
            }
            if field.version.is_present() {
                let span = field.version.span();
                if let Some(first) = &version {
                    errors.push(
                        Error::custom(format!(
                            "a model has one version; `{}` is already marked `#[tito(version)]`",
                            first.field
                        ))
                        .with_span(&span),
                    );
                } else if field.id.is_present() {
                    errors.push(
                        Error::custom("the id cannot be the version: mark another field")
                            .with_span(&span),
                    );
                } else {
                    version = Some(Version {
                        json_name: json_names[&ident.to_string()].clone(),
                        field: ident.clone(),
                        ty: field.ty.clone(),
                    });
                }
            }
            for attr in memberships(field) {
                if let Some(member) = errors.handle(member(&ident, field, attr, order, &json_names))
                {
                    members
                        .entry(member_name(&member))
                        .or_default()
                        .push(member);
                }
            }
            if let Some(attr) = &field.has_many {
                has_many.push(HasMany {
                    model: attr.model.clone(),
                    index: attr.index.clone(),
                    json_destination: json_names[&ident.to_string()].clone(),
                    constant: Ident::new(&ident.to_string().to_uppercase(), ident.span()),
                    span: attr.span(),
                });
            }
            for relation in &field.relation {
                if let Some(relation) =
                    errors.handle(relation_of(&ident, field, relation, &json_names))
                {
                    relations.push(relation);
                }
            }
        }
        if let Some(key) = &attrs.partition_key
            && !json_names.contains_key(&key.to_string())
        {
            errors.push(
                Error::custom(format!("`partition_key`: the model has no field `{key}`"))
                    .with_span(key),
            );
        }
        let shape = errors.handle(shape_of(&attrs.version, &attrs.from));
        let mut methods: HashMap<String, String> = HashMap::new();
        let mut indexes = Vec::new();
        for (name, members) in members {
            if let Some(index) = errors.handle(index_of(name, members)) {
                if let Some(other) = methods.insert(index.method.to_string(), index.name.clone()) {
                    errors.push(
                        Error::custom(format!(
                            "indexes `{other}` and `{}` both get the query method `{}`; rename one",
                            index.name, index.method
                        ))
                        .with_span(&index.method),
                    );
                }
                indexes.push(index);
            }
        }
        let Some((id, id_span)) = id else {
            errors.push(
                Error::custom("missing id: mark the field holding the record id `#[tito(id)]`")
                    .with_span(&attrs.ident),
            );
            return Err(Error::multiple(errors.into_inner()));
        };
        errors.finish_with(Model {
            ident: attrs.ident,
            vis: attrs.vis,
            generics: attrs.generics,
            table: attrs.table.into_inner(),
            id,
            id_span,
            events: attrs.events.0,
            partition_key: attrs.partition_key,
            version,
            stored_fields,
            shape: shape.flatten(),
            indexes,
            relations,
            has_many,
        })
    }
}

/// The model version from the struct's `version` and `from`; `None` for version 1.
fn shape_of(
    version: &Option<SpannedValue<u32>>,
    from: &Option<Path>,
) -> darling::Result<Option<Shape>> {
    match (version, from) {
        (None, None) => Ok(None),
        (None, Some(from)) => Err(Error::custom(
            "`from` needs the model's own version: `#[tito(version = 2, from = ..)]`",
        )
        .with_span(from)),
        (Some(version), _) if **version == 0 => {
            Err(Error::custom("model versions start at 1").with_span(&version.span()))
        }
        (Some(version), Some(from)) if **version == 1 => Err(Error::custom(
            "version 1 is the first: there is no older version to convert `from`",
        )
        .with_span(from)),
        (Some(version), from) => Ok((**version > 1).then(|| Shape {
            version: **version,
            from: from.clone(),
        })),
    }
}

/// The field's index memberships, with `unique` standing for `index(unique)`.
fn memberships(field: &FieldAttrs) -> Vec<SpannedValue<IndexAttr>> {
    let mut out = field.index.clone();
    if field.unique.is_present() {
        let own = out
            .iter_mut()
            .find(|attr| attr.name.is_none() && attr.path.is_none());
        match own {
            Some(attr) => attr.unique = field.unique,
            None => out.push(SpannedValue::new(
                IndexAttr {
                    unique: field.unique,
                    ..IndexAttr::default()
                },
                field.unique.span(),
            )),
        }
    }
    out
}

/// The index a membership belongs to: its `name`, or the field's serialized name (and path),
/// so that renaming the Rust field behind a `#[serde(rename)]` keeps the stored index.
fn member_name(member: &Member) -> String {
    match &member.attr.name {
        Some(name) => name.as_ref().clone(),
        None => member.field.json_path.replace('.', "_"),
    }
}

/// Parses a dotted path of field names.
pub fn segments(path: &SpannedValue<String>) -> darling::Result<Vec<Ident>> {
    path.split('.')
        .map(|segment| {
            syn::parse_str::<Ident>(segment).map_err(|_| {
                Error::custom(format!(
                    "`{}` is not a dotted path of field names",
                    path.as_ref()
                ))
                .with_span(&path.span())
            })
        })
        .collect()
}

fn member(
    ident: &Ident,
    field: &FieldAttrs,
    attr: SpannedValue<IndexAttr>,
    order: usize,
    json_names: &HashMap<String, String>,
) -> darling::Result<Member> {
    let json = json_names
        .get(&ident.to_string())
        .cloned()
        .unwrap_or_default();
    let (path, ty) = match (&attr.path, &attr.ty) {
        (None, None) => (Vec::new(), field.ty.clone()),
        (Some(path), Some(ty)) => (segments(path)?, ty.clone()),
        (Some(path), None) => {
            return Err(Error::custom(
                "an index on a nested path needs `ty = <type of the value at the path>`",
            )
            .with_span(&path.span()));
        }
        (None, Some(ty)) => {
            return Err(
                Error::custom("`ty` is only for an index on a nested `path`").with_span(ty),
            );
        }
    };
    let json_path = std::iter::once(json)
        .chain(path.iter().map(Ident::to_string))
        .collect::<Vec<_>>()
        .join(".");
    Ok(Member {
        field: IndexField {
            field: ident.clone(),
            span: attr.ty.as_ref().map_or(field.ty.span(), Spanned::span),
            path,
            ty,
            json_path,
        },
        attr,
        order,
    })
}

/// Assembles one index from its members: positions, unique, condition.
fn index_of(name: String, mut members: Vec<Member>) -> darling::Result<Index> {
    let mut errors = Error::accumulator();
    let positioned = members.iter().filter(|m| m.attr.position.is_some()).count();
    if positioned != 0 && positioned != members.len() {
        for member in members.iter().filter(|m| m.attr.position.is_none()) {
            errors.push(
                Error::custom(format!(
                    "index `{name}`: give every field a `position`, or none to use field order"
                ))
                .with_span(&member.attr.span()),
            );
        }
    }
    let mut seen: HashMap<u32, ()> = HashMap::new();
    for member in &members {
        if let Some(position) = &member.attr.position
            && seen.insert(*position.as_ref(), ()).is_some()
        {
            errors.push(
                Error::custom(format!(
                    "index `{name}`: another field already has position {}",
                    position.as_ref()
                ))
                .with_span(&position.span()),
            );
        }
    }
    members.sort_by_key(|m| (m.attr.position.map(|p| *p.as_ref()), m.order));
    let mut condition: Option<Path> = None;
    for member in &members {
        if let Some(path) = &member.attr.condition {
            if condition.is_some() {
                errors.push(
                    Error::custom(format!(
                        "index `{name}` already has a condition; give it on one field only"
                    ))
                    .with_span(path),
                );
            }
            condition = Some(path.clone());
        }
    }
    let method = method_name(
        &name,
        members.first().map_or(Span::call_site(), |m| m.attr.span()),
    );
    errors.finish_with(Index {
        unique: members.iter().any(|m| m.attr.unique.is_present()),
        fields: members.into_iter().map(|m| m.field).collect(),
        name,
        method,
        condition,
    })
}

/// `by_<name>` in snake case (`displayName` gives `by_display_name`), with characters that
/// cannot be in an identifier replaced by `_`.
fn method_name(index: &str, span: Span) -> Ident {
    let mut clean = String::with_capacity(index.len() + 4);
    let mut previous: Option<char> = None;
    for c in index.chars() {
        if c.is_ascii_uppercase() {
            if previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
                clean.push('_');
            }
            clean.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() || c == '_' {
            clean.push(c);
        } else {
            clean.push('_');
        }
        previous = Some(c);
    }
    let name = if clean.starts_with("by_") {
        clean
    } else {
        format!("by_{clean}")
    };
    Ident::new(&name, span)
}
