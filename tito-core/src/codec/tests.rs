//! Regression cases for the key codec, including the failures of earlier text key formats.

use super::*;

fn enc(v: KeyValue) -> Vec<u8> {
    encode_tuple(&[v]).unwrap()
}

fn num(v: Number) -> Vec<u8> {
    enc(KeyValue::Number(v))
}

fn s(v: &str) -> Vec<u8> {
    enc(KeyValue::Str(v.to_string()))
}

#[test]
fn minus_three_sorts_after_minus_five() {
    assert!(enc(KeyValue::Int(-5)) < enc(KeyValue::Int(-3)));
    assert!(num(Number::Int(-5)) < num(Number::Int(-3)));
    assert!(num(Number::Int(-1)) < num(Number::Int(0)));
}

#[test]
fn eleven_digit_numbers_sort_after_ten_digit_ones() {
    assert!(enc(KeyValue::Int(9_999_999_999)) < enc(KeyValue::Int(10_000_000_000)));
    assert!(num(Number::Int(9_999_999_999)) < num(Number::Int(10_000_000_000)));
    assert!(enc(KeyValue::UInt(9)) < enc(KeyValue::UInt(10)));
}

#[test]
fn negative_floats_order_and_zeroes_are_equal() {
    let values = [-1.5, -1.25, 0.0, 1e-300, 1.0, f64::INFINITY];
    for w in values.windows(2) {
        assert!(
            enc(KeyValue::Float(w[0])) < enc(KeyValue::Float(w[1])),
            "{w:?}"
        );
        assert!(num(Number::Float(w[0])) < num(Number::Float(w[1])), "{w:?}");
    }
    assert!(enc(KeyValue::Float(f64::NEG_INFINITY)) < enc(KeyValue::Float(-1.5)));
    assert_eq!(enc(KeyValue::Float(-0.0)), enc(KeyValue::Float(0.0)));
    assert_eq!(num(Number::Float(-0.0)), num(Number::Int(0)));
}

#[test]
fn integers_and_floats_share_one_number_order() {
    assert!(num(Number::Int(1)) < num(Number::Float(1.5)));
    assert!(num(Number::Float(1.5)) < num(Number::UInt(2)));
    assert_eq!(num(Number::Int(2)), num(Number::Float(2.0)));
    assert_eq!(num(Number::UInt(7)), num(Number::Int(7)));
}

#[test]
fn large_integers_stay_distinct_and_ordered() {
    let two53 = 1i64 << 53;
    assert!(num(Number::Int(two53)) < num(Number::Int(two53 + 1)));
    assert!(num(Number::UInt(u64::MAX - 1)) < num(Number::UInt(u64::MAX)));
    assert!(num(Number::Int(i64::MIN)) < num(Number::Int(i64::MIN + 1)));
    assert!(num(Number::UInt(u64::MAX)) < num(Number::Float(1e30)));
    assert_eq!(num(Number::Float(two53 as f64)), num(Number::Int(two53)));
}

#[test]
fn a2_sorts_before_a20_alone_and_inside_tuples() {
    assert!(s("a2") < s("a20"));
    assert!(s("a20") < s("a3"));
    let t = |a: &str, b: i64| encode_tuple(&[KeyValue::Str(a.into()), KeyValue::Int(b)]).unwrap();
    assert!(t("a2", 99) < t("a20", 0));
    assert!(t("a2", i64::MAX) < t("a2\0", i64::MIN));
}

#[test]
fn separator_and_high_bytes_survive() {
    let tricky = [
        "",
        "\0",
        "\0\0",
        "a\0b",
        "a\u{ff}",
        "/",
        "a/b",
        "\u{10ffff}",
    ];
    for v in tricky {
        let bytes = s(v);
        assert_eq!(decode_tuple(&bytes).unwrap(), vec![KeyValue::Str(v.into())]);
    }
    assert!(s("a") < s("a\0"));
    assert!(s("a\0") < s("a\0\0"));
    assert!(s("a\0\0") < s("a\u{1}"));
    let raw = [0u8, 0xFF, 0, 1, 0xFF];
    let bytes = enc(KeyValue::Bytes(raw.to_vec()));
    assert_eq!(
        decode_tuple(&bytes).unwrap(),
        vec![KeyValue::Bytes(raw.to_vec())]
    );
}

#[test]
fn zero_bytes_are_escaped_exactly_as_the_format_says() {
    let stored = [
        tag::STRING,
        b'a',
        0,
        0xFF,
        b'b',
        0,
        0xFF,
        0,
        0xFF,
        0x00,
        0x01,
    ];
    assert_eq!(s("a\0b\0\0"), stored);
    assert_eq!(s("\0"), [tag::STRING, 0, 0xFF, 0x00, 0x01]);
    assert_eq!(s(""), [tag::STRING, 0x00, 0x01]);
}

#[test]
fn empty_strings_and_bytes_sort_first_and_round_trip() {
    assert!(s("") < s("\0"));
    assert!(s("") < s("a"));
    assert_eq!(
        decode_tuple(&s("")).unwrap(),
        vec![KeyValue::Str(String::new())]
    );
    let empty = enc(KeyValue::Bytes(Vec::new()));
    assert_eq!(
        decode_tuple(&empty).unwrap(),
        vec![KeyValue::Bytes(Vec::new())]
    );
}

#[test]
fn case_is_preserved() {
    assert_ne!(s("A"), s("a"));
    assert!(s("B") < s("a"));
    assert_eq!(
        decode_tuple(&s("MiXeD")).unwrap(),
        vec![KeyValue::Str("MiXeD".into())]
    );
}

#[test]
fn descending_components_reverse_order_without_prefix_trouble() {
    let desc = |v: &str| {
        let mut out = Vec::new();
        put_str(&mut out, v, Direction::Desc);
        out
    };
    assert!(desc("b") < desc("a"));
    assert!(desc("a\0") < desc("a"));
    assert!(desc("ab") < desc("a"));
    assert_eq!(
        decode_tuple_with(&desc("a\0b"), &[Direction::Desc]).unwrap(),
        vec![KeyValue::Str("a\0b".into())]
    );
}

#[test]
fn nan_is_refused() {
    assert_eq!(
        put_f64(&mut Vec::new(), f64::NAN, Direction::Asc),
        Err(CodecError::NaN)
    );
    assert_eq!(
        put_number(&mut Vec::new(), Number::Float(f64::NAN), Direction::Asc),
        Err(CodecError::NaN)
    );
}

#[test]
fn malformed_input_is_an_error() {
    let cases: &[&[u8]] = &[
        &[0x99],
        &[tag::INT, 1, 2],
        &[tag::NUMBER, 0xFF],
        &[tag::STRING, b'a'],
        &[tag::STRING, b'a', 0],
        &[tag::STRING, b'a', 0, 7],
        &[tag::STRING, 0xC3, 0x28, 0, 1],
        &[tag::FLOAT, 0xFF, 0xF8, 0, 0, 0, 0, 0, 0],
    ];
    for case in cases {
        assert!(decode_tuple(case).is_err(), "{case:?}");
    }
    assert!(decode_tuple_with(&s("a"), &[]).is_err());
    assert!(decode_tuple_with(&s("a"), &[Direction::Asc, Direction::Asc]).is_err());
}

#[test]
fn display_key_never_fails() {
    assert_eq!(display_key(&s("user")), "\"user\"");
    let mut key = s("t");
    key.extend_from_slice(&[0x99, 0x01]);
    assert_eq!(display_key(&key), "\"t\"/0x9901");
}
