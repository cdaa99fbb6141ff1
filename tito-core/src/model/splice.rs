//! Reading stored JSON objects with some top-level fields replaced: how a page's records are
//! decoded with their relationships hydrated, parsing each record once, without building a new
//! JSON text or a `serde_json::Value` tree per record.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::CowStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess,
    Visitor,
};

/// The JSON texts of the top-level fields `names` of the JSON object `json`, in the order of
/// `names` (`None` where a field is absent).
///
/// A scan that finds where values end without decoding them, and stops once every field is
/// found; what it skips is checked by the [`decode`] that follows. `None` when `json` does not
/// read as an object or a key holds an escape: the caller then takes a decoding route. A field
/// written twice (serde_json never writes one so) counts at its first occurrence.
pub(crate) fn pick<'a>(json: &'a [u8], names: &[&str]) -> Option<Vec<Option<&'a [u8]>>> {
    let mut scan = Scan { text: json, at: 0 };
    let mut found = vec![None; names.len()];
    let mut missing = names.len();
    scan.eat(b'{')?;
    if scan.peek()? == b'}' {
        return Some(found);
    }
    while missing > 0 {
        let key = scan.string()?;
        if key.contains(&b'\\') {
            return None;
        }
        scan.eat(b':')?;
        let value = scan.value()?;
        if let Some(at) = names.iter().position(|name| name.as_bytes() == key)
            && found[at].is_none()
        {
            found[at] = Some(value);
            missing -= 1;
        }
        match scan.peek()? {
            b',' => scan.at += 1,
            b'}' => break,
            _ => return None,
        }
    }
    Some(found)
}

/// A position in a JSON text.
struct Scan<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    /// The next byte that is not white space.
    fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.text.get(self.at) {
            self.at += 1;
        }
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Passes a string; gives its text between the quotes, escapes untouched.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            let rest = self.text.get(self.at..)?;
            self.at += rest.iter().position(|&b| b == b'"' || b == b'\\')?;
            if self.text[self.at] == b'"' {
                self.at += 1;
                return Some(&self.text[start..self.at - 1]);
            }
            // An escape: the byte after the backslash cannot end the string.
            self.at += 2;
        }
    }

    /// Passes one value; gives its text.
    fn value(&mut self) -> Option<&'a [u8]> {
        let start = match self.peek()? {
            b'"' => {
                let start = self.at;
                self.string()?;
                start
            }
            b'{' | b'[' => {
                let start = self.at;
                let mut depth = 0usize;
                loop {
                    match self.text.get(self.at)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
                start
            }
            _ => {
                let start = self.at;
                let rest = &self.text[start..];
                let end = (rest.iter())
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                    .unwrap_or(rest.len());
                if end == 0 {
                    return None;
                }
                self.at += end;
                start
            }
        };
        Some(&self.text[start..self.at])
    }
}

/// Decodes the JSON object `json` as a `T` in which its top-level fields named in `replaced`
/// are left out and the fields of `added` (a name and its JSON text) come last.
pub(crate) fn decode<'a, T: DeserializeOwned>(
    json: &'a [u8],
    replaced: &[&str],
    added: Vec<(&'a str, &'a [u8])>,
) -> serde_json::Result<T> {
    let mut parser = serde_json::Deserializer::from_slice(json);
    let changes = Changes { replaced, added };
    let value = T::deserialize(Splice {
        parser: &mut parser,
        changes,
    })?;
    parser.end()?;
    Ok(value)
}

/// The fields a splice leaves out, and those it adds (a name and its JSON text).
struct Changes<'r, 'a> {
    replaced: &'r [&'r str],
    added: Vec<(&'a str, &'a [u8])>,
}

/// A deserializer that reads the object `parser` holds with `changes` made.
struct Splice<'r, 'a, D> {
    parser: D,
    changes: Changes<'r, 'a>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Splice<'_, 'de, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.parser.deserialize_map(SpliceVisitor {
            visitor,
            changes: self.changes,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct SpliceVisitor<'r, 'a, V> {
    visitor: V,
    changes: Changes<'r, 'a>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for SpliceVisitor<'_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(SpliceMap {
            map: Some(map),
            replaced: self.changes.replaced,
            added: self.changes.added.into_iter(),
            pending: None,
        })
    }
}

