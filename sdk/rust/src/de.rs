//! serde's `Deserializer` over MessagePack bytes, reading markers with rmp.
//!
//! Why not rmp-serde's: its `deserialize_any` (a 4 KB function) is
//! instantiated once per serde visitor, and every typed view, field
//! identifier and collection has its own visitor: that alone was 190 KB of a
//! 334 KB module. Here the marker is read by one non-generic function
//! ([`Deserializer::token`]) and the generic part is a small match; a value
//! the visitor ignores is skipped by scanning its markers (src/wire.rs), not
//! by visiting it. Strings are borrowed from the input. Errors print no
//! floats (core's float formatting is ~25 KB of wasm for an error message).

use std::fmt;

use rmp::Marker;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::wire;

/// The newtype name that asks for a value's encoded bytes instead of the value.
pub(crate) const RAW: &str = "$podplug::raw";

/// Deeper nesting than any Kubernetes object needs; bounds recursion.
const MAX_DEPTH: u32 = 256;

/// A value that is not what the type asked for, or malformed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        de::Error::custom(format_args!("invalid type: {}, expected {}", Unexpected(unexp), exp))
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        de::Error::custom(format_args!("invalid value: {}, expected {}", Unexpected(unexp), exp))
    }
}

/// serde's wording, except that a float prints only when it is integral.
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

/// One MessagePack item: a scalar, or the header of an array or map.
enum Token<'de> {
    Nil,
    Bool(bool),
    Uint(u64),
    Int(i64),
    Float(f64),
    Str(&'de str),
    Bin(&'de [u8]),
    Array(usize),
    Map(usize),
}

/// Reads one value of `buf` (which it must span exactly with [`end`](Self::end)).
pub struct Deserializer<'de> {
    buf: &'de [u8],
    pos: usize,
    depth: u32,
    /// Field names as checked strings (for serde_path_to_error, which records
    /// only string keys), not as bytes.
    str_fields: bool,
}

impl<'de> Deserializer<'de> {
    pub fn new(buf: &'de [u8]) -> Self {
        Deserializer { buf, pos: 0, depth: 0, str_fields: false }
    }

    /// The same, handing field names to visitors as strings: slower, for
    /// error paths that name the field.
    pub fn naming_fields(buf: &'de [u8]) -> Self {
        Deserializer { buf, pos: 0, depth: 0, str_fields: true }
    }

    /// Fails unless the whole input was read.
    pub fn end(&self) -> Result<(), Error> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(Error(format!("trailing bytes at byte {}", self.pos)))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Error(format!("malformed MessagePack at byte {}: unexpected end of input", self.pos))),
        }
    }

    fn be(&mut self, n: usize) -> Result<u64, Error> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }

    fn str(&mut self, n: usize) -> Result<Token<'de>, Error> {
        let at = self.pos;
        let raw = self.take(n)?;
        std::str::from_utf8(raw)
            .map(Token::Str)
            .map_err(|_| Error(format!("malformed MessagePack at byte {}: string is not valid UTF-8", at)))
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The next item. Not generic: compiled once, whatever the visitors.
    fn token(&mut self) -> Result<Token<'de>, Error> {
        let at = self.pos;
        let byte = self.take(1)?[0];
        Ok(match Marker::from_u8(byte) {
            Marker::FixPos(n) => Token::Uint(n as u64),
            Marker::FixNeg(n) => Token::Int(n as i64),
            Marker::Null => Token::Nil,
            Marker::True => Token::Bool(true),
            Marker::False => Token::Bool(false),
            Marker::U8 => Token::Uint(self.be(1)?),
            Marker::U16 => Token::Uint(self.be(2)?),
            Marker::U32 => Token::Uint(self.be(4)?),
            Marker::U64 => Token::Uint(self.be(8)?),
            Marker::I8 => Token::Int(self.be(1)? as u8 as i8 as i64),
            Marker::I16 => Token::Int(self.be(2)? as u16 as i16 as i64),
            Marker::I32 => Token::Int(self.be(4)? as u32 as i32 as i64),
            Marker::I64 => Token::Int(self.be(8)? as i64),
            Marker::F32 => Token::Float(f32::from_bits(self.be(4)? as u32) as f64),
            Marker::F64 => Token::Float(f64::from_bits(self.be(8)?)),
            Marker::FixStr(n) => self.str(n as usize)?,
            Marker::Str8 => {
                let n = self.be(1)? as usize;
                self.str(n)?
            }
            Marker::Str16 => {
                let n = self.be(2)? as usize;
                self.str(n)?
            }
            Marker::Str32 => {
                let n = self.be(4)? as usize;
                self.str(n)?
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let n = self.be(1 << (byte - 0xc4))? as usize;
                Token::Bin(self.take(n)?)
            }
            Marker::FixArray(n) => Token::Array(n as usize),
            Marker::Array16 => Token::Array(self.be(2)? as usize),
            Marker::Array32 => Token::Array(self.be(4)? as usize),
            Marker::FixMap(n) => Token::Map(n as usize),
            Marker::Map16 => Token::Map(self.be(2)? as usize),
            Marker::Map32 => Token::Map(self.be(4)? as usize),
            _ => return Err(Error(format!("malformed MessagePack at byte {}: extension types are not part of the podplug ABI", at))),
        })
    }

    fn nested(&mut self, len: usize) -> Result<(), Error> {
        // Every item takes a byte: a count the input cannot hold is refused.
        if len > self.buf.len() - self.pos {
            return Err(Error(format!("malformed MessagePack at byte {}: unexpected end of input", self.pos)));
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error(format!("nesting deeper than {}", MAX_DEPTH)));
        }
        Ok(())
    }
}

