//! `to_value`: any `serde::Serialize` type to a [`Value`], fields in
//! declaration order, so a plugin can keep passthrough objects (a sidecar
//! container, a volume) as its own typed structs.

use serde::ser::{self, Serialize};

use crate::value::{Map, Value};

/// Converts `value` with its `Serialize` impl. `None` fields become nil; add
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
    value.serialize(Serializer)
}

/// A value `to_value` cannot represent (a map with non-string keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializeError(String);

impl std::fmt::Display for SerializeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerializeError {}

impl ser::Error for SerializeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerializeError(msg.to_string())
    }
}

impl From<SerializeError> for crate::Error {
    fn from(e: SerializeError) -> Self {
        crate::Error::new(e.0)
    }
}

struct Serializer;

type R = Result<Value, SerializeError>;

impl ser::Serializer for Serializer {
    type Ok = Value;
    type Error = SerializeError;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Variant<Seq>;
    type SerializeMap = MapSer;
    type SerializeStruct = MapSer;
    type SerializeStructVariant = Variant<MapSer>;

    fn serialize_bool(self, v: bool) -> R {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> R {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> R {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> R {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> R {
        Ok(Value::from(v))
    }
    fn serialize_u8(self, v: u8) -> R {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> R {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> R {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> R {
        Ok(Value::from(v))
    }
    fn serialize_f32(self, v: f32) -> R {
        Ok(Value::Float(v as f64))
    }
    fn serialize_f64(self, v: f64) -> R {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> R {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> R {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        Ok(Value::Bin(v.to_vec()))
    }
    fn serialize_none(self) -> R {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_unit(self) -> R {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> R {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        v: &T,
    ) -> R {
        let mut m = Map::new();
        m.push(variant, v.serialize(Serializer)?);
        Ok(Value::Map(m))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, SerializeError> {
        Ok(Seq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, SerializeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq, SerializeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<Seq>, SerializeError> {
        Ok(Variant { name: variant, inner: Seq(Vec::with_capacity(len)) })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapSer, SerializeError> {
        Ok(MapSer { map: Map::with_capacity(len.unwrap_or(0)), key: None })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapSer, SerializeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<MapSer>, SerializeError> {
        Ok(Variant { name: variant, inner: MapSer { map: Map::with_capacity(len), key: None } })
    }
}

struct Seq(Vec<Value>);

impl ser::SerializeSeq for Seq {
    type Ok = Value;
    type Error = SerializeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerializeError> {
        self.0.push(v.serialize(Serializer)?);
        Ok(())
    }
    fn end(self) -> R {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTuple for Seq {
    type Ok = Value;
    type Error = SerializeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerializeError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> R {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Seq {
    type Ok = Value;
    type Error = SerializeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerializeError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> R {
        ser::SerializeSeq::end(self)
    }
}

struct MapSer {
    map: Map,
    key: Option<String>,
}

impl ser::SerializeMap for MapSer {
    type Ok = Value;
    type Error = SerializeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerializeError> {
        match key.serialize(Serializer)? {
            Value::Str(s) => {
                self.key = Some(s);
                Ok(())
            }
            other => Err(SerializeError(format!("map keys must be strings, not {}", other.type_name()))),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerializeError> {
        let key = self.key.take().expect("serialize_value called before serialize_key");
        self.map.push(key, v.serialize(Serializer)?);
        Ok(())
    }
    fn end(self) -> R {
        Ok(Value::Map(self.map))
    }
}

impl ser::SerializeStruct for MapSer {
    type Ok = Value;
    type Error = SerializeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), SerializeError> {
        self.map.push(key, v.serialize(Serializer)?);
        Ok(())
    }
    fn end(self) -> R {
        Ok(Value::Map(self.map))
    }
}

/// `{variant: inner}`, serde's externally tagged enum form.
struct Variant<T> {
    name: &'static str,
    inner: T,
}

impl<T> Variant<T> {
    fn wrap(name: &'static str, v: Value) -> R {
        let mut m = Map::new();
        m.push(name, v);
        Ok(Value::Map(m))
    }
}

impl ser::SerializeTupleVariant for Variant<Seq> {
    type Ok = Value;
    type Error = SerializeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerializeError> {
        ser::SerializeSeq::serialize_element(&mut self.inner, v)
    }
    fn end(self) -> R {
        Self::wrap(self.name, ser::SerializeSeq::end(self.inner)?)
    }
}

impl ser::SerializeStructVariant for Variant<MapSer> {
    type Ok = Value;
    type Error = SerializeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), SerializeError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, v)
    }
    fn end(self) -> R {
        Self::wrap(self.name, ser::SerializeStruct::end(self.inner)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{list, map};
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Sidecar {
        name: String,
        image: String,
        args: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        working_dir: Option<String>,
        env: BTreeMap<String, i64>,
        mode: Mode,
        limit: Limit,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
    }

    #[derive(Serialize)]
    enum Limit {
        Cpu(u32),
    }

    #[test]
    fn structs_keep_declaration_order_and_skip_none() {
        let v = to_value(&Sidecar {
            name: "envoy".into(),
            image: "envoy:1".into(),
            args: vec!["-c".into()],
            working_dir: None,
            env: [("A".to_string(), -1)].into_iter().collect(),
            mode: Mode::Fast,
            limit: Limit::Cpu(2),
        })
        .unwrap();
        assert_eq!(
            v,
            map! { "name" => "envoy", "image" => "envoy:1", "args" => list!["-c"], "env" => map! { "A" => -1 },
                   "mode" => "fast", "limit" => map! { "Cpu" => 2 } }
        );
    }

    #[test]
    fn non_string_map_keys_are_an_error() {
        let m: BTreeMap<u8, u8> = [(1, 2)].into_iter().collect();
        assert_eq!(to_value(&m).unwrap_err().to_string(), "map keys must be strings, not an integer");
    }
}
