//! The stored form of a record: a format byte, the model version for versioned models, then
//! the record as JSON.
//!
//! JSON is self-describing, so a model may gain fields (with `#[serde(default)]`) or lose them
//! and still read rows written before the change. A change JSON cannot absorb (a field's type)
//! takes a new model version: rows keep the version they were written with, and the model
//! reads older ones through its conversion chain ([`TitoModelTrait::from_stored`]).

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::TitoModelTrait;
use crate::error::{Result, TitoError};
use crate::keyspace;

/// Format byte of a record written by model version 1 (every model that never declared a
/// version): the JSON follows.
const RECORD_V1: u8 = 1;

/// Format byte of a record written by a later model version: the version as a big-endian `u32`,
/// then the JSON.
const RECORD_VERSIONED: u8 = 2;

/// Encodes a record of model version 1 for storage.
#[cfg(test)]
pub(crate) fn encode<T: Serialize + ?Sized>(record: &T) -> Result<Vec<u8>> {
    encode_record(1, record)
}

/// Encodes a record written by model version `version` for storage. Version 1 keeps the
/// original format, so models that never declare a version store what earlier releases read.
pub(crate) fn encode_record<T: Serialize + ?Sized>(version: u32, record: &T) -> Result<Vec<u8>> {
    match version {
        0 | 1 => encode_after(&[RECORD_V1], record),
        _ => {
            let mut header = [RECORD_VERSIONED; 5];
            header[1..].copy_from_slice(&version.to_be_bytes());
            encode_after(&header, record)
        }
    }
}

/// The model version a stored record was written with, and its JSON.
pub(crate) fn stored<'a>(key: &[u8], bytes: &'a [u8]) -> Result<(u32, &'a [u8])> {
    match bytes.split_first() {
        Some((&RECORD_V1, json)) => Ok((1, json)),
        Some((&RECORD_VERSIONED, rest)) => match rest.split_first_chunk::<4>() {
            Some((version, json)) => Ok((u32::from_be_bytes(*version), json)),
            None => Err(decode_error(key, "truncated record version".into())),
        },
        Some((format, _)) => Err(decode_error(
            key,
            format!("unknown record format version {format}"),
        )),
        None => Err(decode_error(key, "empty value".into())),
    }
}

/// The JSON of a stored record, whatever model version wrote it.
pub(crate) fn body<'a>(key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8]> {
    stored(key, bytes).map(|(_, json)| json)
}

/// How to read the records of one table in the shape of its current model: the version that
/// model writes, and the conversion of records older versions wrote. Hydration uses it for the
/// records of other tables, which it handles as JSON.
#[derive(Debug, Clone)]
pub struct RecordShape {
    table: String,
    version: u32,
    current: fn(u32, &[u8]) -> serde_json::Result<Vec<u8>>,
}

impl RecordShape {
    /// The shape of model `M`'s records.
    pub fn of<M: TitoModelTrait>() -> Self {
        RecordShape {
            table: M::default().get_table_name(),
            version: M::MODEL_VERSION,
            current: |version, json| serde_json::to_vec(&M::from_stored(version, json)?),
        }
    }
}

/// The JSON of the record stored as `bytes` in `table`, in the shape of the table's model in
/// `shapes`: as stored when that model wrote it, converted otherwise. A table missing from
/// `shapes` is read as stored, if model version 1 wrote it.
pub(crate) fn current_json<'a>(
    shapes: &[RecordShape],
    table: &str,
    key: &[u8],
    bytes: &'a [u8],
) -> Result<Cow<'a, [u8]>> {
    let (version, json) = stored(key, bytes)?;
    match shapes.iter().find(|shape| shape.table == table) {
        Some(shape) if shape.version != version => (shape.current)(version, json)
            .map(Cow::Owned)
            .map_err(|e| decode_error(key, e.to_string())),
        None if version != 1 => Err(decode_error(
            key,
            format!("written by version {version} of its model, which this model cannot convert"),
        )),
        _ => Ok(Cow::Borrowed(json)),
    }
}

