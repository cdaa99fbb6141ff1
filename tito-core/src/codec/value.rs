//! Owned key values and the exact numeric comparison of [`Number`].

use std::cmp::Ordering;
use std::fmt;

/// A number for NUMBER components; integers keep full precision.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float (never NaN once encoded).
    Float(f64),
}

impl Number {
    /// Compares numerically and exactly (no lossy casts); NaN sorts after everything.
    pub fn total_cmp(&self, other: &Number) -> Ordering {
        use Number::*;
        match (*self, *other) {
            (Int(a), Int(b)) => a.cmp(&b),
            (UInt(a), UInt(b)) => a.cmp(&b),
            (Int(a), UInt(b)) => i128::from(a).cmp(&i128::from(b)),
            (UInt(a), Int(b)) => i128::from(a).cmp(&i128::from(b)),
            (Float(a), Float(b)) => a
                .partial_cmp(&b)
                .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan())),
            (Float(a), Int(b)) => cmp_float_int(a, i128::from(b)),
            (Float(a), UInt(b)) => cmp_float_int(a, i128::from(b)),
            (Int(a), Float(b)) => cmp_float_int(b, i128::from(a)).reverse(),
            (UInt(a), Float(b)) => cmp_float_int(b, i128::from(a)).reverse(),
        }
    }
}

/// Compares a float with an integer exactly.
fn cmp_float_int(f: f64, i: i128) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    // Every i64/u64 lies strictly inside (-2^65, 2^65).
    const BOUND: f64 = 36_893_488_147_419_103_232.0;
    if f >= BOUND {
        return Ordering::Greater;
    }
    if f <= -BOUND {
        return Ordering::Less;
    }
    let floor = f.floor();
    // |floor| < 2^65, so the cast is exact.
    let whole = floor as i128;
    match whole.cmp(&i) {
        Ordering::Equal if f > floor => Ordering::Greater,
        other => other,
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        self.total_cmp(other) == Ordering::Equal
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.total_cmp(other))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(v) => v.fmt(f),
            Number::UInt(v) => v.fmt(f),
            Number::Float(v) => v.fmt(f),
        }
    }
}

/// One key component, owned.
#[derive(Debug, Clone)]
pub enum KeyValue {
    /// The null value; sorts before every other type.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number compared numerically across integer and float inputs.
    Number(Number),
    /// A signed 64-bit integer.
    Int(i64),
    /// An unsigned 64-bit integer.
    UInt(u64),
    /// A 64-bit float.
    Float(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A UTF-8 string, compared by bytes.
    Str(String),
}

impl PartialEq for KeyValue {
    fn eq(&self, other: &KeyValue) -> bool {
        use KeyValue::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Number(a), Number(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (UInt(a), UInt(b)) => a == b,
            (Float(a), Float(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Str(a), Str(b)) => a == b,
            _ => false,
        }
    }
}
