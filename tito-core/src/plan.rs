//! Key plans: which keys a record needs (record, index entries, manifest), and which mutations
//! turn the keys of an old version into those of a new one.

use serde_json::Value;

use crate::codec::{self, Direction, Number};
use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::component::{
    combine_components, number_component, put_number_component, string_component,
};
use crate::model::json_path;
use crate::model::{
    IndexedValues, TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoIndexGenerator,
    TitoIndexValue, TitoModelTrait,
};
use crate::registry::RegisteredIndex;

/// One index entry a record owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub key: Vec<u8>,
    /// The unique index this entry belongs to, if it is unique (its value is then the id).
    pub unique_index: Option<String>,
}

impl IndexEntry {
    /// The value stored at the entry for record `id`: the id in a unique index, else nothing.
    pub fn value(&self, id: &str) -> Vec<u8> {
        match self.unique_index {
            Some(_) => id.as_bytes().to_vec(),
            None => Vec::new(),
        }
    }
}

/// Everything a version of a record writes besides the record itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyPlan {
    pub entries: Vec<IndexEntry>,
}

impl KeyPlan {
    /// Plans the index entries of `record`: from `typed` (the model's
    /// [`typed_index_entries`](TitoModelTrait::typed_index_entries)) when it has them, otherwise
    /// from its serialized form `json` (computed here when not given).
    pub fn of<T: TitoModelTrait>(
        table: &str,
        id: &str,
        record: &T,
        json: Option<&Value>,
        typed: Option<Result<Vec<IndexedValues>>>,
    ) -> Result<KeyPlan> {
        let unique = record.get_unique_indexes();
        let values = match typed {
            Some(values) => values?,
            None => {
                let json = match json {
                    Some(json) => std::borrow::Cow::Borrowed(json),
                    None => std::borrow::Cow::Owned(
                        serde_json::to_value(record)
                            .map_err(|e| TitoError::Serialize(e.to_string()))?,
                    ),
                };
                record
                    .get_indexes()
                    .iter()
                    .filter(|config| config.condition)
                    .map(|config| indexed_values(config, &json))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        let mut plan = KeyPlan {
            entries: Vec::new(),
        };
        for values in values {
            let is_unique = unique.contains(&values.index);
            plan.push(table, id, values, is_unique);
        }
        plan.entries.sort_by(|a, b| a.key.cmp(&b.key));
        plan.entries.dedup_by(|a, b| a.key == b.key);
        Ok(plan)
    }

    /// Adds the entries of `indexes`, which the model does not declare, computed from their
    /// registered definitions and the serialized record `json`.
    pub fn extend_registered(
        &mut self,
        table: &str,
        id: &str,
        json: &Value,
        indexes: &[&RegisteredIndex],
    ) -> Result<()> {
        for index in indexes {
            let config = TitoIndexConfig {
                condition: true,
                name: index.name.clone(),
                fields: index.field_defs(),
                custom_generator: None,
            };
            self.push(table, id, indexed_values(&config, json)?, index.unique);
        }
        self.entries.sort_by(|a, b| a.key.cmp(&b.key));
        self.entries.dedup_by(|a, b| a.key == b.key);
        Ok(())
    }

    /// Adds one entry per tuple of `values`, unsorted.
    fn push(&mut self, table: &str, id: &str, values: IndexedValues, is_unique: bool) {
        let IndexedValues { index, tuples } = values;
        let mut prefix = keyspace::index_prefix(table, &index, is_unique);
        let unique_index = is_unique.then_some(index);
        let mut tuples = tuples.into_iter().peekable();
        while let Some(tuple) = tuples.next() {
            // The last entry (usually the only one) takes over the prefix's buffer.
            let mut key = match tuples.peek() {
                Some(_) => prefix.clone(),
                None => std::mem::take(&mut prefix),
            };
            key.extend_from_slice(&tuple);
            self.entries.push(IndexEntry {
                key: keyspace::finish_index_key(key, id, is_unique),
                unique_index: unique_index.clone(),
            });
        }
    }

    /// The keys of the entries, for the manifest.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.entries.iter().map(|e| e.key.clone()).collect()
    }

    /// The manifest listing the entries' keys.
    pub fn manifest(&self) -> Vec<u8> {
        encode_manifest(self.entries.iter().map(|e| e.key.as_slice()))
    }
}

/// The entries of one index read from a serialized record by field name.
fn indexed_values(config: &TitoIndexConfig, json: &Value) -> Result<IndexedValues> {
    if let Some(generator) = &config.custom_generator {
        return generated_values(config, generator);
    }
    let per_field: Vec<Vec<&Value>> = (config.fields.iter())
        .map(|field| json_path::values_at(json, &field.name))
        .collect();
    // One value per field, the common case, is one tuple encoded in place.
    let tuples = if per_field.iter().all(|values| values.len() == 1) {
        let mut tuple = Vec::with_capacity(64);
        for (field, values) in config.fields.iter().zip(&per_field) {
            put_json_component(&mut tuple, &config.name, field, values[0])?;
        }
        vec![tuple]
    } else {
        let components = (config.fields.iter().zip(&per_field))
            .map(|(field, values)| {
                (values.iter())
                    .map(|value| {
                        let mut component = Vec::new();
                        put_json_component(&mut component, &config.name, field, value)?;
                        Ok(component)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        combine_components(&components)?
    };
    Ok(IndexedValues {
        index: config.name.clone(),
        tuples,
    })
}

/// The entries of an index whose values come from its custom generator.
fn generated_values(
    config: &TitoIndexConfig,
    generator: &TitoIndexGenerator,
) -> Result<IndexedValues> {
    let mut tuples = Vec::new();
    for entry in generator.generate() {
        if entry.len() != config.fields.len() {
            return Err(TitoError::Serialize(format!(
                "index `{}`: the generator produced {} values for {} fields",
                config.name,
                entry.len(),
                config.fields.len()
            )));
        }
        let mut tuple = Vec::new();
        for (value, field) in entry.iter().zip(&config.fields) {
            tuple.extend(generated_component(&config.name, field.r#type, value)?);
        }
        tuples.push(tuple);
    }
    Ok(IndexedValues {
        index: config.name.clone(),
        tuples,
    })
}

/// Appends a JSON value to `out` as a component of index field `field`.
fn put_json_component(
    out: &mut Vec<u8>,
    index: &str,
    field: &TitoIndexField,
    value: &Value,
) -> Result<()> {
    let text = |out: &mut Vec<u8>, s: &str| codec::put_str(out, s, Direction::Asc);
    match (field.r#type, value) {
        (TitoIndexBlockType::String, Value::String(s)) => text(out, s),
        (TitoIndexBlockType::String, Value::Bool(b)) => {
            text(out, if *b { "true" } else { "false" })
        }
        (TitoIndexBlockType::String, Value::Number(n)) => text(out, &n.to_string()),
        (TitoIndexBlockType::Number, Value::Number(n)) => {
            put_number_component(out, json_number(n))?
        }
        (TitoIndexBlockType::Number, Value::String(s)) => {
            let number = parse_number(s).ok_or_else(|| {
                TitoError::Serialize(format!(
                    "index `{index}` field `{}`: `{s}` is not a number",
                    field.name
                ))
            })?;
            put_number_component(out, number)?
        }
        (ty, other) => {
            return Err(TitoError::Serialize(format!(
                "index `{index}` field `{}`: cannot index {other} as {ty:?}",
                field.name
            )));
        }
    }
    Ok(())
}

fn generated_component(
    index: &str,
    ty: TitoIndexBlockType,
    value: &TitoIndexValue,
) -> Result<Vec<u8>> {
    match (ty, value) {
        (TitoIndexBlockType::String, TitoIndexValue::String(s)) => Ok(string_component(s)),
        (TitoIndexBlockType::Number, TitoIndexValue::Int(v)) => number_component(Number::Int(*v)),
        (TitoIndexBlockType::Number, TitoIndexValue::UInt(v)) => number_component(Number::UInt(*v)),
        (TitoIndexBlockType::Number, TitoIndexValue::Float(v)) => {
            number_component(Number::Float(*v))
        }
        (ty, value) => Err(TitoError::Serialize(format!(
            "index `{index}`: the generator produced {value:?} for a {ty:?} field"
        ))),
    }
}

fn json_number(n: &serde_json::Number) -> Number {
    if let Some(v) = n.as_i64() {
        Number::Int(v)
    } else if let Some(v) = n.as_u64() {
        Number::UInt(v)
    } else {
        Number::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Parses a number written as text: integers keep full precision.
pub(crate) fn parse_number(text: &str) -> Option<Number> {
    let text = text.trim();
    if let Ok(v) = text.parse::<i64>() {
        return Some(Number::Int(v));
    }
    if let Ok(v) = text.parse::<u64>() {
        return Some(Number::UInt(v));
    }
    text.parse::<f64>()
        .ok()
        .filter(|v| !v.is_nan())
        .map(Number::Float)
}

/// Version byte of the manifest encoding.
const MANIFEST_V1: u8 = 1;

/// Encodes the list of index keys a record owns.
pub(crate) fn encode_manifest<'a>(keys: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let len: usize = keys.clone().map(|k| k.len() + 4).sum();
    let mut out = Vec::with_capacity(1 + len);
    out.push(MANIFEST_V1);
    for key in keys {
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// Decodes a manifest written by [`encode_manifest`].
pub(crate) fn decode_manifest(manifest_key: &[u8], bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let corrupt = |reason: &str| crate::model::record::decode_error(manifest_key, reason.into());
    let Some((&MANIFEST_V1, mut rest)) = bytes.split_first() else {
        return Err(corrupt("unknown manifest version"));
    };
    let mut keys = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated manifest"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt("truncated manifest"));
        }
        let (key, tail) = tail.split_at(len);
        keys.push(key.to_vec());
        rest = tail;
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_rejects_garbage() {
        let keys = vec![b"a".to_vec(), Vec::new(), vec![0, 255, 0]];
        assert_eq!(
            decode_manifest(b"m", &encode_manifest(keys.iter().map(Vec::as_slice))).unwrap(),
            keys
        );
        assert!(decode_manifest(b"m", &[MANIFEST_V1, 0, 0, 0, 9, 1]).is_err());
        assert!(decode_manifest(b"m", &[7]).is_err());
        assert!(decode_manifest(b"m", &[]).is_err());
    }

    #[test]
    fn numbers_parse_exactly() {
        assert_eq!(parse_number("20230101"), Some(Number::Int(20230101)));
        assert_eq!(
            parse_number("18446744073709551615"),
            Some(Number::UInt(u64::MAX))
        );
        assert!(matches!(parse_number("-1.5"), Some(Number::Float(v)) if v == -1.5));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("NaN"), None);
    }
}
