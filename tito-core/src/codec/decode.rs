//! Decoding: read components back from key bytes, never panicking on malformed input.

use super::{CodecError, Direction, EXACT_LIMIT, KeyValue, Number, tag};

/// Reads bytes of one component, undoing the inversion of descending components.
struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    mask: u8,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = self
            .input
            .get(self.pos)
            .ok_or(CodecError::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b ^ self.mask)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte()?;
        }
        Ok(out)
    }

    fn escaped(&mut self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        loop {
            let b = self.byte()?;
            if b != 0 {
                out.push(b);
                continue;
            }
            let at = self.pos;
            match self.byte()? {
                0xFF => out.push(0),
                0x01 => return Ok(out),
                _ => return Err(CodecError::InvalidEscape { at }),
            }
        }
    }
}

fn unordered_f64(bytes: [u8; 8]) -> f64 {
    let ordered = u64::from_be_bytes(bytes);
    let bits = if ordered >> 63 == 1 {
        ordered ^ (1 << 63)
    } else {
        !ordered
    };
    f64::from_bits(bits)
}

fn read_number(r: &mut Reader<'_>) -> Result<Number, CodecError> {
    let approx = unordered_f64(r.array::<8>()?);
    if approx.is_nan() {
        return Err(CodecError::InvalidNumber);
    }
    if approx.abs() < EXACT_LIMIT {
        let whole = approx.fract() == 0.0;
        return Ok(if whole {
            Number::Int(approx as i64)
        } else {
            Number::Float(approx)
        });
    }
    let exact = (u128::from_be_bytes(r.array::<16>()?) ^ (1 << 127)) as i128;
    let number = if let Ok(i) = i64::try_from(exact) {
        Number::Int(i)
    } else if let Ok(u) = u64::try_from(exact) {
        Number::UInt(u)
    } else {
        Number::Float(approx)
    };
    let consistent = match number {
        Number::Int(i) => i as f64 == approx,
        Number::UInt(u) => u as f64 == approx,
        Number::Float(_) => true,
    };
    if !consistent {
        return Err(CodecError::InvalidNumber);
    }
    Ok(number)
}

/// Decodes one component from the front of `input`, returning it and the bytes it used.
pub fn take_value(input: &[u8], dir: Direction) -> Result<(KeyValue, usize), CodecError> {
    let mut r = Reader {
        input,
        pos: 0,
        mask: if dir == Direction::Desc { 0xFF } else { 0 },
    };
    let value = match r.byte()? {
        tag::NULL => KeyValue::Null,
        tag::FALSE => KeyValue::Bool(false),
        tag::TRUE => KeyValue::Bool(true),
        tag::NUMBER => KeyValue::Number(read_number(&mut r)?),
        tag::INT => KeyValue::Int((u64::from_be_bytes(r.array()?) ^ (1 << 63)) as i64),
        tag::UINT => KeyValue::UInt(u64::from_be_bytes(r.array()?)),
        tag::FLOAT => {
            let v = unordered_f64(r.array()?);
            if v.is_nan() {
                return Err(CodecError::InvalidNumber);
            }
            KeyValue::Float(v)
        }
        tag::BYTES => KeyValue::Bytes(r.escaped()?),
        tag::STRING => {
            KeyValue::Str(String::from_utf8(r.escaped()?).map_err(|_| CodecError::InvalidUtf8)?)
        }
        other => return Err(CodecError::UnknownTag(other)),
    };
    Ok((value, r.pos))
}

/// Decodes a whole key of ascending components.
pub fn decode_tuple(input: &[u8]) -> Result<Vec<KeyValue>, CodecError> {
    let mut values = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (value, used) = take_value(rest, Direction::Asc)?;
        values.push(value);
        rest = rest.get(used..).unwrap_or_default();
    }
    Ok(values)
}

/// Decodes a whole key whose components have the given directions.
pub fn decode_tuple_with(input: &[u8], dirs: &[Direction]) -> Result<Vec<KeyValue>, CodecError> {
    let mut values = Vec::with_capacity(dirs.len());
    let mut rest = input;
    for dir in dirs {
        let (value, used) = take_value(rest, *dir)?;
        values.push(value);
        rest = rest.get(used..).unwrap_or_default();
    }
    if !rest.is_empty() {
        return Err(CodecError::Truncated {
            at: input.len() - rest.len(),
        });
    }
    Ok(values)
}

/// Renders key bytes readably: decodable components as values, the rest as hex. Never fails.
pub fn display_key(key: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut rest = key;
    while !rest.is_empty() {
        match take_value(rest, Direction::Asc) {
            Ok((value, used)) => {
                parts.push(match value {
                    KeyValue::Null => "null".to_string(),
                    KeyValue::Bool(b) => b.to_string(),
                    KeyValue::Number(n) => n.to_string(),
                    KeyValue::Int(i) => i.to_string(),
                    KeyValue::UInt(u) => u.to_string(),
                    KeyValue::Float(f) => f.to_string(),
                    KeyValue::Bytes(b) => format!("0x{}", hex(&b)),
                    KeyValue::Str(s) => format!("{s:?}"),
                });
                rest = rest.get(used..).unwrap_or_default();
            }
            Err(_) => {
                parts.push(format!("0x{}", hex(rest)));
                break;
            }
        }
    }
    parts.join("/")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
