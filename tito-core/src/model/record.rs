//! The stored form of a record: a version byte, then the record as JSON.
//!
//! JSON is self-describing, so a model may gain fields (with `#[serde(default)]`) or lose them
//! and still read rows written before the change.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Result, TitoError};
use crate::keyspace;

/// Version byte of the record envelope.
const RECORD_V1: u8 = 1;

/// Encodes a record for storage.
pub(crate) fn encode<T: Serialize + ?Sized>(record: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.push(RECORD_V1);
    serde_json::to_writer(&mut out, record).map_err(|e| TitoError::Serialize(e.to_string()))?;
    Ok(out)
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

/// Decodes a stored record into its model type.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(body(key, bytes)?).map_err(|e| decode_error(key, e.to_string()))
}

/// Decodes a stored record into a JSON value.
pub(crate) fn decode_value(key: &[u8], bytes: &[u8]) -> Result<Value> {
    decode(key, bytes)
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
