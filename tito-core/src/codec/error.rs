//! Codec errors.

/// Why a value cannot be encoded or bytes cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// NaN has no place in an order.
    #[error("NaN cannot be part of a key")]
    NaN,
    /// The input ends inside a component.
    #[error("truncated key component at byte {at}")]
    Truncated {
        /// Offset where more bytes were expected.
        at: usize,
    },
    /// The type tag is not one of the format's tags.
    #[error("unknown type tag 0x{0:02x}")]
    UnknownTag(u8),
    /// A string component is not valid UTF-8.
    #[error("string component is not valid UTF-8")]
    InvalidUtf8,
    /// A 0x00 byte inside bytes or a string is followed by neither 0xFF nor 0x01.
    #[error("invalid escape at byte {at}")]
    InvalidEscape {
        /// Offset of the bad escape.
        at: usize,
    },
    /// A number's tiebreak does not match its approximate value.
    #[error("inconsistent number encoding")]
    InvalidNumber,
}
