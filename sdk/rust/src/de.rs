//! serde `Deserializer` over a [`Value`] whose errors name the field they
//! happened in (`field gpu.count: invalid type: string "x", expected u32`):
//! serde's own messages do not, and a config error that does not say where is
//! a poor `validate_config` answer.

use std::fmt;
use std::vec;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::value::{Map, Value};

/// A value did not fit the Rust type asked for. `Display` gives
/// `field <path>: <serde's message>`, or the bare message at the top level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    path: String,
    message: String,
}

impl ConfigError {
    /// The dotted path of the offending field (`steps[2].call`), empty at the top.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// serde's message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn join(mut self, prefix: String) -> Self {
        if !self.path.is_empty() && !self.path.starts_with('[') {
            self.path.insert(0, '.');
        }
        self.path.insert_str(0, &prefix);
        self
    }

    fn in_key(self, key: &str) -> Self {
        self.join(key.to_string())
    }

    fn in_index(self, i: usize) -> Self {
        self.join(format!("[{}]", i))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl de::Error for ConfigError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConfigError { path: String::new(), message: msg.to_string() }
    }

    // serde's own wording, except that floats are not printed in full: that
    // would link core's float formatting (~25 KiB of wasm) for an error message.
    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        de::Error::custom(format_args!("invalid type: {}, expected {}", Unexpected(unexp), exp))
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        de::Error::custom(format_args!("invalid value: {}, expected {}", Unexpected(unexp), exp))
    }
}

struct Unexpected<'a>(de::Unexpected<'a>);

impl fmt::Display for Unexpected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use de::Unexpected::*;
        match self.0 {
            Bool(b) => write!(f, "boolean `{}`", b),
            Unsigned(u) => write!(f, "integer `{}`", u),
            Signed(i) => write!(f, "integer `{}`", i),
            Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 => {
                write!(f, "floating point `{}.0`", x as i64)
            }
            Float(_) => f.write_str("floating point number"),
            Char(c) => write!(f, "character `{}`", c),
            Str(s) => write!(f, "string {:?}", s),
            Bytes(_) => f.write_str("byte array"),
            Unit => f.write_str("unit value"),
            Option => f.write_str("Option value"),
            NewtypeStruct => f.write_str("newtype struct"),
            Seq => f.write_str("sequence"),
            Map => f.write_str("map"),
            Enum => f.write_str("enum"),
            UnitVariant => f.write_str("unit variant"),
            NewtypeVariant => f.write_str("newtype variant"),
            TupleVariant => f.write_str("tuple variant"),
            StructVariant => f.write_str("struct variant"),
            Other(other) => f.write_str(other),
        }
    }
}

/// Deserializes `T` from a value, strictly: nil is only an `Option`'s `None`.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ConfigError> {
    T::deserialize(ValueDeserializer { value, lenient: false })
}

/// Deserializes a request: as in Kubernetes JSON, nil where a string, bool,
/// list, map or object is expected reads as absent (its default).
pub(crate) fn from_request_value<T: DeserializeOwned>(value: Value) -> Result<T, ConfigError> {
    T::deserialize(ValueDeserializer { value, lenient: true })
}

struct ValueDeserializer {
    value: Value,
    lenient: bool,
}

impl ValueDeserializer {
    fn seq(items: Vec<Value>, lenient: bool) -> SeqAccess {
        SeqAccess { iter: items.into_iter(), index: 0, lenient }
    }
}

/// The one error path for "this value is not what the type wants". Not
/// generic over the visitor: a typed hint whose value does not match comes
/// here instead of through `deserialize_any`, which would instantiate every
/// `visit_*` error path once per visitor (it tripled the module's size).
#[inline(never)]
fn mismatch(value: &Value, expected: &dyn de::Expected) -> ConfigError {
    let unexpected = match value {
        Value::Nil => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Int(i) => de::Unexpected::Signed(*i),
        Value::UInt(u) => de::Unexpected::Unsigned(*u),
        Value::Float(f) => de::Unexpected::Float(*f),
        Value::Str(s) => de::Unexpected::Str(s),
        Value::Bin(b) => de::Unexpected::Bytes(b),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Map(_) => de::Unexpected::Map,
    };
    de::Error::invalid_type(unexpected, expected)
}

