//! Opaque page cursors.
//!
//! A cursor holds the exact key of the last row returned; the next page starts right after it
//! (or right before it, in reverse), so no row is skipped or repeated however keys look. It is
//! bound to its query (index, values and range) and direction, and checksummed: a cursor from
//! another query, or an altered one, is refused. Cursors are not encrypted: they reveal the
//! index values of the last row.

use crate::error::{Result, TitoError};

const CURSOR_V1: u8 = 1;

/// FNV-1a 64 over several byte strings, each length-prefixed so boundaries count.
pub(crate) fn fingerprint(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in (part.len() as u64).to_be_bytes().iter().chain(part.iter()) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(PRIME);
        }
    }
    hash
}

/// Encodes a cursor continuing after `last_key` for the query with fingerprint `query`.
pub(crate) fn encode(query: u64, reverse: bool, last_key: &[u8]) -> String {
    let mut payload = Vec::with_capacity(18 + last_key.len());
    payload.push(CURSOR_V1);
    payload.push(u8::from(reverse));
    payload.extend_from_slice(&query.to_be_bytes());
    payload.extend_from_slice(last_key);
    let check = fingerprint(&[&payload]);
    payload.extend_from_slice(&check.to_be_bytes());
    hex(&payload)
}

/// Lower-case hex of `bytes`, without a `format!` per byte (cursors are made on every page).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The value of one hex digit.
fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Decodes a cursor for the query with fingerprint `query` run in direction `reverse`, returning
/// the last key of the previous page.
pub(crate) fn decode(cursor: &str, query: u64, reverse: bool) -> Result<Vec<u8>> {
    let invalid = |reason: &str| TitoError::InvalidCursor(reason.to_string());
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return Err(invalid("not a tito cursor"));
    }
    let bytes = cursor
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| invalid("not a tito cursor"))?;
    if bytes.len() < 18 {
        return Err(invalid("truncated"));
    }
    let (payload, check) = bytes.split_at(bytes.len() - 8);
    if fingerprint(&[payload]).to_be_bytes() != check {
        return Err(invalid("checksum mismatch: the cursor was altered"));
    }
    if payload[0] != CURSOR_V1 {
        return Err(invalid("unknown cursor version"));
    }
    if payload[1] != u8::from(reverse) {
        return Err(invalid("the cursor was made for the other direction"));
    }
    if payload[2..10] != query.to_be_bytes() {
        return Err(invalid("the cursor belongs to another query"));
    }
    Ok(payload[10..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = encode(7, false, b"k\0ey");
        assert_eq!(decode(&c, 7, false).unwrap(), b"k\0ey");
    }

    #[test]
    fn every_byte_survives_the_hex_form() {
        let key: Vec<u8> = (0..=255).collect();
        let c = encode(u64::MAX, true, &key);
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(decode(&c, u64::MAX, true).unwrap(), key);
        assert_eq!(decode(&c.to_uppercase(), u64::MAX, true).unwrap(), key);
    }

    #[test]
    fn refuses_other_query_direction_and_tampering() {
        let c = encode(7, false, b"key");
        assert!(decode(&c, 8, false).is_err());
        assert!(decode(&c, 7, true).is_err());
        let mut tampered = c.clone().into_bytes();
        let last = tampered.len() - 20;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        assert!(decode(&String::from_utf8(tampered).unwrap(), 7, false).is_err());
        for garbage in ["", "zz", "abc", "é", "00", "+f"] {
            assert!(matches!(
                decode(garbage, 7, false),
                Err(TitoError::InvalidCursor(_))
            ));
        }
    }
}
