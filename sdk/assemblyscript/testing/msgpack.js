// A small MessagePack codec for Node, with the canonical encoding of
// docs/abi.md (smallest headers, strings as `str`, non-integers as float64).
// Used by the metadata post-build step and the test harness; plugins
// themselves use the AssemblyScript codec in assembly/msgpack.ts.

const te = new TextEncoder();
const td = new TextDecoder("utf-8", { fatal: true });

class Out {
  constructor() { this.buf = new Uint8Array(256); this.view = new DataView(this.buf.buffer); this.pos = 0; }
  reserve(n) {
    if (this.pos + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
      next.set(this.buf.subarray(0, this.pos));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8(b) { const at = this.reserve(1); this.buf[at] = b; }
  head(tag, size, n) {
    const at = this.reserve(1 + size);
    this.buf[at] = tag;
    if (size === 1) this.buf[at + 1] = n;
    else if (size === 2) this.view.setUint16(at + 1, n);
    else this.view.setUint32(at + 1, n);
  }
  bytes(b) { const at = this.reserve(b.length); this.buf.set(b, at); }
}

function encodeInt(out, n) {
  if (typeof n === "bigint") {
    if (n >= 0n && n <= 0xffffffffn) return encodeInt(out, Number(n));
    if (n < 0n && n >= -0x80000000n) return encodeInt(out, Number(n));
    const at = out.reserve(9);
    out.buf[at] = n >= 0n ? 0xcf : 0xd3;
    if (n >= 0n) out.view.setBigUint64(at + 1, n); else out.view.setBigInt64(at + 1, n);
    return;
  }
  if (n >= 0) {
    if (n <= 0x7f) out.u8(n);
    else if (n <= 0xff) out.head(0xcc, 1, n);
    else if (n <= 0xffff) out.head(0xcd, 2, n);
    else if (n <= 0xffffffff) out.head(0xce, 4, n);
    else encodeInt(out, BigInt(n));
  } else if (n >= -32) out.u8(n & 0xff);
  else if (n >= -128) out.head(0xd0, 1, n & 0xff);
  else if (n >= -32768) out.head(0xd1, 2, n & 0xffff);
  else if (n >= -2147483648) out.head(0xd2, 4, n >>> 0);
  else encodeInt(out, BigInt(n));
}

function encodeValue(out, v) {
  if (v === null || v === undefined) out.u8(0xc0);
  else if (v === false) out.u8(0xc2);
  else if (v === true) out.u8(0xc3);
  else if (typeof v === "bigint") encodeInt(out, v);
  else if (typeof v === "number") {
    if (Number.isInteger(v) && Number.isSafeInteger(v)) encodeInt(out, v);
    else { const at = out.reserve(9); out.buf[at] = 0xcb; out.view.setFloat64(at + 1, v); }
  } else if (typeof v === "string") {
    const b = te.encode(v); // lone surrogates become U+FFFD, as in the AS encoder
    const n = b.length;
    if (n <= 31) out.u8(0xa0 | n);
    else if (n <= 0xff) out.head(0xd9, 1, n);
    else if (n <= 0xffff) out.head(0xda, 2, n);
    else out.head(0xdb, 4, n);
    out.bytes(b);
  } else if (v instanceof Uint8Array) {
    const n = v.length;
    if (n <= 0xff) out.head(0xc4, 1, n);
    else if (n <= 0xffff) out.head(0xc5, 2, n);
    else out.head(0xc6, 4, n);
    out.bytes(v);
  } else if (Array.isArray(v)) {
    const n = v.length;
    if (n <= 15) out.u8(0x90 | n);
    else if (n <= 0xffff) out.head(0xdc, 2, n);
    else out.head(0xdd, 4, n);
    for (const item of v) encodeValue(out, item);
  } else {
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
    const n = entries.length;
    if (n <= 15) out.u8(0x80 | n);
    else if (n <= 0xffff) out.head(0xde, 2, n);
    else out.head(0xdf, 4, n);
    for (const [k, item] of entries) { encodeValue(out, String(k)); encodeValue(out, item); }
  }
}

/** Canonical MessagePack bytes of a JS value (objects and Maps become maps). */
export function encode(value) {
  const out = new Out();
  encodeValue(out, value);
  return out.buf.slice(0, out.pos);
}

/** Decodes MessagePack; maps become plain objects (or Maps with {maps: true},
 * which keep integer-like keys in wire order). Integers beyond 2^53 are BigInts. */
export function decode(bytes, { maps = false } = {}) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const need = (n) => { if (pos + n > bytes.length) throw new Error("msgpack: truncated input"); };
  const big = (x) => (x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x);
  const str = (n) => { need(n); const s = td.decode(bytes.subarray(pos, pos + n)); pos += n; return s; };
  const bin = (n) => { need(n); const b = bytes.slice(pos, pos + n); pos += n; return b; };
  const arr = (n) => { const a = []; for (let i = 0; i < n; i++) a.push(value()); return a; };
  const map = (n) => {
    if (maps) { const m = new Map(); for (let i = 0; i < n; i++) { const k = value(); m.set(k, value()); } return m; }
    const o = {};
    for (let i = 0; i < n; i++) { const k = value(); o[k] = value(); }
    return o;
  };
  const rd = (fn, n) => { need(n); const x = view[fn](pos); pos += n; return x; };
  function value() {
    need(1);
    const t = bytes[pos++];
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t <= 0x8f) return map(t & 0x0f);
    if (t <= 0x9f) return arr(t & 0x0f);
    if (t <= 0xbf) return str(t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(rd("getUint8", 1));
      case 0xc5: return bin(rd("getUint16", 2));
      case 0xc6: return bin(rd("getUint32", 4));
      case 0xca: return rd("getFloat32", 4);
      case 0xcb: return rd("getFloat64", 8);
      case 0xcc: return rd("getUint8", 1);
      case 0xcd: return rd("getUint16", 2);
      case 0xce: return rd("getUint32", 4);
      case 0xcf: return big(rd("getBigUint64", 8));
      case 0xd0: return rd("getInt8", 1);
      case 0xd1: return rd("getInt16", 2);
      case 0xd2: return rd("getInt32", 4);
      case 0xd3: return big(rd("getBigInt64", 8));
      case 0xd9: return str(rd("getUint8", 1));
      case 0xda: return str(rd("getUint16", 2));
      case 0xdb: return str(rd("getUint32", 4));
      case 0xdc: return arr(rd("getUint16", 2));
      case 0xdd: return arr(rd("getUint32", 4));
      case 0xde: return map(rd("getUint16", 2));
      case 0xdf: return map(rd("getUint32", 4));
      default: throw new Error(`msgpack: unsupported type 0x${t.toString(16)}`);
    }
  }
  const v = value();
  if (pos !== bytes.length) throw new Error(`msgpack: trailing bytes at offset ${pos}`);
  return v;
}
