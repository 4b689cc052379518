//! A MessagePack value that keeps map keys in the order they were built or
//! decoded: objects a plugin passes through (a volume, a toleration, a
//! container) must reach the host in that order (docs/abi.md, canonical
//! encoding), which a `BTreeMap`/`HashMap` would not give. It is a serde
//! type: src/de.rs reads it, `Value::encode_into` writes it (rmp-serde only
//! serves `to_value`).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Any MessagePack value. Integers that fit `i64` decode to [`Value::Int`],
/// larger ones to [`Value::UInt`]; both encode in the smallest form.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// Encoded as float64 (MessagePack float32 decodes to this too).
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Map),
}

/// An ordered string-keyed map: insertion order is encoding order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Map {
    entries: Vec<(String, Value)>,
}

impl Map {
    pub fn new() -> Self {
        Map { entries: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Map { entries: Vec::with_capacity(n) }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, keeping its position when present, appending otherwise.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        let key = key.into();
        let value = value.into();
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.entries.push((key, value)),
        }
        self
    }

    /// Appends without looking for an existing key (the decoder's fast path;
    /// duplicate keys are kept as sent).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.entries.push((key.into(), value.into()));
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    pub fn into_entries(self) -> Vec<(String, Value)> {
        self.entries
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Map { entries: iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl Value {
    /// An empty map, to fill with [`Value::with`].
    pub fn map() -> Value {
        Value::Map(Map::new())
    }

    /// Builder style: sets `key` on a map value (a non-map becomes a map).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Value {
        if !matches!(self, Value::Map(_)) {
            self = Value::map();
        }
        if let Value::Map(m) = &mut self {
            m.insert(key, value);
        }
        self
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::UInt(u) => Some(*u),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// `map[key]`, or `None` when this is not a map or has no such key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// A nested value by a `/`-separated path of map keys and array indices,
    /// e.g. `spec.pointer("template/roles/0/name")`. A leading `/` is allowed.
    pub fn pointer(&self, path: &str) -> Option<&Value> {
        let mut cur = self;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = match cur {
                Value::Map(m) => m.get(part)?,
                Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The MessagePack family name, as used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bin(_) => "binary",
            Value::Array(_) => "an array",
            Value::Map(_) => "a map",
        }
    }

    /// Decodes one MessagePack value; trailing bytes are an error.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Value, crate::DecodeError> {
        let end = crate::wire::skip(bytes, 0)?;
        if end != bytes.len() {
            return Err(crate::DecodeError { offset: end, reason: "trailing bytes after the value".into() });
        }
        crate::de::from_slice(bytes).map_err(|e| crate::DecodeError { offset: 0, reason: e.to_string() })
    }

    /// The canonical MessagePack encoding (smallest headers, keys in order).
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical encoding (docs/abi.md) with rmp's writers, which
    /// pick the smallest int, str, array and map forms: the bytes rmp-serde's
    /// serializer wrote, without its code in every module (9 KB of each
    /// shipped Rust plugin) or its dispatch.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        use rmp::encode;
        // Writing to a Vec cannot fail; lengths past u32 cannot be built in wasm32.
        let ok = match self {
            Value::Nil => encode::write_nil(out).is_ok(),
            Value::Bool(b) => encode::write_bool(out, *b).is_ok(),
            Value::Int(i) => encode::write_sint(out, *i).is_ok(),
            Value::UInt(u) => encode::write_uint(out, *u).is_ok(),
            Value::Float(f) => encode::write_f64(out, *f).is_ok(),
            Value::Str(v) => encode::write_str(out, v).is_ok(),
            Value::Bin(b) => encode::write_bin(out, b).is_ok(),
            Value::Array(a) => {
                let ok = encode::write_array_len(out, a.len() as u32).is_ok();
                for v in a {
                    v.encode_into(out);
                }
                ok
            }
            Value::Map(m) => {
                m.encode_into(out);
                true
            }
        };
        debug_assert!(ok, "encoding to memory");
    }
}

impl fmt::Display for Value {
    /// A compact JSON-like rendering, for messages and test failures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("null"),
            Value::Bool(b) => write!(f, "{}", b),
            Value::Int(i) => write!(f, "{}", i),
            Value::UInt(u) => write!(f, "{}", u),
            Value::Float(x) => write!(f, "{:?}", x),
            Value::Str(s) => write!(f, "{:?}", s),
            Value::Bin(b) => write!(f, "<{} bytes>", b.len()),
            Value::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", v)?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{:?}: {}", k, v)?;
                }
                f.write_str("}")
            }
        }
    }
}

