//! Serialized field names. Relationship and index paths name fields of the serialized record, so
//! the derive follows serde's `rename` and `rename_all` (serialize side) when spelling them.

use ident_case::RenameRule;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, LitStr};

/// The struct-level serde naming rule.
pub struct SerdeNames {
    rename_all: RenameRule,
}

impl SerdeNames {
    /// Reads `#[serde(rename_all = "..")]` from the struct's attributes.
    pub fn of(attrs: &[Attribute]) -> SerdeNames {
        let rule = serde_value(attrs, "rename_all")
            .and_then(|rule| rule.parse().ok())
            .unwrap_or(RenameRule::None);
        SerdeNames { rename_all: rule }
    }
}

/// The name `field` has in the serialized record.
pub fn json_name(field: &Ident, attrs: &[Attribute], serde: &SerdeNames) -> String {
    let name = field.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    serde_value(attrs, "rename").unwrap_or_else(|| serde.rename_all.apply_to_field(name))
}

/// Every name `field` is read under: its serialized name, a deserialize-side `rename` and each
/// `alias`; `None` for a `flatten`ed field, whose names cannot be known.
pub fn read_names(field: &Ident, attrs: &[Attribute], serde: &SerdeNames) -> Option<Vec<String>> {
    let mut names = vec![json_name(field, attrs, serde)];
    let mut flatten = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("flatten") {
                flatten = true;
                Ok(())
            } else if meta.path.is_ident("alias") {
                names.push(meta.value()?.parse::<LitStr>()?.value());
                Ok(())
            } else if meta.path.is_ident("rename") && !meta.input.peek(syn::Token![=]) {
                meta.parse_nested_meta(|inner| {
                    if inner.path.is_ident("deserialize") {
                        names.push(inner.value()?.parse::<LitStr>()?.value());
                    } else {
                        skip(&inner)?;
                    }
                    Ok(())
                })
            } else {
                skip(&meta)
            }
        });
    }
    (!flatten).then_some(names)
}

/// The serialize-side value of `key` in `#[serde(..)]` attributes: `key = ".."` or
/// `key(serialize = "..")`. Malformed serde attributes are left for serde to report.
fn serde_value(attrs: &[Attribute], key: &str) -> Option<String> {
    let mut found = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(key) {
                if meta.input.peek(syn::Token![=]) {
                    found = Some(meta.value()?.parse::<LitStr>()?.value());
                } else {
                    meta.parse_nested_meta(|inner| {
                        if inner.path.is_ident("serialize") {
                            found = Some(inner.value()?.parse::<LitStr>()?.value());
                        } else {
                            skip(&inner)?;
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            } else {
                skip(&meta)
            }
        });
    }
    found
}

/// Consumes the value of a serde option this module does not read.
fn skip(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip(&inner))?;
    }
    Ok(())
}