/// The stored fields but the replaced ones (`map`, until it ends), then the added ones.
struct SpliceMap<'r, 'a, A> {
    map: Option<A>,
    replaced: &'r [&'r str],
    added: std::vec::IntoIter<(&'a str, &'a [u8])>,
    /// The JSON text of the added field whose key was just given.
    pending: Option<&'a [u8]>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SpliceMap<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(map) = &mut self.map {
            match map.next_key::<Cow<'de, str>>()? {
                Some(key) if self.replaced.contains(&key.as_ref()) => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(key) => return seed.deserialize(CowStrDeserializer::new(key)).map(Some),
                None => self.map = None,
            }
        }
        let Some((name, json)) = self.added.next() else {
            return Ok(None);
        };
        self.pending = Some(json);
        seed.deserialize(name.into_deserializer()).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        match (self.pending.take(), &mut self.map) {
            (Some(json), _) => {
                let mut parser = serde_json::Deserializer::from_slice(json);
                let value = seed.deserialize(&mut parser).map_err(de::Error::custom)?;
                parser.end().map_err(de::Error::custom)?;
                Ok(value)
            }
            (None, Some(map)) => map.next_value_seed(seed),
            (None, None) => Err(de::Error::custom("a value was asked for before its key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::{Map, Value, json};

    fn texts<'a>(found: &[Option<&'a [u8]>]) -> Vec<Option<&'a str>> {
        (found.iter())
            .map(|text| text.map(|t| std::str::from_utf8(t).unwrap()))
            .collect()
    }

    #[test]
    fn picks_fields_by_name_and_refuses_what_is_not_an_object() {
        let json = br#" { "a" : 1 , "b": "x\"y\\", "c": [1, {"a": "]}"}], "d": -2.5e3}"#;
        let found = pick(json, &["c", "missing", "b", "d"]).unwrap();
        let expected = [
            Some(r#"[1, {"a": "]}"}]"#),
            None,
            Some(r#""x\"y\\""#),
            Some("-2.5e3"),
        ];
        assert_eq!(texts(&found), expected);
        assert_eq!(texts(&pick(b"{}", &["a"]).unwrap()), [None]);
        for not_an_object in [
            &b"[1]"[..],
            b"",
            b"{\"a\"",
            b"{\"a\": 1 2}",
            b"{\"a\\u0041\": 1}",
        ] {
            assert!(pick(not_an_object, &["a", "b"]).is_none());
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[ -~\"\\\\\u{e9}\u{1f600}\n]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn picked_texts_are_the_fields_values(
            fields in prop::collection::btree_map("[a-e]{1,2}", json_value(), 0..6),
            pretty in any::<bool>(),
        ) {
            let object = Value::Object(fields.into_iter().collect::<Map<_, _>>());
            let json = if pretty {
                serde_json::to_vec_pretty(&object).unwrap()
            } else {
                serde_json::to_vec(&object).unwrap()
            };
            // Compared with what serde_json reads from the same text (its float parsing is
            // not an exact inverse of its printing).
            let read: Map<String, Value> = serde_json::from_slice(&json).unwrap();
            let names = ["a", "bb", "e", "zz"];
            let found = pick(&json, &names).unwrap();
            for (name, text) in names.iter().zip(found) {
                let value = text.map(|t| serde_json::from_slice::<Value>(t).unwrap());
                prop_assert_eq!(value.as_ref(), read.get(*name));
            }
        }
    }

    #[test]
    fn replaces_fields_and_appends_the_added_ones() {
        let json = r#"{"id": "p1", "author": {"stale": true}, "we\"ird": "é", "n": 7}"#;
        let added = vec![("author", &br#"{"name": "Ann"}"#[..])];
        let value: Value = decode(json.as_bytes(), &["author"], added).unwrap();
        let expected = json!({"id": "p1", "author": {"name": "Ann"}, "we\"ird": "é", "n": 7});
        assert_eq!(value, expected);
        let left_out: Value = decode(json.as_bytes(), &["author", "n"], Vec::new()).unwrap();
        assert_eq!(left_out, json!({"id": "p1", "we\"ird": "é"}));
    }

    #[test]
    fn decodes_structs_and_newtypes_and_refuses_bad_text() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Author {
            name: String,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct Post {
            id: String,
            author: Option<Author>,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct Wrapped(Post);
        let json = br#"{"id": "p1", "author": null}"#;
        let added = || vec![("author", &br#"{"name": "Ann"}"#[..])];
        let ann = Some(Author { name: "Ann".into() });
        let post: Post = decode(json, &["author"], added()).unwrap();
        assert_eq!(post.author, ann);
        let wrapped: Wrapped = decode(json, &["author"], added()).unwrap();
        assert_eq!(wrapped.0.author, ann);
        let bad = vec![("author", &b"{\"name\": 1}"[..])];
        assert!(decode::<Post>(json, &["author"], bad).is_err());
        assert!(decode::<Post>(b"[]", &[], Vec::new()).is_err());
        assert!(decode::<Post>(b"{\"id\": \"p1\"} trailing", &[], Vec::new()).is_err());
    }
}
