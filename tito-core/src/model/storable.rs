//! What a record may hold to be stored as JSON and read back: finite numbers and bounded nesting.
//!
//! serde_json writes NaN and ±infinity as `null` and nests without limit, but reads stop at 128
//! levels and a `null` does not read back as a number: such a record would commit and then fail
//! every read. [`check`] walks a value once, as serde would serialize it, and refuses both before
//! anything is written.

use std::fmt;

use serde::ser::{self, Serialize, Serializer};

/// The deepest nesting of objects and arrays a record may have. serde_json reads 127 levels;
/// the queue stores a record's event inside an event envelope and again inside a retry entry or
/// a dead letter, so records keep a wide margin below that.
pub const MAX_DEPTH: usize = 100;

/// Why a value cannot be stored, and where in it.
#[derive(Debug)]
pub(crate) struct Unstorable {
    reason: String,
    /// Field names and indexes from the value found to its root (innermost first).
    path: Vec<String>,
}

impl Unstorable {
    fn new(reason: impl Into<String>) -> Self {
        Unstorable {
            reason: reason.into(),
            path: Vec::new(),
        }
    }

    fn at(mut self, segment: impl fmt::Display) -> Self {
        self.path.push(segment.to_string());
        self
    }
}

impl fmt::Display for Unstorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return write!(f, "the value {}", self.reason);
        }
        f.write_str("field `")?;
        for (n, segment) in self.path.iter().rev().enumerate() {
            if n > 0 && !segment.starts_with('[') {
                f.write_str(".")?;
            }
            f.write_str(segment)?;
        }
        write!(f, "` {}", self.reason)
    }
}

impl std::error::Error for Unstorable {}

impl ser::Error for Unstorable {
    fn custom<M: fmt::Display>(message: M) -> Self {
        Unstorable::new(message.to_string())
    }
}

/// Refuses a value that JSON would store as something that cannot be read back.
pub(crate) fn check<T: Serialize + ?Sized>(value: &T) -> Result<(), Unstorable> {
    value.serialize(Checker { depth: 0 })
}

/// A serializer that writes nothing: it only looks at numbers and counts nesting.
#[derive(Clone, Copy)]
struct Checker {
    /// Objects and arrays around the value being looked at.
    depth: usize,
}

impl Checker {
    /// Enters an object or array.
    fn enter(self) -> Result<Compound, Unstorable> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(Unstorable::new(format!(
                "is nested deeper than {MAX_DEPTH} levels of objects and arrays"
            )));
        }
        Ok(Compound {
            depth,
            index: 0,
            variant: None,
        })
    }

    fn float(value: f64) -> Result<(), Unstorable> {
        match value {
            v if v.is_nan() => Err(Unstorable::new("is NaN, which JSON cannot store")),
            v if v.is_infinite() => Err(Unstorable::new("is infinite, which JSON cannot store")),
            _ => Ok(()),
        }
    }

    /// A variant with content, stored as `{"variant": content}`: one level, then the content.
    fn variant(self, variant: &'static str) -> Result<Compound, Unstorable> {
        let outer = self.enter().map_err(|e| e.at(variant))?;
        let inner = Checker { depth: outer.depth }
            .enter()
            .map_err(|e| e.at(variant))?;
        Ok(Compound {
            variant: Some(variant),
            ..inner
        })
    }
}

/// The inside of an object or array.
struct Compound {
    depth: usize,
    /// Position of the next element, for the path of an error.
    index: usize,
    /// The enum variant whose content this is, for the path of an error.
    variant: Option<&'static str>,
}

impl Compound {
    fn within(&self, error: Unstorable) -> Unstorable {
        match self.variant {
            Some(variant) => error.at(variant),
            None => error,
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unstorable> {
        let at = self.index;
        self.index += 1;
        value
            .serialize(Checker { depth: self.depth })
            .map_err(|e| self.within(e.at(format_args!("[{at}]"))))
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Unstorable> {
        value
            .serialize(Checker { depth: self.depth })
            .map_err(|e| self.within(e.at(name)))
    }
}

/// Leaf kinds JSON stores as they are.
macro_rules! leaves {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), Unstorable> {
            Ok(())
        })*
    };
}

impl Serializer for Checker {
    type Ok = ();
    type Error = Unstorable;
    type SerializeSeq = Compound;
    type SerializeTuple = Compound;
    type SerializeTupleStruct = Compound;
    type SerializeTupleVariant = Compound;
    type SerializeMap = Compound;
    type SerializeStruct = Compound;
    type SerializeStructVariant = Compound;

