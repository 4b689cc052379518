//! The request on the wire: a MessagePack map whose values are kept as the
//! byte slices they occupy, so each part is decoded (by src/de.rs, borrowing
//! its strings from the request) only when the plugin reads it (responses are
//! encoded by `Value::encode_into`, with rmp's writers). Finding a
//! value's extent walks its markers without allocating or recursing, so a
//! deeply nested or huge part the plugin never reads costs a scan, not a
//! decode.

use std::fmt;

use rmp::Marker;

/// Malformed MessagePack in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed MessagePack at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

fn err(offset: usize, reason: &'static str) -> DecodeError {
    DecodeError { offset, reason: reason.into() }
}

fn be(buf: &[u8], pos: usize, n: usize) -> Result<usize, DecodeError> {
    let bytes = buf.get(pos..pos + n).ok_or_else(|| err(pos, "unexpected end of input"))?;
    Ok(bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize))
}

/// The end of the value starting at `pos`. Iterative: a count of values still
/// to skip replaces recursion, so nesting depth cannot overflow the stack.
pub fn skip(buf: &[u8], mut pos: usize) -> Result<usize, DecodeError> {
    let mut pending: usize = 1;
    while pending > 0 {
        pending -= 1;
        let at = pos;
        let byte = *buf.get(pos).ok_or_else(|| err(pos, "unexpected end of input"))?;
        pos += 1;
        // The markers of almost every item, first: fuel is counted per instruction.
        match byte {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => continue,
            0xa0..=0xbf => {
                let n = (byte & 0x1f) as usize;
                if n > buf.len() - pos {
                    return Err(err(pos, "unexpected end of input"));
                }
                pos += n;
                continue;
            }
            0x80..=0x8f => {
                pending += 2 * (byte & 0x0f) as usize;
                if pending > buf.len() - pos {
                    return Err(err(pos, "unexpected end of input"));
                }
                continue;
            }
            0x90..=0x9f => {
                pending += (byte & 0x0f) as usize;
                if pending > buf.len() - pos {
                    return Err(err(pos, "unexpected end of input"));
                }
                continue;
            }
            _ => {}
        }
        // (payload bytes, header bytes holding a length, values inside)
        let (mut payload, len_bytes, items_per_len) = match Marker::from_u8(byte) {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => (0, 0, 0),
            Marker::U8 | Marker::I8 => (1, 0, 0),
            Marker::U16 | Marker::I16 => (2, 0, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0, 0),
            Marker::FixStr(n) => (n as usize, 0, 0),
            Marker::Str8 | Marker::Bin8 => (0, 1, 0),
            Marker::Str16 | Marker::Bin16 => (0, 2, 0),
            Marker::Str32 | Marker::Bin32 => (0, 4, 0),
            Marker::FixArray(n) => {
                pending += n as usize;
                (0, 0, 0)
            }
            Marker::FixMap(n) => {
                pending += 2 * n as usize;
                (0, 0, 0)
            }
            Marker::Array16 => (0, 2, 1),
            Marker::Array32 => (0, 4, 1),
            Marker::Map16 => (0, 2, 2),
            Marker::Map32 => (0, 4, 2),
            _ => return Err(err(at, "extension types are not part of the podplug ABI")),
        };
        if len_bytes > 0 {
            let n = be(buf, pos, len_bytes)?;
            pos += len_bytes;
            if items_per_len == 0 {
                payload = n;
            } else {
                // Every value takes at least a byte: a count the rest of the
                // input cannot hold is refused before it is trusted.
                if n > buf.len() - pos {
                    return Err(err(at, "unexpected end of input"));
                }
                pending += items_per_len * n;
            }
        }
        if payload > buf.len() - pos {
            return Err(err(pos, "unexpected end of input"));
        }
        pos += payload;
        if pending > buf.len() - pos {
            return Err(err(pos, "unexpected end of input"));
        }
    }
    Ok(pos)
}