/// Decodes a stored record into its model type, converting it from the model version that
/// wrote it.
pub(crate) fn decode<T: TitoModelTrait>(key: &[u8], bytes: &[u8]) -> Result<T> {
    let (version, json) = stored(key, bytes)?;
    T::from_stored(version, json).map_err(|e| decode_error(key, e.to_string()))
}

/// The error of a record written by a model version that version `model` cannot read.
pub(crate) fn unreadable_version(stored: u32, model: u32) -> serde_json::Error {
    let reason = if stored > model {
        format!("written by version {stored} of its model; this build knows versions up to {model}")
    } else {
        format!(
            "written by version {stored} of its model; version {model} declares no conversion \
             from it (`from`)"
        )
    };
    serde::de::Error::custom(reason)
}

/// Encodes `value` as the version byte `version`, then JSON: the envelope of every JSON value
/// tito stores (records, events, table schemas).
pub(crate) fn encode_versioned<T: Serialize + ?Sized>(version: u8, value: &T) -> Result<Vec<u8>> {
    encode_after(&[version], value)
}

/// Encodes `value` as JSON after the bytes `header`.
pub(crate) fn encode_after<T: Serialize + ?Sized>(header: &[u8], value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(header.len() + 256);
    out.extend_from_slice(header);
    serde_json::to_writer(&mut out, value).map_err(|e| TitoError::Serialize(e.to_string()))?;
    Ok(out)
}

/// Decodes the JSON `body` of the value stored at `key`.
pub(crate) fn decode_json<T: DeserializeOwned>(key: &[u8], body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| decode_error(key, e.to_string()))
}

/// Decodes what [`encode_versioned`] wrote with `version`; `what` names the value in errors.
pub(crate) fn decode_versioned<T: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
    version: u8,
    what: &str,
) -> Result<T> {
    match bytes.split_first() {
        Some((&v, body)) if v == version => decode_json(key, body),
        _ => Err(decode_error(key, format!("unknown {what} format"))),
    }
}

/// Decodes a stored record into a JSON value, as stored.
pub(crate) fn decode_value(key: &[u8], bytes: &[u8]) -> Result<Value> {
    decode_json(key, body(key, bytes)?)
}

/// The top-level number field `name` of a stored record, without decoding the rest; `None` when
/// the record has no such field.
pub(crate) fn top_level_u64(key: &[u8], bytes: &[u8], name: &str) -> Result<Option<u64>> {
    let mut json = serde_json::Deserializer::from_slice(body(key, bytes)?);
    NumberField(name)
        .deserialize(&mut json)
        .map_err(|e| decode_error(key, format!("field `{name}`: {e}")))
}

/// Finds one top-level number field of a JSON object.
struct NumberField<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for NumberField<'_> {
    type Value = Option<u64>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NumberField<'_> {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut found = None;
        while let Some(field) = map.next_key::<Cow<'de, str>>()? {
            if field == self.0 {
                found = Some(map.next_value::<u64>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The top-level fields of a stored JSON object, as raw text.
pub(crate) type Fields<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// Reads a JSON object's top-level fields without decoding their values.
pub(crate) struct TopLevel;

impl<'de> DeserializeSeed<'de> for TopLevel {
    type Value = Fields<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Fields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Fields<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            fields.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(fields)
    }
}

/// Converts a JSON value (e.g. after hydration) into the model type.
pub(crate) fn from_value<T: DeserializeOwned>(key: &[u8], value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| decode_error(key, e.to_string()))
}

/// A decode error naming the key.
pub(crate) fn decode_error(key: &[u8], reason: String) -> TitoError {
    TitoError::Decode {
        key: keyspace::display_key(key),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_carries_the_model_version() {
        let first = encode_record(1, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(
            first, b"\x01{\"a\":1}",
            "version 1 keeps the original format"
        );
        assert_eq!(stored(b"k", &first).unwrap(), (1, &b"{\"a\":1}"[..]));

        let third = encode_record(3, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(&third[..5], b"\x02\x00\x00\x00\x03");
        assert_eq!(stored(b"k", &third).unwrap(), (3, &b"{\"a\":1}"[..]));

        for bad in [&b""[..], b"\x02\x00\x00", b"\x09{}"] {
            assert!(matches!(stored(b"k", bad), Err(TitoError::Decode { .. })));
        }
    }
}