impl<'de, 'a> de::Deserializer<'de> for &'a mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.token()? {
            Token::Nil => visitor.visit_unit(),
            Token::Bool(b) => visitor.visit_bool(b),
            Token::Uint(u) => visitor.visit_u64(u),
            Token::Int(i) => visitor.visit_i64(i),
            Token::Float(f) => visitor.visit_f64(f),
            Token::Str(s) => visitor.visit_borrowed_str(s),
            Token::Bin(b) => visitor.visit_borrowed_bytes(b),
            Token::Array(n) => {
                self.nested(n)?;
                let v = visitor.visit_seq(Access { de: &mut *self, left: n })?;
                self.depth -= 1;
                Ok(v)
            }
            Token::Map(n) => {
                self.nested(n)?;
                let v = visitor.visit_map(Access { de: &mut *self, left: n })?;
                self.depth -= 1;
                Ok(v)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.peek() == Some(0xc0) {
            self.pos += 1;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.pos = wire::skip(self.buf, self.pos).map_err(|e| Error(e.to_string()))?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Error> {
        if name == RAW {
            // A part decoded later (`request::Lazy`): its encoded bytes, unread.
            let start = self.pos;
            self.pos = wire::skip(self.buf, start).map_err(|e| Error(e.to_string()))?;
            return visitor.visit_borrowed_bytes(&self.buf[start..self.pos]);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // A unit variant is its name; a variant with data a one-entry map.
        match self.token()? {
            Token::Str(s) => visitor.visit_enum(s.into_deserializer()),
            Token::Map(1) => visitor.visit_enum(Variant { de: self }),
            _ => Err(de::Error::custom("expected a variant name or a one-entry map")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // A typed view's field names are only compared with the names it
        // knows, never handed out: matched as bytes, they skip the UTF-8
        // check that every other string pays (most strings of a Pod are keys).
        let len = match self.peek() {
            _ if self.str_fields => return self.deserialize_any(visitor),
            Some(b @ 0xa0..=0xbf) => {
                self.pos += 1;
                (b & 0x1f) as usize
            }
            Some(0xd9) => {
                self.pos += 1;
                self.be(1)? as usize
            }
            _ => return self.deserialize_any(visitor),
        };
        visitor.visit_borrowed_bytes(self.take(len)?)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct
    }
}

/// The items of an array, or the entries of a map, still to read.
struct Access<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de, 'a> de::SeqAccess<'de> for Access<'a, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de, 'a> de::MapAccess<'de> for Access<'a, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

struct Variant<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let v = seed.deserialize(&mut *self.de)?;
        Ok((v, self))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for Variant<'a, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(&mut *self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(&mut *self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(&mut *self.de, visitor)
    }
}

/// `T` from all of `bytes`.
pub fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    let mut de = Deserializer::new(bytes);
    let v = T::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{list, map, Value};

    #[test]
    fn every_kind_round_trips_through_value() {
        let v = map! {
            "nil" => Value::Nil, "t" => true, "neg" => -40000, "big" => u64::MAX,
            "f" => 0.5, "s" => "日本🦀", "bin" => Value::Bin(vec![1, 2]),
            "arr" => list![1, "x"], "m" => map! {},
        };
        assert_eq!(from_slice::<Value>(&v.to_msgpack()).unwrap(), v);
    }

    #[test]
    fn non_canonical_forms_decode() {
        assert_eq!(from_slice::<Value>(&[0xd0, 0x05]).unwrap(), Value::Int(5));
        assert_eq!(from_slice::<Value>(&[0xca, 0x3f, 0x00, 0x00, 0x00]).unwrap(), Value::Float(0.5));
        assert_eq!(from_slice::<Value>(&[0xda, 0, 1, b'a']).unwrap(), Value::from("a"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let e = |b: &[u8]| from_slice::<Value>(b).unwrap_err().to_string();
        assert_eq!(e(&[0x92, 0x01]), "malformed MessagePack at byte 1: unexpected end of input");
        assert_eq!(e(&[0x01, 0x02]), "trailing bytes at byte 1");
        assert_eq!(e(&[0x81, 0x01, 0x01]), "invalid type: integer `1`, expected a string");
        assert_eq!(e(&[0xa1, 0xff]), "malformed MessagePack at byte 1: string is not valid UTF-8");
        assert_eq!(e(&[0xdd, 0xff, 0xff, 0xff, 0xff]), "malformed MessagePack at byte 5: unexpected end of input");
        let deep: Vec<u8> = std::iter::repeat(0x91).take(1000).chain([0xc0]).collect();
        assert_eq!(e(&deep), "nesting deeper than 256");
    }
}
