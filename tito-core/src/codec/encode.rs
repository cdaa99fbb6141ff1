//! Encoding: append one component to a key, in either direction.

use super::{CodecError, Direction, EXACT_LIMIT, KeyValue, Number, tag};

/// Inverts the bytes appended since `start` when the component is descending.
fn finish(out: &mut [u8], start: usize, dir: Direction) {
    if dir == Direction::Desc
        && let Some(component) = out.get_mut(start..)
    {
        component.iter_mut().for_each(|b| *b = !*b);
    }
}

/// The 8-byte form of a float whose unsigned byte order is the numeric order.
pub(crate) fn ordered_f64(v: f64) -> [u8; 8] {
    let v = if v == 0.0 { 0.0 } else { v };
    let bits = v.to_bits();
    let ordered = if bits >> 63 == 0 {
        bits ^ (1 << 63)
    } else {
        !bits
    };
    ordered.to_be_bytes()
}

/// Appends NULL.
pub fn put_null(out: &mut Vec<u8>, dir: Direction) {
    let start = out.len();
    out.push(tag::NULL);
    finish(out, start, dir);
}

/// Appends a bool (false sorts first).
pub fn put_bool(out: &mut Vec<u8>, v: bool, dir: Direction) {
    let start = out.len();
    out.push(if v { tag::TRUE } else { tag::FALSE });
    finish(out, start, dir);
}

/// Appends a signed integer.
pub fn put_i64(out: &mut Vec<u8>, v: i64, dir: Direction) {
    let start = out.len();
    out.push(tag::INT);
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
    finish(out, start, dir);
}

/// Appends an unsigned integer.
pub fn put_u64(out: &mut Vec<u8>, v: u64, dir: Direction) {
    let start = out.len();
    out.push(tag::UINT);
    out.extend_from_slice(&v.to_be_bytes());
    finish(out, start, dir);
}

/// Appends a float; `-0.0` is stored as `0.0`, NaN is refused.
pub fn put_f64(out: &mut Vec<u8>, v: f64, dir: Direction) -> Result<(), CodecError> {
    if v.is_nan() {
        return Err(CodecError::NaN);
    }
    let start = out.len();
    out.push(tag::FLOAT);
    out.extend_from_slice(&ordered_f64(v));
    finish(out, start, dir);
    Ok(())
}

/// Appends a number ordered numerically across integers and floats; NaN is refused.
pub fn put_number(out: &mut Vec<u8>, v: Number, dir: Direction) -> Result<(), CodecError> {
    let approx = match v {
        Number::Int(i) => i as f64,
        Number::UInt(u) => u as f64,
        Number::Float(f) if f.is_nan() => return Err(CodecError::NaN),
        Number::Float(f) => f,
    };
    let start = out.len();
    out.push(tag::NUMBER);
    out.extend_from_slice(&ordered_f64(approx));
    if approx.abs() >= EXACT_LIMIT {
        // Beyond 2^53 floats are integral and neighbouring integers share an f64: the exact
        // value breaks the tie.
        let exact = match v {
            Number::Int(i) => i128::from(i),
            Number::UInt(u) => i128::from(u),
            Number::Float(f) if f >= 1.7e38 => i128::MAX,
            Number::Float(f) if f <= -1.7e38 => i128::MIN,
            Number::Float(f) => f as i128,
        };
        out.extend_from_slice(&((exact as u128) ^ (1 << 127)).to_be_bytes());
    }
    finish(out, start, dir);
    Ok(())
}

fn put_escaped(out: &mut Vec<u8>, type_tag: u8, v: &[u8], dir: Direction) {
    let start = out.len();
    out.reserve(v.len() + 3);
    out.push(type_tag);
    for (i, run) in v.split(|&b| b == 0).enumerate() {
        if i > 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        }
        out.extend_from_slice(run);
    }
    out.extend_from_slice(&[0x00, 0x01]);
    finish(out, start, dir);
}

/// Appends raw bytes (any byte allowed).
pub fn put_bytes(out: &mut Vec<u8>, v: &[u8], dir: Direction) {
    put_escaped(out, tag::BYTES, v, dir);
}

/// Appends a string, compared by its UTF-8 bytes (case preserved).
pub fn put_str(out: &mut Vec<u8>, v: &str, dir: Direction) {
    put_escaped(out, tag::STRING, v.as_bytes(), dir);
}

/// Appends any key value.
pub fn put_value(out: &mut Vec<u8>, v: &KeyValue, dir: Direction) -> Result<(), CodecError> {
    match v {
        KeyValue::Null => put_null(out, dir),
        KeyValue::Bool(b) => put_bool(out, *b, dir),
        KeyValue::Number(n) => put_number(out, *n, dir)?,
        KeyValue::Int(i) => put_i64(out, *i, dir),
        KeyValue::UInt(u) => put_u64(out, *u, dir),
        KeyValue::Float(f) => put_f64(out, *f, dir)?,
        KeyValue::Bytes(b) => put_bytes(out, b, dir),
        KeyValue::Str(s) => put_str(out, s, dir),
    }
    Ok(())
}

/// Encodes a tuple of ascending components.
pub fn encode_tuple(values: &[KeyValue]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(values.len() * 10);
    for v in values {
        put_value(&mut out, v, Direction::Asc)?;
    }
    Ok(out)
}
