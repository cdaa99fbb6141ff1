//! The stored form of a record: a version byte, then the record as JSON.
//!
//! JSON is self-describing, so a model may gain fields (with `#[serde(default)]`) or lose them
//! and still read rows written before the change.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::error::{Result, TitoError};
use crate::keyspace;

/// Version byte of the record envelope.
const RECORD_V1: u8 = 1;

/// Encodes a record for storage.
pub(crate) fn encode<T: Serialize + ?Sized>(record: &T) -> Result<Vec<u8>> {
    encode_versioned(RECORD_V1, record)
}

/// The JSON body of a stored record, after its version byte.
pub(crate) fn body<'a>(key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8]> {
    match bytes.split_first() {
        Some((&RECORD_V1, body)) => Ok(body),
        Some((version, _)) => Err(decode_error(
            key,
            format!("unknown record format version {version}"),
        )),
        None => Err(decode_error(key, "empty value".into())),
    }
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

/// Decodes a stored record into its model type.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    decode_json(key, body(key, bytes)?)
}

/// Decodes a stored record into a JSON value.
pub(crate) fn decode_value(key: &[u8], bytes: &[u8]) -> Result<Value> {
    decode(key, bytes)
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
