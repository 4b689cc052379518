//! MessagePack for the subset docs/abi.md uses, written here rather than taken
//! from rmp/rmpv: the canonical encoding (smallest headers, keys in order) is
//! the contract, and a small codec keeps the module small and the dependency
//! set satisfiable by Debian's offline registry.

use std::fmt;

use crate::value::{Map, Value};

/// Deeper nesting than any Kubernetes object needs; bounds recursion on
/// hostile input.
const MAX_DEPTH: usize = 256;

/// Malformed MessagePack input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed MessagePack at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

pub(crate) fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => write_int(*i, out),
        Value::UInt(u) => write_uint(*u, out),
        Value::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Str(s) => write_str(s, out),
        Value::Bin(b) => {
            write_len(b.len(), [0xc4, 0xc5, 0xc6], out);
            out.extend_from_slice(b);
        }
        Value::Array(a) => {
            write_array_len(a.len(), out);
            for item in a {
                encode(item, out);
            }
        }
        Value::Map(m) => {
            write_map_len(m.len(), out);
            for (k, item) in m.iter() {
                write_str(k, out);
                encode(item, out);
            }
        }
    }
}

pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    if s.len() < 32 {
        out.push(0xa0 | s.len() as u8);
    } else {
        write_len(s.len(), [0xd9, 0xda, 0xdb], out);
    }
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn write_array_len(n: usize, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else {
        write_len16(n, [0xdc, 0xdd], out);
    }
}

pub(crate) fn write_map_len(n: usize, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else {
        write_len16(n, [0xde, 0xdf], out);
    }
}

/// 8/16/32-bit length headers (str and bin).
fn write_len(n: usize, markers: [u8; 3], out: &mut Vec<u8>) {
    if n <= 0xff {
        out.push(markers[0]);
        out.push(n as u8);
    } else {
        write_len16(n, [markers[1], markers[2]], out);
    }
}