    leaves!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, value: f32) -> Result<(), Unstorable> {
        Checker::float(value.into())
    }

    fn serialize_f64(self, value: f64) -> Result<(), Unstorable> {
        Checker::float(value)
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unstorable> {
        // Stored as an array of numbers.
        self.enter().map(drop)
    }

    fn serialize_none(self) -> Result<(), Unstorable> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unstorable> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Unstorable> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Unstorable> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unstorable> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unstorable> {
        let outer = self.enter().map_err(|e| e.at(variant))?;
        value
            .serialize(Checker { depth: outer.depth })
            .map_err(|e| e.at(variant))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Compound, Unstorable> {
        self.enter()
    }

    fn serialize_tuple(self, _: usize) -> Result<Compound, Unstorable> {
        self.enter()
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound, Unstorable> {
        self.enter()
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound, Unstorable> {
        self.variant(variant)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Compound, Unstorable> {
        self.enter()
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound, Unstorable> {
        self.enter()
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound, Unstorable> {
        self.variant(variant)
    }
}

/// The element and field methods of the compound traits, which all look at values the same way.
macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for Compound {
            type Ok = ();
            type Error = Unstorable;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unstorable> {
                self.element(value)
            }

            fn end(self) -> Result<(), Unstorable> {
                Ok(())
            }
        })*
    };
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Compound {
    type Ok = ();
    type Error = Unstorable;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unstorable> {
        key.serialize(Checker { depth: self.depth })
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unstorable> {
        self.element(value)
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), Unstorable> {
        self.serialize_key(key)?;
        value.serialize(Checker { depth: self.depth }).map_err(|e| {
            let name = serde_json::to_string(key).unwrap_or_default();
            e.at(name.trim_matches('"'))
        })
    }

    fn end(self) -> Result<(), Unstorable> {
        Ok(())
    }
}

/// The field methods of the struct traits.
macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(impl ser::$trait for Compound {
            type Ok = ();
            type Error = Unstorable;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                value: &T,
            ) -> Result<(), Unstorable> {
                self.field(name, value)
            }

            fn end(self) -> Result<(), Unstorable> {
                Ok(())
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Stats {
        scores: Vec<f64>,
        by_name: BTreeMap<String, f32>,
        best: Option<f64>,
    }

    #[derive(Serialize)]
    enum Shape {
        Circle { radius: f64 },
        Pair(f64, f64),
    }

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!([inner]))
    }

    fn refused<T: Serialize>(value: &T) -> String {
        check(value).expect_err("refused").to_string()
    }

    #[test]
    fn finite_values_within_the_depth_pass() {
        let stats = Stats {
            scores: vec![1.5, -0.0, f64::MAX],
            by_name: BTreeMap::from([("a".into(), 2.0)]),
            best: None,
        };
        check(&stats).expect("finite");
        check(&Shape::Pair(1.0, 2.0)).expect("finite");
        check(&nested(MAX_DEPTH)).expect("at the limit");
    }

    #[test]
    fn non_finite_numbers_are_refused_with_their_path() {
        let stats = |scores, by_name, best| Stats {
            scores,
            by_name,
            best,
        };
        assert_eq!(
            refused(&stats(vec![1.0, f64::NAN], BTreeMap::new(), None)),
            "field `scores[1]` is NaN, which JSON cannot store"
        );
        assert_eq!(
            refused(&stats(
                vec![],
                BTreeMap::from([("x".into(), f32::NEG_INFINITY)]),
                None
            )),
            "field `by_name.x` is infinite, which JSON cannot store"
        );
        assert_eq!(
            refused(&stats(vec![], BTreeMap::new(), Some(f64::INFINITY))),
            "field `best` is infinite, which JSON cannot store"
        );
        assert_eq!(
            refused(&Shape::Circle { radius: f64::NAN }),
            "field `Circle.radius` is NaN, which JSON cannot store"
        );
        assert_eq!(
            refused(&f64::NAN),
            "the value is NaN, which JSON cannot store"
        );
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        let message = refused(&nested(MAX_DEPTH + 1));
        assert!(message.contains("nested deeper than 100"), "{message}");
        assert!(message.starts_with("field `[0][0]"), "{message}");
        // A variant's wrapper object counts as a level, as it does when JSON is read back.
        #[derive(Serialize)]
        enum Wrap {
            Inner(Value),
        }
        check(&Wrap::Inner(nested(MAX_DEPTH - 1))).expect("at the limit");
        let message = refused(&Wrap::Inner(nested(MAX_DEPTH)));
        assert!(message.starts_with("field `Inner[0]"), "{message}");
    }
}
