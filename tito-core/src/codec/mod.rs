//! The order-preserving key codec.
//!
//! Key components (numbers, strings, bytes, bools, null) are encoded so that comparing the bytes
//! of two encoded tuples gives the same answer as comparing the values. Each component is a type
//! tag and a prefix-free payload, so components concatenate without separators and a tuple's
//! encoding is a byte prefix of the encoding of every longer tuple starting with it. A
//! descending component is the ascending encoding with every bit inverted.
//!
//! The byte format is specified in `docs/key-format.md`; this module transcribes it.

mod decode;
mod encode;
mod error;
mod value;

#[cfg(test)]
mod tests;

pub use decode::{decode_tuple, decode_tuple_with, display_key, take_value};
pub use encode::{
    encode_tuple, put_bool, put_bytes, put_f64, put_i64, put_null, put_number, put_str, put_u64,
    put_value,
};
pub use error::CodecError;
pub use value::{KeyValue, Number};

/// Version of the byte format described in `docs/key-format.md`.
pub const KEY_FORMAT_VERSION: u32 = 1;

/// Sort direction of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Ascending: smaller values first.
    #[default]
    Asc,
    /// Descending: the ascending encoding with every bit inverted.
    Desc,
}

/// Type tags, in the order types sort when mixed.
pub(crate) mod tag {
    pub const NULL: u8 = 0x01;
    pub const FALSE: u8 = 0x02;
    pub const TRUE: u8 = 0x03;
    pub const NUMBER: u8 = 0x10;
    pub const INT: u8 = 0x14;
    pub const UINT: u8 = 0x15;
    pub const FLOAT: u8 = 0x18;
    pub const BYTES: u8 = 0x20;
    pub const STRING: u8 = 0x21;
}

/// Magnitude from which a NUMBER carries an exact integer tiebreak (2^53).
pub(crate) const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;