/// 16/32-bit length headers (array, map, and the upper forms of str/bin).
fn write_len16(n: usize, markers: [u8; 2], out: &mut Vec<u8>) {
    if n <= 0xffff {
        out.push(markers[0]);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(markers[1]);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn write_uint(u: u64, out: &mut Vec<u8>) {
    if u < 0x80 {
        out.push(u as u8);
    } else if u <= 0xff {
        out.extend_from_slice(&[0xcc, u as u8]);
    } else if u <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

/// Non-negative integers take the unsigned forms, as Python's msgpack does.
fn write_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        write_uint(i as u64, out);
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(r.err("trailing bytes after the value"));
    }
    Ok(v)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: &'static str) -> DecodeError {
        DecodeError { offset: self.pos, reason }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(self.err("unexpected end of input"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }

    fn string(&mut self, n: usize) -> Result<String, DecodeError> {
        let start = self.pos;
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(DecodeError { offset: start, reason: "string is not valid UTF-8" }),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => Value::Int(marker as i64),
            0x80..=0x8f => self.map((marker & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array((marker & 0x0f) as usize, depth)?,
            0xa0..=0xbf => Value::Str(self.string((marker & 0x1f) as usize)?),
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.be(1 << (marker - 0xc4))? as usize;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xca => Value::Float(f32::from_bits(self.be(4)? as u32) as f64),
            0xcb => Value::Float(f64::from_bits(self.be(8)?)),
            0xcc..=0xcf => Value::from(self.be(1 << (marker - 0xcc))?),
            0xd0 => Value::Int(self.be(1)? as u8 as i8 as i64),
            0xd1 => Value::Int(self.be(2)? as u16 as i16 as i64),
            0xd2 => Value::Int(self.be(4)? as u32 as i32 as i64),
            0xd3 => Value::Int(self.be(8)? as i64),
            0xd9..=0xdb => {
                let n = self.be(1 << (marker - 0xd9))? as usize;
                Value::Str(self.string(n)?)
            }
            0xdc | 0xdd => {
                let n = self.be(2 << (marker - 0xdc))? as usize;
                self.array(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.be(2 << (marker - 0xde))? as usize;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(marker as i8 as i64),
            _ => {
                self.pos -= 1;
                return Err(self.err("extension types are not part of the podplug ABI"));
            }
        })
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        // Every element takes at least one byte: cap the reservation by what is left.
        let mut out = Vec::with_capacity(n.min(self.buf.len() - self.pos));
        for _ in 0..n {
            out.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(out))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut out = Map::with_capacity(n.min((self.buf.len() - self.pos) / 2));
        for _ in 0..n {
            let key = match self.value(depth + 1)? {
                Value::Str(s) => s,
                _ => return Err(self.err("map keys must be strings")),
            };
            let v = self.value(depth + 1)?;
            out.push(key, v);
        }
        Ok(Value::Map(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: impl Into<Value>) -> Vec<u8> {
        v.into().to_msgpack()
    }

    #[test]
    fn integers_take_the_smallest_form() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0xcc, 0x80]);
        assert_eq!(enc(256), [0xcd, 0x01, 0x00]);
        assert_eq!(enc(65536), [0xce, 0, 1, 0, 0]);
        assert_eq!(enc(1u64 << 32), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(enc(-1), [0xff]);
        assert_eq!(enc(-32), [0xe0]);
        assert_eq!(enc(-33), [0xd0, 0xdf]);
        assert_eq!(enc(-129), [0xd1, 0xff, 0x7f]);
        assert_eq!(enc(-32769), [0xd2, 0xff, 0xff, 0x7f, 0xff]);
        assert_eq!(enc(i64::MIN)[0], 0xd3);
    }

    #[test]
    fn string_and_container_headers_change_at_their_boundaries() {
        assert_eq!(enc("a".repeat(31))[0], 0xbf);
        assert_eq!(enc("a".repeat(32))[..2], [0xd9, 32]);
        assert_eq!(enc("a".repeat(256))[..3], [0xda, 1, 0]);
        assert_eq!(enc("a".repeat(65536))[..5], [0xdb, 0, 1, 0, 0]);
        assert_eq!(enc(vec![0; 15])[0], 0x9f);
        assert_eq!(enc(vec![0; 16])[..3], [0xdc, 0, 16]);
        assert_eq!(enc(vec![0; 65536])[..5], [0xdd, 0, 1, 0, 0]);
        let m: Map = (0..16).map(|i| (i.to_string(), 0)).collect();
        assert_eq!(enc(m)[..3], [0xde, 0, 16]);
    }

    #[test]
    fn decode_round_trips_every_kind() {
        let v = crate::map! {
            "nil" => Value::Nil, "t" => true, "neg" => -40000, "big" => u64::MAX,
            "f" => 0.5, "s" => "日本🦀", "bin" => Value::Bin(vec![1, 2]),
            "arr" => crate::list![1, "x"], "m" => crate::map! {},
        };
        assert_eq!(decode(&v.to_msgpack()).unwrap(), v);
    }

    #[test]
    fn decode_reads_non_canonical_forms() {
        assert_eq!(decode(&[0xd0, 0x05]).unwrap(), Value::Int(5));
        assert_eq!(decode(&[0xca, 0x3f, 0x00, 0x00, 0x00]).unwrap(), Value::Float(0.5));
        assert_eq!(decode(&[0xda, 0, 1, b'a']).unwrap(), Value::from("a"));
    }

    #[test]
    fn decode_rejects_malformed_input() {
        assert_eq!(decode(&[0x92, 0x01]).unwrap_err().reason, "unexpected end of input");
        assert_eq!(decode(&[0x01, 0x02]).unwrap_err().reason, "trailing bytes after the value");
        assert_eq!(decode(&[0x81, 0x01, 0x01]).unwrap_err().reason, "map keys must be strings");
        assert_eq!(decode(&[0xa1, 0xff]).unwrap_err().reason, "string is not valid UTF-8");
        assert_eq!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).unwrap_err().reason, "unexpected end of input");
        let deep: Vec<u8> = std::iter::repeat(0x91).take(1000).chain([0xc0]).collect();
        assert_eq!(decode(&deep).unwrap_err().reason, "nesting too deep");
    }
}