macro_rules! from_int {
    ($($t:ty => $variant:ident as $as:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v as $as)
            }
        }
    )*};
}
from_int!(i8 => Int as i64, i16 => Int as i64, i32 => Int as i64, i64 => Int as i64,
          u8 => Int as i64, u16 => Int as i64, u32 => Int as i64);

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::from(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Str(v.clone())
    }
}

impl From<Map> for Value {
    fn from(v: Map) -> Value {
        Value::Map(v)
    }
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Value {
        v.clone()
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value>, const N: usize> From<[T; N]> for Value {
    fn from(v: [T; N]) -> Value {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Nil, Into::into)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bin(b) => s.serialize_bytes(b),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    /// Keeps map keys in the order the deserializer yields them (JSON text
    /// order with serde_json, wire order with the SDK's own decoder).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bin(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bin(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            out.push(k, v);
        }
        Ok(Value::Map(out))
    }
}

/// Builds an ordered [`Value::Map`]: `map! { "name" => "dshm", "emptyDir" => map! {} }`.
/// Values are anything `Into<Value>`; keys keep the order written.
#[macro_export]
macro_rules! map {
    () => { $crate::Value::Map($crate::Map::new()) };
    ($($key:expr => $value:expr),+ $(,)?) => {{
        let mut m = $crate::Map::new();
        $( m.insert($key, $value); )+
        $crate::Value::Map(m)
    }};
}

/// Builds a [`Value::Array`] from values of mixed types: `list!["a", 1, true]`.
#[macro_export]
macro_rules! list {
    ($($value:expr),* $(,)?) => {
        $crate::Value::Array(vec![$($crate::Value::from($value)),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_insert_keeps_position_of_existing_keys() {
        let mut m = Map::new();
        m.insert("b", 1).insert("a", 2).insert("b", 3);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(m.get("b"), Some(&Value::Int(3)));
    }

    #[test]
    fn pointer_walks_maps_and_arrays() {
        let v = map! { "roles" => list![map! { "name" => "prefill" }] };
        assert_eq!(v.pointer("/roles/0/name"), Some(&Value::from("prefill")));
        assert_eq!(v.pointer("roles/1/name"), None);
        assert_eq!(v.pointer("roles/x"), None);
    }

    #[test]
    fn large_unsigned_integers_do_not_wrap() {
        assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
        assert_eq!(Value::from(5u64), Value::Int(5));
        assert_eq!(Value::UInt(u64::MAX).as_i64(), None);
    }
}

impl Map {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        let ok = rmp::encode::write_map_len(out, self.len() as u32).is_ok();
        debug_assert!(ok, "encoding to memory");
        for (k, v) in self.iter() {
            let ok = rmp::encode::write_str(out, k).is_ok();
            debug_assert!(ok, "encoding to memory");
            v.encode_into(out);
        }
    }
}

impl Serialize for Map {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Converts `value` with its `Serialize` impl (through its MessagePack
/// encoding). `None` fields become nil; add
/// `#[serde(skip_serializing_if = "Option::is_none")]` to omit them.
///
/// ```
/// #[derive(serde::Serialize)]
/// #[serde(rename_all = "camelCase")]
/// struct Mount { name: &'static str, mount_path: &'static str, read_only: bool }
///
/// let v = podplug_sdk::to_value(&Mount { name: "models", mount_path: "/models", read_only: true }).unwrap();
/// assert_eq!(v, podplug_sdk::map! { "name" => "models", "mountPath" => "/models", "readOnly" => true });
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, SerializeError> {
    let mut bytes = Vec::new();
    let mut ser = rmp_serde::Serializer::new(&mut bytes).with_struct_map();
    value.serialize(&mut ser).map_err(|e| SerializeError(e.to_string()))?;
    Value::from_msgpack(&bytes).map_err(|e| SerializeError(e.reason))
}

/// A value `to_value` cannot represent (a map with non-string keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializeError(String);

impl fmt::Display for SerializeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerializeError {}

impl From<SerializeError> for crate::Error {
    fn from(e: SerializeError) -> Self {
        crate::Error::new(e.0)
    }
}