/// A string at `pos`: (the string, the position after it).
fn str_at(buf: &[u8], pos: usize) -> Result<(&str, usize), DecodeError> {
    let byte = *buf.get(pos).ok_or_else(|| err(pos, "unexpected end of input"))?;
    let (len, start) = match Marker::from_u8(byte) {
        Marker::FixStr(n) => (n as usize, pos + 1),
        Marker::Str8 => (be(buf, pos + 1, 1)?, pos + 2),
        Marker::Str16 => (be(buf, pos + 1, 2)?, pos + 3),
        Marker::Str32 => (be(buf, pos + 1, 4)?, pos + 5),
        _ => return Err(err(pos, "map keys must be strings")),
    };
    let raw = buf.get(start..start + len).ok_or_else(|| err(start, "unexpected end of input"))?;
    let s = std::str::from_utf8(raw).map_err(|_| err(start, "string is not valid UTF-8"))?;
    Ok((s, start + len))
}

/// The entries of the map that is all of `buf`, each value as its bytes.
pub fn entries(buf: &[u8]) -> Result<Vec<(&str, &[u8])>, DecodeError> {
    let byte = *buf.first().ok_or_else(|| err(0, "unexpected end of input"))?;
    let (n, mut pos) = match Marker::from_u8(byte) {
        Marker::FixMap(n) => (n as usize, 1),
        Marker::Map16 => (be(buf, 1, 2)?, 3),
        Marker::Map32 => (be(buf, 1, 4)?, 5),
        _ => return Err(err(0, "a request is a map")),
    };
    let mut out = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let (key, value_at) = str_at(buf, pos)?;
        let end = skip(buf, value_at)?;
        out.push((key, &buf[value_at..end]));
        pos = end;
    }
    if pos != buf.len() {
        return Err(err(pos, "trailing bytes after the value"));
    }
    Ok(out)
}

/// Deserializes one value, borrowing strings from `bytes`.
pub fn decode<T: serde::Deserialize<'static>>(bytes: &'static [u8]) -> Result<T, crate::de::Error> {
    crate::de::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_finds_the_end_of_every_kind() {
        let v = crate::map! { "a" => crate::list![1, -40000, "x".repeat(40), 0.5], "b" => crate::map! { "c" => Value::Nil } };
        let mut bytes = v.to_msgpack();
        let len = bytes.len();
        bytes.push(0xc0);
        assert_eq!(skip(&bytes, 0).unwrap(), len);
    }

    #[test]
    fn skip_refuses_truncated_and_hostile_counts() {
        assert_eq!(skip(&[0x92, 0x01], 0).unwrap_err().reason, "unexpected end of input");
        assert_eq!(skip(&[0xdd, 0xff, 0xff, 0xff, 0xff], 0).unwrap_err().reason, "unexpected end of input");
        assert_eq!(skip(&[0xdb, 0xff, 0xff, 0xff, 0xff, 0x41], 0).unwrap_err().reason, "unexpected end of input");
        assert_eq!(skip(&[0xc7, 0x01, 0x01, 0x00], 0).unwrap_err().reason, "extension types are not part of the podplug ABI");
        // Deep nesting is a scan, not recursion.
        let deep: Vec<u8> = std::iter::repeat(0x91).take(100_000).chain([0xc0]).collect();
        assert_eq!(skip(&deep, 0).unwrap(), deep.len());
    }

    #[test]
    fn entries_keep_each_value_as_its_bytes() {
        let v = crate::map! { "abi" => 2, "pod" => crate::map! { "x" => "y" } };
        let bytes = v.to_msgpack();
        let e = entries(&bytes).unwrap();
        assert_eq!(e[0], ("abi", &[0x02u8][..]));
        assert_eq!(e[1].0, "pod");
        assert_eq!(entries(&[0x81, 0x01, 0x01]).unwrap_err().reason, "map keys must be strings");
        assert_eq!(entries(&[0x80, 0x01]).unwrap_err().reason, "trailing bytes after the value");
        assert_eq!(entries(&[0x91, 0x01]).unwrap_err().reason, "a request is a map");
    }

    use crate::Value;
}
