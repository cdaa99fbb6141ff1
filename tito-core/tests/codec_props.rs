//! Properties of the key codec: round trips, order preservation for same-shaped tuples in both
//! directions, exact prefix scans, and no panic on arbitrary bytes.

use std::cmp::Ordering;

use proptest::prelude::*;
use tito_core::codec::{
    Direction, KeyValue, Number, decode_tuple, decode_tuple_with, put_value, take_value,
};

/// The shape of a component: its type (values of one shape are comparable).
#[derive(Debug, Clone, Copy)]
enum Shape {
    Null,
    Bool,
    Number,
    Int,
    UInt,
    Float,
    Bytes,
    Str,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Null),
        Just(Shape::Bool),
        Just(Shape::Number),
        Just(Shape::Int),
        Just(Shape::UInt),
        Just(Shape::Float),
        Just(Shape::Bytes),
        Just(Shape::Str),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("not NaN", |f| !f.is_nan()),
        (-100i32..100).prop_map(f64::from),
        Just(9_007_199_254_740_992.0),
        Just(-0.0),
    ]
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::Int),
        any::<u64>().prop_map(Number::UInt),
        (-5i64..5).prop_map(Number::Int),
        ((1i64 << 53) - 3..(1i64 << 53) + 3).prop_map(Number::Int),
        float().prop_map(Number::Float),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a\\x00\\x01/]{0,6}", any::<String>()]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8)], 0..6),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

fn value_of(shape: Shape) -> BoxedStrategy<KeyValue> {
    match shape {
        Shape::Null => Just(KeyValue::Null).boxed(),
        Shape::Bool => any::<bool>().prop_map(KeyValue::Bool).boxed(),
        Shape::Number => number().prop_map(KeyValue::Number).boxed(),
        Shape::Int => any::<i64>().prop_map(KeyValue::Int).boxed(),
        Shape::UInt => any::<u64>().prop_map(KeyValue::UInt).boxed(),
        Shape::Float => float().prop_map(KeyValue::Float).boxed(),
        Shape::Bytes => bytes().prop_map(KeyValue::Bytes).boxed(),
        Shape::Str => text().prop_map(KeyValue::Str).boxed(),
    }
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Asc), Just(Direction::Desc)]
}

/// Natural order of two values of the same shape.
fn natural(a: &KeyValue, b: &KeyValue) -> Ordering {
    match (a, b) {
        (KeyValue::Null, KeyValue::Null) => Ordering::Equal,
        (KeyValue::Bool(a), KeyValue::Bool(b)) => a.cmp(b),
        (KeyValue::Number(a), KeyValue::Number(b)) => a.total_cmp(b),
        (KeyValue::Int(a), KeyValue::Int(b)) => a.cmp(b),
        (KeyValue::UInt(a), KeyValue::UInt(b)) => a.cmp(b),
        (KeyValue::Float(a), KeyValue::Float(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
        (KeyValue::Bytes(a), KeyValue::Bytes(b)) => a.cmp(b),
        (KeyValue::Str(a), KeyValue::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        _ => unreachable!("same shape"),
    }
}

fn encode(values: &[KeyValue], dirs: &[Direction]) -> Vec<u8> {
    let mut out = Vec::new();
    for (v, d) in values.iter().zip(dirs) {
        put_value(&mut out, v, *d).unwrap();
    }
    out
}

/// Two tuples of one random shape, with one random direction per component.
fn tuple_pair() -> impl Strategy<Value = (Vec<KeyValue>, Vec<KeyValue>, Vec<Direction>)> {
    proptest::collection::vec((shape(), direction()), 1..4).prop_flat_map(|spec| {
        let dirs: Vec<Direction> = spec.iter().map(|(_, d)| *d).collect();
        let a: Vec<_> = spec.iter().map(|(s, _)| value_of(*s)).collect();
        let b: Vec<_> = spec.iter().map(|(s, _)| value_of(*s)).collect();
        (a, b, Just(dirs))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_every_type((values, _, dirs) in tuple_pair()) {
        let bytes = encode(&values, &dirs);
        prop_assert_eq!(decode_tuple_with(&bytes, &dirs).unwrap(), values.clone());
        if dirs.iter().all(|d| *d == Direction::Asc) {
            prop_assert_eq!(decode_tuple(&bytes).unwrap(), values);
        }
    }

    #[test]
    fn byte_order_is_value_order((a, b, dirs) in tuple_pair()) {
        let expected = a
            .iter()
            .zip(&b)
            .zip(&dirs)
            .map(|((x, y), d)| match d {
                Direction::Asc => natural(x, y),
                Direction::Desc => natural(x, y).reverse(),
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal);
        prop_assert_eq!(encode(&a, &dirs).cmp(&encode(&b, &dirs)), expected);
    }

    #[test]
    fn prefix_scans_return_exactly_the_tuples_with_that_prefix(
        tuples in proptest::collection::vec(
            (value_of(Shape::Str), value_of(Shape::Number), value_of(Shape::Bytes)), 1..40),
        pick in any::<prop::sample::Index>(),
    ) {
        let dirs = [Direction::Asc; 3];
        let mut encoded: Vec<(Vec<u8>, Vec<KeyValue>)> = tuples
            .into_iter()
            .map(|(a, b, c)| {
                let t = vec![a, b, c];
                (encode(&t, &dirs), t)
            })
            .collect();
        encoded.sort_by(|x, y| x.0.cmp(&y.0));
        let chosen = &encoded[pick.index(encoded.len())].1;
        let prefix_values = &chosen[..2];
        let prefix = encode(prefix_values, &dirs);
        let end = prefix_end(&prefix);
        let scanned: Vec<&Vec<KeyValue>> = encoded
            .iter()
            .filter(|(k, _)| *k >= prefix && end.as_ref().is_none_or(|e| k < e))
            .map(|(_, t)| t)
            .collect();
        let expected: Vec<&Vec<KeyValue>> = encoded
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t[..2] == *prefix_values)
            .collect();
        prop_assert_eq!(scanned, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = decode_tuple(&input);
        let _ = take_value(&input, Direction::Desc);
        let _ = tito_core::codec::display_key(&input);
    }
}

fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
