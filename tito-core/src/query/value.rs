//! Values given to queries, checked and encoded against the index field they match.

use crate::codec::{self, Direction, Number};
use crate::error::{Result, TitoError};
use crate::model::{TitoIndexBlockType, TitoIndexField};
use crate::plan::parse_number;

/// A value matched against an index field.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// Text: used as is for string fields, parsed for number fields.
    Text(String),
    /// A number: for number fields.
    Number(Number),
}

impl QueryValue {
    /// Appends the encoded value for `field` to `key`.
    pub(crate) fn encode(
        &self,
        key: &mut Vec<u8>,
        field: &TitoIndexField,
        index: &str,
    ) -> Result<()> {
        let invalid = |what: String| {
            TitoError::InvalidQuery(format!("index `{index}` field `{}`: {what}", field.name))
        };
        match (field.r#type, self) {
            (TitoIndexBlockType::String, QueryValue::Text(text)) => {
                codec::put_str(key, text, Direction::Asc);
                Ok(())
            }
            (TitoIndexBlockType::String, QueryValue::Number(n)) => {
                Err(invalid(format!("expects a string, got the number {n}")))
            }
            (TitoIndexBlockType::Number, value) => {
                let number = match value {
                    QueryValue::Number(n) => *n,
                    QueryValue::Text(text) => parse_number(text)
                        .ok_or_else(|| invalid(format!("`{text}` is not a number")))?,
                };
                codec::put_number(key, number, Direction::Asc).map_err(|e| invalid(e.to_string()))
            }
        }
    }
}

impl From<&str> for QueryValue {
    fn from(value: &str) -> Self {
        QueryValue::Text(value.to_string())
    }
}

impl From<String> for QueryValue {
    fn from(value: String) -> Self {
        QueryValue::Text(value)
    }
}

impl From<&String> for QueryValue {
    fn from(value: &String) -> Self {
        QueryValue::Text(value.clone())
    }
}

impl From<bool> for QueryValue {
    fn from(value: bool) -> Self {
        QueryValue::Text(value.to_string())
    }
}

impl From<uuid::Uuid> for QueryValue {
    fn from(value: uuid::Uuid) -> Self {
        QueryValue::Text(value.to_string())
    }
}

macro_rules! number_query_value {
    ($variant:ident, $wide:ty: $($t:ty),*) => {$(
        impl From<$t> for QueryValue {
            fn from(value: $t) -> Self {
                QueryValue::Number(Number::$variant(<$wide>::from(value)))
            }
        }
    )*};
}

number_query_value!(Int, i64: i8, i16, i32, i64);
number_query_value!(UInt, u64: u8, u16, u32, u64);
number_query_value!(Float, f64: f32, f64);

impl From<Number> for QueryValue {
    fn from(value: Number) -> Self {
        QueryValue::Number(value)
    }
}