macro_rules! numeric_hints {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
            match self.value {
                Value::Int(i) => visitor.visit_i64(i),
                Value::UInt(u) => visitor.visit_u64(u),
                Value::Float(f) => visitor.visit_f64(f),
                other => Err(mismatch(&other, &visitor)),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = ConfigError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let lenient = self.lenient;
        match self.value {
            Value::Nil => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::UInt(u) => visitor.visit_u64(u),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bin(b) => visitor.visit_byte_buf(b),
            Value::Array(a) => visitor.visit_seq(Self::seq(a, lenient)),
            Value::Map(m) => visitor.visit_map(MapAccess::new(m, lenient)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.value {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Nil if self.lenient => visitor.visit_bool(false),
            other => Err(mismatch(&other, &visitor)),
        }
    }

    numeric_hints! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8
        deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.value {
            Value::Str(s) => visitor.visit_string(s),
            Value::Nil if self.lenient => visitor.visit_string(String::new()),
            other => Err(mismatch(&other, &visitor)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.value {
            Value::Bin(b) => visitor.visit_byte_buf(b),
            Value::Str(s) => visitor.visit_string(s),
            Value::Array(a) => visitor.visit_seq(Self::seq(a, self.lenient)),
            other => Err(mismatch(&other, &visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.value {
            Value::Array(a) => visitor.visit_seq(Self::seq(a, self.lenient)),
            Value::Nil if self.lenient => visitor.visit_seq(Self::seq(Vec::new(), true)),
            other => Err(mismatch(&other, &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.value {
            Value::Map(m) => visitor.visit_map(MapAccess::new(m, self.lenient)),
            Value::Nil if self.lenient => visitor.visit_map(MapAccess::new(Map::new(), true)),
            other => Err(mismatch(&other, &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.value {
            Value::Nil => visitor.visit_unit(),
            other => Err(mismatch(&other, &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let lenient = self.lenient;
        match self.value {
            // A unit variant is its name; a variant with data is a one-entry map.
            Value::Str(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Map(m) if m.len() == 1 => {
                let (variant, value) = m.into_entries().pop().expect("one entry");
                visitor.visit_enum(EnumAccess { variant, value, lenient })
            }
            other => Err(de::Error::custom(format_args!(
                "expected a variant name or a one-entry map, found {}",
                other.type_name()
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! { i128 u128 }
}

struct SeqAccess {
    iter: vec::IntoIter<Value>,
    index: usize,
    lenient: bool,
}

impl<'de> de::SeqAccess<'de> for SeqAccess {
    type Error = ConfigError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ConfigError> {
        let value = match self.iter.next() {
            Some(v) => v,
            None => return Ok(None),
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(ValueDeserializer { value, lenient: self.lenient })
            .map(Some)
            .map_err(|e| e.in_index(index))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapAccess {
    iter: vec::IntoIter<(String, Value)>,
    /// The value of the key just read, and the key when the seed only
    /// borrowed it (struct fields): kept for the error path.
    pending: Option<(Option<String>, Value)>,
    lenient: bool,
}

impl MapAccess {
    fn new(map: Map, lenient: bool) -> Self {
        MapAccess { iter: map.into_entries().into_iter(), pending: None, lenient }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess {
    type Error = ConfigError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ConfigError> {
        let (key, value) = match self.iter.next() {
            Some(e) => e,
            None => return Ok(None),
        };
        let mut back = None;
        let k = seed.deserialize(KeyDeserializer { key, back: &mut back })?;
        self.pending = Some((back, value));
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ConfigError> {
        let (key, value) = self.pending.take().expect("next_value_seed called before next_key_seed");
        seed.deserialize(ValueDeserializer { value, lenient: self.lenient }).map_err(|e| match key {
            Some(k) => e.in_key(&k),
            None => e,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// A map key. A `String` key (labels, annotations: user maps) takes the
/// decoded string by move, saving an allocation per entry, which matters in
/// fuel for Pods with thousands of labels; a struct field name is only
/// borrowed, so the key stays available to name the field in errors.
struct KeyDeserializer<'a> {
    key: String,
    back: &'a mut Option<String>,
}

impl<'de, 'a> de::Deserializer<'de> for KeyDeserializer<'a> {
    type Error = ConfigError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        visitor.visit_string(self.key)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let r = visitor.visit_str(&self.key);
        *self.back = Some(self.key);
        r
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_identifier(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum ignored_any
    }
}

struct EnumAccess {
    variant: String,
    value: Value,
    lenient: bool,
}

impl<'de> de::EnumAccess<'de> for EnumAccess {
    type Error = ConfigError;
    type Variant = VariantAccess;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, VariantAccess), ConfigError> {
        let v = seed.deserialize(self.variant.as_str().into_deserializer())?;
        Ok((v, VariantAccess { variant: self.variant, value: self.value, lenient: self.lenient }))
    }
}

struct VariantAccess {
    variant: String,
    value: Value,
    lenient: bool,
}

impl VariantAccess {
    fn de(self) -> (ValueDeserializer, String) {
        (ValueDeserializer { value: self.value, lenient: self.lenient }, self.variant)
    }
}

impl<'de> de::VariantAccess<'de> for VariantAccess {
    type Error = ConfigError;

    fn unit_variant(self) -> Result<(), ConfigError> {
        let (d, variant) = self.de();
        de::Deserialize::deserialize(d).map_err(|e: ConfigError| e.in_key(&variant))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, ConfigError> {
        let (d, variant) = self.de();
        seed.deserialize(d).map_err(|e| e.in_key(&variant))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, ConfigError> {
        let (d, variant) = self.de();
        de::Deserializer::deserialize_seq(d, visitor).map_err(|e| e.in_key(&variant))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let (d, variant) = self.de();
        de::Deserializer::deserialize_map(d, visitor).map_err(|e| e.in_key(&variant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{list, map};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Config {
        gpu_count: u32,
        #[serde(default)]
        runtime_class: Option<String>,
        #[serde(default)]
        tolerations: Vec<Tol>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Tol {
        key: String,
        seconds: Option<i64>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Limit(u8),
    }

    fn cfg(v: Value) -> Result<Config, String> {
        from_value::<Config>(v).map_err(|e| e.to_string())
    }

    #[test]
    fn typed_config_reads_nested_fields() {
        let c = cfg(map! {
            "gpuCount" => 8, "runtimeClass" => "nvidia",
            "tolerations" => list![map! { "key" => "a", "seconds" => -5 }], "mode" => "fast",
        })
        .unwrap();
        assert_eq!(c.gpu_count, 8);
        assert_eq!(c.tolerations, vec![Tol { key: "a".into(), seconds: Some(-5) }]);
        assert_eq!(c.mode, Some(Mode::Fast));
        assert_eq!(cfg(map! { "gpuCount" => 1, "mode" => map! { "limit" => 3 } }).unwrap().mode, Some(Mode::Limit(3)));
    }

    #[test]
    fn errors_name_the_field_path() {
        assert_eq!(
            cfg(map! { "gpuCount" => "8" }).unwrap_err(),
            "field gpuCount: invalid type: string \"8\", expected u32"
        );
        assert_eq!(cfg(map! { "gpuCount" => -1 }).unwrap_err(), "field gpuCount: invalid value: integer `-1`, expected u32");
        assert_eq!(
            cfg(map! { "gpuCount" => 1, "tolerations" => list![map! { "key" => "a" }, map! { "key" => 5 }] }).unwrap_err(),
            "field tolerations[1].key: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            cfg(map! { "gpuCount" => 1, "tolerations" => list![map! { "key" => "a", "x" => 1 }] }).unwrap_err(),
            "field tolerations[0]: unknown field `x`, expected `key` or `seconds`"
        );
        assert_eq!(cfg(map! {}).unwrap_err(), "missing field `gpuCount`");
        assert!(cfg(map! { "gpuCount" => 1, "extra" => 1 }).unwrap_err().starts_with("unknown field `extra`"));
        assert_eq!(cfg(map! { "gpuCount" => 0.5 }).unwrap_err(), "field gpuCount: invalid type: floating point number, expected u32");
        assert_eq!(cfg(map! { "gpuCount" => 2.0 }).unwrap_err(), "field gpuCount: invalid type: floating point `2.0`, expected u32");
        assert_eq!(cfg(map! { "gpuCount" => 1, "mode" => "slow" }).unwrap_err(),
            "field mode: unknown variant `slow`, expected `fast` or `limit`");
    }

    #[test]
    fn strict_mode_refuses_nil_where_lenient_mode_reads_a_default() {
        let v = map! { "a" => Value::Nil };
        assert!(from_value::<BTreeMap<String, String>>(v.clone()).is_err());
        let m: BTreeMap<String, String> = from_request_value(v).unwrap();
        assert_eq!(m["a"], "");
        let m: BTreeMap<String, Vec<u8>> = from_request_value(map! { "a" => Value::Nil }).unwrap();
        assert!(m["a"].is_empty());
    }
}
