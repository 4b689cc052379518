// MessagePack for podplug: a lazy decoder to an ordered Value tree and an encoder
// with the canonical encoding of docs/abi.md (smallest int/str/array/map headers,
// strings as `str`, floats as float64 like the host's msgpack-python).
//
// AssemblyScript has no exceptions, so decoding reports failure through
// `Decoder.error` instead of throwing (a throw would abort the whole call).

/** What a Value holds. */
export const enum Kind {
  Nil = 0,
  Bool = 1,
  /** A signed integer; every MessagePack integer that fits in i64. */
  Int = 2,
  /** An unsigned integer above i64's range (2^63 .. 2^64-1). */
  Uint = 3,
  Float = 4,
  Str = 5,
  Bin = 6,
  Array = 7,
  Map = 8,
}

/**
 * A decoded MessagePack value. Maps keep the order of their keys (the order on
 * the wire, or the order of `set` calls), which is what the canonical encoding
 * of passthrough objects needs.
 *
 * Decoded strings and map keys stay UTF-8 slices of the input (which lives,
 * unchanged, for the whole call) until read as strings: most of a request is
 * never read, and what a plugin passes through is re-encoded by copying bytes.
 */
export class Value {
  kind: Kind = Kind.Nil;
  private b: bool = false;
  private n: i64 = 0;
  private f: f64 = 0;
  /** The string; null while it is only the UTF-8 slice `raw`. */
  private s: string | null = null;
  /** A UTF-8 slice, `(ptr << 32) | len`. */
  private raw: u64 = 0;
  private bytes: Uint8Array | null = null;
  private items: Value[] | null = null;
  /** Map keys as strings; null while they are only the slices in `rawKeys`. */
  private mapKeys: string[] | null = null;
  private rawKeys: u64[] | null = null;
  /** An array or map not decoded yet: its items are the bytes `body..end`
   * (`body` is 0 once decoded), and it is container number `index` of
   * `layout`. The input was checked whole before any of it is read, so
   * decoding a level later cannot fail. */
  private body: usize = 0;
  private end: usize = 0;
  private count: u32 = 0;
  private index: i32 = 0;
  private layout: Layout | null = null;

  // -- constructors

  static nil(): Value { return new Value(); }
  static bool(b: bool): Value { const v = new Value(); v.kind = Kind.Bool; v.b = b; return v; }
  static int(n: i64): Value { const v = new Value(); v.kind = Kind.Int; v.n = n; return v; }
  static uint(n: u64): Value {
    const v = new Value();
    v.kind = n > <u64>i64.MAX_VALUE ? Kind.Uint : Kind.Int;
    v.n = <i64>n;
    return v;
  }
  static float(f: f64): Value { const v = new Value(); v.kind = Kind.Float; v.f = f; return v; }
  static str(s: string): Value { const v = new Value(); v.kind = Kind.Str; v.s = s; return v; }
  /** A string that is the `len` UTF-8 bytes at `ptr`, decoded when first read;
   * the bytes must not change while the Value is in use. */
  static utf8(ptr: usize, len: u32): Value {
    const v = new Value(); v.kind = Kind.Str; v.raw = (<u64>ptr << 32) | <u64>len; return v;
  }
  static bin(bytes: Uint8Array): Value { const v = new Value(); v.kind = Kind.Bin; v.bytes = bytes; return v; }
  /** An array; `items` is used as is (not copied). */
  static array(items: Value[] = []): Value {
    const v = new Value(); v.kind = Kind.Array; v.items = items; return v;
  }
  static strArray(items: string[]): Value {
    const out = new Array<Value>(items.length);
    for (let i = 0; i < items.length; i++) out[i] = Value.str(items[i]);
    return Value.array(out);
  }
  /** An array or map whose `count` items are the encoded bytes
   * `body..end`, decoded on first use. */
  static lazy(kind: Kind, body: usize, end: usize, count: u32, layout: Layout, index: i32): Value {
    const v = new Value();
    v.kind = kind; v.body = body; v.end = end; v.count = count; v.layout = layout; v.index = index;
    return v;
  }

  /** Decodes this array's or map's own level, once: items that are arrays or
   * maps stay undecoded until they are read in turn. */
  private force(): void {
    if (this.body == 0) return;
    const d = new Decoder(this.body, this.end - this.body);
    d.layout = this.layout;
    d.container = this.index + 1;
    const n = <i32>this.count;
    const values = new Array<Value>(n);
    if (this.kind == Kind.Array) {
      for (let i = 0; i < n; i++) values[i] = d.next();
    } else {
      const keys = new Array<u64>(n);
      for (let i = 0; i < n; i++) { keys[i] = d.nextKey(); values[i] = d.next(); }
      this.rawKeys = keys;
    }
    this.items = values;
    this.body = 0;
  }

  /** An empty map; fill it with `set`. */
  static map(): Value {
    const v = new Value(); v.kind = Kind.Map; v.items = []; v.mapKeys = []; return v;
  }

  // -- type tests

  get isNil(): bool { return this.kind == Kind.Nil; }
  get isBool(): bool { return this.kind == Kind.Bool; }
  /** Int or Uint. */
  get isInt(): bool { return this.kind == Kind.Int || this.kind == Kind.Uint; }
  get isFloat(): bool { return this.kind == Kind.Float; }
  get isString(): bool { return this.kind == Kind.Str; }
  get isBin(): bool { return this.kind == Kind.Bin; }
  get isArray(): bool { return this.kind == Kind.Array; }
  get isMap(): bool { return this.kind == Kind.Map; }

  // -- scalars (a wrong kind answers the zero value: test with is* first)

  asBool(): bool { return this.kind == Kind.Bool ? this.b : false; }
  /** The integer (Uint values above i64 wrap: test `kind == Kind.Uint`). */
  asInt(): i64 { return this.isInt ? this.n : 0; }
  asUint(): u64 { return this.isInt ? <u64>this.n : 0; }
  /** Floats as they are, integers converted. */
  asFloat(): f64 {
    if (this.kind == Kind.Float) return this.f;
    if (this.kind == Kind.Int) return <f64>this.n;
    if (this.kind == Kind.Uint) return <f64><u64>this.n;
    return 0;
  }
  asString(): string {
    if (this.kind != Kind.Str) return "";
    let s = this.s;
    if (s === null) {
      s = utf8ToString(<usize>(this.raw >>> 32), <usize>(this.raw & 0xffffffff));
      this.s = s;
    }
    return s;
  }
  asBytes(): Uint8Array { const b = this.bytes; return this.kind == Kind.Bin && b ? b : new Uint8Array(0); }

  /** The text of a scalar: strings as they are, numbers in decimal, bools as
   * true/false, nil as "" (used for Kubernetes quantities written as numbers). */
  toText(): string {
    switch (this.kind) {
      case Kind.Str: return this.asString();
      case Kind.Int: return this.n.toString();
      case Kind.Uint: return (<u64>this.n).toString();
      case Kind.Float: return this.f.toString();
      case Kind.Bool: return this.b ? "true" : "false";
      default: return "";
    }
  }

  // -- arrays and maps

  /** Number of array items or map entries; 0 for scalars. */
  get length(): i32 {
    if (this.body != 0) return <i32>this.count;
    const items = this.items;
    return (this.kind == Kind.Array || this.kind == Kind.Map) && items ? items.length : 0;
  }

  /** Array items, or map values in key order; [] for scalars. */
  values(): Value[] {
    this.force();
    const items = this.items;
    return (this.kind == Kind.Array || this.kind == Kind.Map) && items ? items : [];
  }

  /** Map keys in order; [] for anything else. */
  keys(): string[] {
    return this.kind == Kind.Map ? this.stringKeys() : [];
  }

  /** Array item `i`, or null when out of range or not an array. */
  at(i: i32): Value | null {
    if (this.kind != Kind.Array) return null;
    this.force();
    const items = this.items!;
    return i >= 0 && i < items.length ? items[i] : null;
  }

  /** Appends to an array; returns this. */
  push(item: Value): Value {
    this.force();
    if (this.kind == Kind.Array) this.items!.push(item);
    return this;
  }

  /** The keys as strings, decoding the raw ones once (a map being changed
   * switches to string keys for good). */
  private stringKeys(): string[] {
    this.force();
    let keys = this.mapKeys;
    if (keys === null) {
      const raw = this.rawKeys!;
      keys = new Array<string>(raw.length);
      for (let i = 0; i < raw.length; i++) {
        keys[i] = utf8ToString(<usize>(raw[i] >>> 32), <usize>(raw[i] & 0xffffffff));
      }
      this.mapKeys = keys;
      this.rawKeys = null;
    }
    return keys;
  }

  private indexOf(key: string): i32 {
    if (this.kind != Kind.Map) return -1;
    this.force();
    const keys = this.mapKeys;
    if (keys !== null) {
      for (let i = 0; i < keys.length; i++) if (keys[i] == key) return i;
      return -1;
    }
    // Raw keys: compare bytes, without decoding them.
    const raw = this.rawKeys!;
    const src = changetype<usize>(key);
    const units = <usize>key.length;
    if (asciiPrefix(src, units) == units) {
      for (let i = 0; i < raw.length; i++) {
        if (<usize>(raw[i] & 0xffffffff) != units) continue;
        const p = <usize>(raw[i] >>> 32);
        let j: usize = 0;
        while (j < units && <u32>load<u8>(p + j) == <u32>load<u16>(src + (j << 1))) j++;
        if (j == units) return i;
      }
      return -1;
    }
    const utf8 = String.UTF8.encode(key, false, String.UTF8.ErrorMode.REPLACE);
    const n = <usize>utf8.byteLength;
    for (let i = 0; i < raw.length; i++) {
      if (<usize>(raw[i] & 0xffffffff) == n
          && memory.compare(<usize>(raw[i] >>> 32), changetype<usize>(utf8), n) == 0) return i;
    }
    return -1;
  }

  has(key: string): bool { return this.indexOf(key) >= 0; }

  /** The value under `key` of a map, or null (absent, or not a map). */
  get(key: string): Value | null {
    const i = this.indexOf(key);
    return i >= 0 ? this.items![i] : null;
  }

  /** The string under `key`, or `otherwise` when absent or not a string. */
  getString(key: string, otherwise: string = ""): string {
    const v = this.get(key);
    return v && v.kind == Kind.Str ? v.asString() : otherwise;
  }

  /** The map under `key`, or an empty map when absent or not a map. */
  getMap(key: string): Value {
    const v = this.get(key);
    return v && v.kind == Kind.Map ? v : Value.map();
  }

  /** The items of the array under `key`, or [] when absent or not an array. */
  getArray(key: string): Value[] {
    const v = this.get(key);
    return v && v.kind == Kind.Array ? v.values() : [];
  }

  /** The value at a `/`-separated path of map keys and array indexes
   * (`"template/roles/0/name"`), or null when any step is missing. */
  pointer(path: string): Value | null {
    let v: Value | null = this;
    const parts = path.split("/");
    for (let i = 0; i < parts.length && v; i++) {
      const part = parts[i];
      if (part.length == 0) continue;
      if (v.isArray) {
        const n = I32.parseInt(part);
        v = isNaN(n) || n < 0 ? null : v.at(<i32>n);
      } else {
        v = v.get(part);
      }
    }
    return v;
  }

  /** Sets `key` of a map, replacing its value in place or appending it; returns this. */
  set(key: string, value: Value): Value {
    if (this.kind != Kind.Map) return this;
    const i = this.indexOf(key);
    if (i >= 0) this.items![i] = value;
    else { this.stringKeys().push(key); this.items!.push(value); }
    return this;
  }

  /** Appends an entry without looking for `key` first (the caller knows it
   * is new); keeps decoding large maps linear. */
  appendEntry(key: string, value: Value): void {
    if (this.kind != Kind.Map) return;
    this.stringKeys().push(key);
    this.items!.push(value);
  }

  /** A map of `n` entries whose keys are UTF-8 slices, `(ptr << 32) | len`,
   * and whose values are `values` (decoder use: both arrays are taken as is). */
  static rawMap(rawKeys: u64[], values: Value[]): Value {
    const v = new Value(); v.kind = Kind.Map; v.items = values; v.rawKeys = rawKeys; return v;
  }

  /** The UTF-8 slice `(ptr << 32) | len` of a decoded string not yet read as
   * a string, else 0 (lets the encoder copy bytes instead of transcoding). */
  get rawUtf8(): u64 { return this.kind == Kind.Str && this.s === null ? this.raw : 0; }

  /** The UTF-8 slices of a decoded map's keys, or null once they are strings. */
  get rawKeySlices(): u64[] | null { this.force(); return this.kind == Kind.Map ? this.rawKeys : null; }

  /** Replaces the value of entry `i` (in key order). */
  setAt(i: i32, value: Value): void {
    this.force();
    if (this.kind == Kind.Map && i >= 0 && i < this.items!.length) this.items![i] = value;
  }

  setString(key: string, value: string): Value { return this.set(key, Value.str(value)); }
  setInt(key: string, value: i64): Value { return this.set(key, Value.int(value)); }
  setBool(key: string, value: bool): Value { return this.set(key, Value.bool(value)); }

  /** Removes `key` from a map (keeping the others' order); true when it was there. */
  remove(key: string): bool {
    const i = this.indexOf(key);
    if (i < 0) return false;
    this.stringKeys().splice(i, 1);
    this.items!.splice(i, 1);
    return true;
  }

  /** Deep equality; maps compare in order, as their encodings would. */
  equals(other: Value): bool {
    if (this.kind != other.kind) return false;
    this.force();
    other.force();
    switch (this.kind) {
      case Kind.Nil: return true;
      case Kind.Bool: return this.b == other.b;
      case Kind.Int:
      case Kind.Uint: return this.n == other.n;
      case Kind.Float: return this.f == other.f;
      case Kind.Str: return this.asString() == other.asString();
      case Kind.Bin: {
        const a = this.asBytes(), b = other.asBytes();
        if (a.length != b.length) return false;
        for (let i = 0; i < a.length; i++) if (a[i] != b[i]) return false;
        return true;
      }
      default: {
        const a = this.values(), b = other.values();
        if (a.length != b.length) return false;
        if (this.kind == Kind.Map) {
          const ka = this.keys(), kb = other.keys();
          for (let i = 0; i < ka.length; i++) if (ka[i] != kb[i]) return false;
        }
        for (let i = 0; i < a.length; i++) if (!a[i].equals(b[i])) return false;
        return true;
      }
    }
  }

  /** The canonical MessagePack encoding of this value. */
  encode(): Uint8Array {
    const w = new Writer();
    w.value(this);
    return w.toBytes();
  }
}

// -- UTF-8 <-> AssemblyScript strings ----------------------------------------
// Requests and responses are mostly ASCII: these fast paths move 4 characters
// per step (fuel is counted per wasm instruction, and a 1 MiB request must fit
// the default fuel budget). Anything else goes through the standard library.

/** Number of leading ASCII code units of the UTF-16 string at `src`. */
function asciiPrefix(src: usize, units: usize): usize {
  let i: usize = 0;
  while (i + 4 <= units && (load<u64>(src + (i << 1)) & 0xff80ff80ff80ff80) == 0) i += 4;
  while (i < units && load<u16>(src + (i << 1)) < 0x80) i++;
  return i;
}

/** Writes `units` ASCII code units at `src` as bytes at `dst`. */
function narrowAscii(src: usize, units: usize, dst: usize): void {
  let i: usize = 0;
  for (; i + 4 <= units; i += 4) {
    let x = load<u64>(src + (i << 1));
    x = (x | (x >> 8)) & 0x0000ffff0000ffff;
    x = (x | (x >> 16)) & 0xffffffff;
    store<u32>(dst + i, <u32>x);
  }
  for (; i < units; i++) store<u8>(dst + i, <u8>load<u16>(src + (i << 1)));
}

/** The string of `len` UTF-8 bytes at `ptr`. The host sends valid UTF-8
 * (msgpack-python refuses anything else); the standard library's decoder,
 * used for non-ASCII text, does not validate. */
function utf8ToString(ptr: usize, len: usize): string {
  if (len == 0) return "";
  let i: usize = 0;
  while (i + 8 <= len && (load<u64>(ptr + i) & 0x8080808080808080) == 0) i += 8;
  while (i < len && load<u8>(ptr + i) < 0x80) i++;
  if (i < len) return String.UTF8.decodeUnsafe(ptr, len);
  const out = changetype<usize>(__new(len << 1, idof<String>()));
  for (i = 0; i + 4 <= len; i += 4) {
    let x = <u64>load<u32>(ptr + i);
    x = (x | (x << 16)) & 0x0000ffff0000ffff;
    x = (x | (x << 8)) & 0x00ff00ff00ff00ff;
    store<u64>(out + (i << 1), x);
  }
  for (; i < len; i++) store<u16>(out + (i << 1), <u16>load<u8>(ptr + i));
  return changetype<string>(out);
}

// -- decoding ------------------------------------------------------------------

/** Nesting deeper than this is refused rather than overflowing the wasm stack. */
export const MAX_DEPTH: i32 = 256;

/** Where each array and map of a checked input ends, in the order they start
 * (pre-order), and the number of the container after each one's last
 * descendant: decoding a level later jumps over its items' subtrees instead
 * of scanning them again. */
export class Layout {
  ends: usize[] = [];
  after: i32[] = [];
}

/** Decodes MessagePack from raw guest memory, lazily: `decodeAll` checks the
 * whole input once (a scan, no allocation) and answers its top value, whose
 * arrays and maps decode one level at a time as they are read. A plugin pays
 * for what it reads; a part it never reads costs its scan. */
export class Decoder {
  private pos: usize;
  private end: usize;
  /** Why decoding failed (first problem), or null. */
  error: string | null = null;
  /** The containers of the input (set by `decodeAll`). */
  layout: Layout | null = null;
  /** The number, in `layout`, of the next container `next` meets. */
  container: i32 = 0;

  constructor(ptr: usize, len: usize) {
    this.pos = ptr;
    this.end = ptr + len;
  }

  /** Checks the input and answers the one value that must span it; on
   * failure returns nil and sets `error`. */
  decodeAll(): Value {
    const start = this.pos;
    this.check();
    if (this.error == null && this.pos != this.end) {
      this.fail("trailing bytes at offset " + (this.pos - start).toString());
    }
    if (this.error != null) return Value.nil();
    this.pos = start;
    this.container = 0;
    return this.next();
  }

  private fail(msg: string): Value {
    if (this.error == null) this.error = msg;
    this.pos = this.end;
    return Value.nil();
  }

  private need(n: usize): bool {
    if (this.end - this.pos < n) { this.fail("truncated input"); return false; }
    return true;
  }

  private u8(): u32 { const b = <u32>load<u8>(this.pos); this.pos += 1; return b; }
  private u16(): u32 { const x = <u32>bswap<u16>(load<u16>(this.pos)); this.pos += 2; return x; }
  private u32(): u32 { const x = bswap<u32>(load<u32>(this.pos)); this.pos += 4; return x; }
  private u64(): u64 { const x = bswap<u64>(load<u64>(this.pos)); this.pos += 8; return x; }

  /** Reads a length header of `size` bytes (1, 2 or 4). */
  private len(size: i32): u32 {
    if (!this.need(<usize>size)) return 0;
    return size == 1 ? this.u8() : size == 2 ? this.u16() : this.u32();
  }

  /** One value's shape from its marker `t` (already read): for scalars and
   * strings the payload bytes that follow (`-1` for an unknown marker), for
   * arrays and maps the item count (maps count keys and values) as
   * `-(2 + count)`. Reads the length header if there is one. */
  private shape(t: u32): i64 {
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return 0;
    if (t >= 0x80 && t <= 0x8f) return -2 - 2 * <i64>(t & 0x0f);
    if (t >= 0x90 && t <= 0x9f) return -2 - <i64>(t & 0x0f);
    if (t >= 0xa0 && t <= 0xbf) return <i64>(t & 0x1f);
    switch (t) {
      case 0xc4: case 0xd9: return <i64>this.len(1);
      case 0xc5: case 0xda: return <i64>this.len(2);
      case 0xc6: case 0xdb: return <i64>this.len(4);
      case 0xca: return 4;
      case 0xcb: return 8;
      case 0xcc: case 0xd0: return 1;
      case 0xcd: case 0xd1: return 2;
      case 0xce: case 0xd2: return 4;
      case 0xcf: case 0xd3: return 8;
      case 0xdc: return -2 - <i64>this.len(2);
      case 0xdd: return -2 - <i64>this.len(4);
      case 0xde: return -2 - 2 * <i64>this.len(2);
      case 0xdf: return -2 - 2 * <i64>this.len(4);
      default: return -1;
    }
  }

  /** Checks one whole value: every length fits the input, map keys are
   * strings, no ext types, nesting at most MAX_DEPTH; records the layout of
   * its arrays and maps. Iterative (a stack of item counts), so no input can
   * overflow the wasm stack; the common markers (fixint, fixstr, fixmap,
   * fixarray) take a fast path, as fuel is counted per instruction. */
  private check(): void {
    const layout = new Layout();
    this.layout = layout;
    // Per level, 16 bytes: items left (u64), container number (i32), is a map (i32).
    const stack = heap.alloc(<usize>(MAX_DEPTH + 2) << 4);
    store<u64>(stack, 1);
    store<i32>(stack, 0, 12);
    let depth: i32 = 0;
    let pos = this.pos;
    const end = this.end;
    while (true) {
      let level = stack + (<usize>depth << 4);
      let left = load<u64>(level);
      while (left == 0) {
        if (depth == 0) { this.pos = pos; return; }
        const k = load<i32>(level, 8);
        unchecked(layout.ends[k] = pos);
        unchecked(layout.after[k] = layout.ends.length);
        depth--;
        level -= 16;
        left = load<u64>(level);
      }
      const key = load<i32>(level, 12) != 0 && (left & 1) == 0;
      store<u64>(level, left - 1);
      if (pos >= end) { this.fail("truncated input"); return; }
      const t = <u32>load<u8>(pos);
      pos++;
      if (key && !(t - 0xa0 <= 0x1f || t - 0xd9 <= 2)) { this.fail("map key is not a string"); return; }
      let items: u64;
      let isMap = false;
      if (t <= 0x7f || t >= 0xe0) continue;
      if (t - 0xa0 <= 0x1f) {
        const n = <usize>(t & 0x1f);
        if (end - pos < n) { this.fail("truncated input"); return; }
        pos += n;
        continue;
      }
      if (t - 0x80 <= 0x0f) { items = <u64>(t & 0x0f) << 1; isMap = true; }
      else if (t - 0x90 <= 0x0f) items = <u64>(t & 0x0f);
      else {
        this.pos = pos;
        const shape = this.shape(t);
        if (this.error != null) return;
        pos = this.pos;
        if (shape == -1) { this.fail("unsupported MessagePack type 0x" + t.toString(16)); return; }
        if (shape >= 0) {
          if (<i64>(end - pos) < shape) { this.fail("truncated input"); return; }
          pos += <usize>shape;
          continue;
        }
        items = <u64>(-2 - shape);
        isMap = t == 0xde || t == 0xdf;
      }
      // Each item takes at least a byte: refuse counts the input cannot hold.
      if (<u64>(end - pos) < items) { this.fail("truncated input"); return; }
      if (depth >= MAX_DEPTH) { this.fail("nesting deeper than " + MAX_DEPTH.toString()); return; }
      depth++;
      level += 16;
      store<u64>(level, items);
      store<i32>(level, layout.ends.length, 8);
      store<i32>(level, isMap ? 1 : 0, 12);
      layout.ends.push(0);
      layout.after.push(0);
    }
  }

  /** The next (checked) value: scalars decoded, strings as UTF-8 slices,
   * arrays and maps undecoded until read. */
  next(): Value {
    const t = this.u8();
    if (t <= 0x7f) return Value.int(<i64>t);
    if (t >= 0xe0) return Value.int(<i64><i8>t);
    const shape = this.shape(t);
    if (shape < 0) {
      const body = this.pos;
      const layout = this.layout!;
      const k = this.container;
      const end = unchecked(layout.ends[k]);
      this.container = unchecked(layout.after[k]);
      this.pos = end;
      const isMap = t >= 0x80 && t <= 0x8f || t == 0xde || t == 0xdf;
      const items = <u32>(-2 - shape);
      return Value.lazy(isMap ? Kind.Map : Kind.Array, body, end, isMap ? items >> 1 : items, layout, k);
    }
    if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb)) {
      const v = Value.utf8(this.pos, <u32>shape);
      this.pos += <usize>shape;
      return v;
    }
    switch (t) {
      case 0xc0: return Value.nil();
      case 0xc2: return Value.bool(false);
      case 0xc3: return Value.bool(true);
      case 0xc4: case 0xc5: case 0xc6: {
        const out = new Uint8Array(<i32>shape);
        memory.copy(out.dataStart, this.pos, <usize>shape);
        this.pos += <usize>shape;
        return Value.bin(out);
      }
      case 0xca: return Value.float(<f64>reinterpret<f32>(this.u32()));
      case 0xcb: return Value.float(reinterpret<f64>(this.u64()));
      case 0xcc: return Value.int(<i64>this.u8());
      case 0xcd: return Value.int(<i64>this.u16());
      case 0xce: return Value.int(<i64>this.u32());
      case 0xcf: return Value.uint(this.u64());
      case 0xd0: return Value.int(<i64><i8>this.u8());
      case 0xd1: return Value.int(<i64><i16>this.u16());
      case 0xd2: return Value.int(<i64><i32>this.u32());
      default: return Value.int(<i64>this.u64()); // 0xd3
    }
  }

  /** The next (checked) map key, as a UTF-8 slice `(ptr << 32) | len`. */
  nextKey(): u64 {
    const n = <u32>this.shape(this.u8());
    const slice = (<u64>this.pos << 32) | <u64>n;
    this.pos += <usize>n;
    return slice;
  }
}

/** Decodes `len` bytes at `ptr`. Check `decoder.error` when you need to know
 * why it failed; this returns nil then. */
export function decodeAt(ptr: usize, len: usize): Decoder {
  return new Decoder(ptr, len);
}

/** Decodes a whole byte array; null when it is not valid MessagePack. */
export function decode(bytes: Uint8Array): Value | null {
  // Decoded strings point into the input: decode a private copy.
  const copy = heap.alloc(<usize>bytes.length + 1);
  memory.copy(copy, bytes.dataStart, <usize>bytes.length);
  const d = new Decoder(copy, <usize>bytes.length);
  const v = d.decodeAll();
  return d.error == null ? v : null;
}

// -- encoding ------------------------------------------------------------------

/** A growable output buffer in raw guest memory (the response is handed to the
 * host by address, so it must not move after `finish`). */
export class Writer {
  private buf: usize;
  private cap: usize;
  private pos: usize = 0;

  constructor(capacity: usize = 256) {
    this.cap = capacity;
    this.buf = heap.alloc(capacity);
  }

  get length(): usize { return this.pos; }
  get dataStart(): usize { return this.buf; }

  private reserve(n: usize): usize {
    const need = this.pos + n;
    if (need > this.cap) {
      let cap = this.cap << 1;
      if (cap < need) cap = need;
      this.buf = heap.realloc(this.buf, cap);
      this.cap = cap;
    }
    const at = this.buf + this.pos;
    this.pos = need;
    return at;
  }

  private byte(b: u32): void { store<u8>(this.reserve(1), <u8>b); }
  private be16(t: u32, x: u32): void {
    const p = this.reserve(3); store<u8>(p, <u8>t); store<u16>(p + 1, bswap<u16>(<u16>x));
  }
  private be32(t: u32, x: u32): void {
    const p = this.reserve(5); store<u8>(p, <u8>t); store<u32>(p + 1, bswap<u32>(x));
  }
  private be64(t: u32, x: u64): void {
    const p = this.reserve(9); store<u8>(p, <u8>t); store<u64>(p + 1, bswap<u64>(x));
  }

  nil(): void { this.byte(0xc0); }
  bool(b: bool): void { this.byte(b ? 0xc3 : 0xc2); }

  /** Smallest encoding: positive values as fixint/uint8..64, negative as
   * negative fixint/int8..64 (what msgpack-python writes). */
  int(n: i64): void {
    if (n >= 0) { this.uint(<u64>n); return; }
    if (n >= -32) this.byte(<u32>(<u8>n));
    else if (n >= -128) { const p = this.reserve(2); store<u8>(p, 0xd0); store<i8>(p + 1, <i8>n); }
    else if (n >= -32768) this.be16(0xd1, <u32><u16>n);
    else if (n >= -2147483648) this.be32(0xd2, <u32>n);
    else this.be64(0xd3, <u64>n);
  }

  uint(n: u64): void {
    if (n <= 0x7f) this.byte(<u32>n);
    else if (n <= 0xff) { const p = this.reserve(2); store<u8>(p, 0xcc); store<u8>(p + 1, <u8>n); }
    else if (n <= 0xffff) this.be16(0xcd, <u32>n);
    else if (n <= 0xffffffff) this.be32(0xce, <u32>n);
    else this.be64(0xcf, n);
  }

  float(f: f64): void { this.be64(0xcb, reinterpret<u64>(f)); }

  /** UTF-8 `str`. A lone surrogate (possible in an AssemblyScript string, never
   * valid UTF-8) is written as U+FFFD so the host can always decode it. */
  str(s: string): void {
    const units = <usize>s.length;
    const src = changetype<usize>(s);
    const ascii = asciiPrefix(src, units) == units;
    if (ascii) {
      this.strHeader(<u32>units);
      narrowAscii(src, units, this.reserve(units));
      return;
    }
    // Encode once into room for the worst case (3 bytes per UTF-16 unit, a
    // 5-byte header), then move the bytes behind the smallest header: one
    // memory.copy instead of a second pass to measure the UTF-8 length.
    const start = this.pos;
    const scratch = this.reserve(5 + units * 3) + 5;
    const n = String.UTF8.encodeUnsafe(src, s.length, scratch, false, String.UTF8.ErrorMode.REPLACE);
    this.pos = start;
    this.strHeader(<u32>n);
    memory.copy(this.buf + this.pos, scratch, n);
    this.pos += n;
  }

  /** A `str` of the `len` UTF-8 bytes at `ptr`, copied as they are. */
  utf8(ptr: usize, len: u32): void {
    this.strHeader(len);
    memory.copy(this.reserve(<usize>len), ptr, <usize>len);
  }

  strHeader(n: u32): void {
    if (n <= 31) this.byte(0xa0 | n);
    else if (n <= 0xff) { const p = this.reserve(2); store<u8>(p, 0xd9); store<u8>(p + 1, <u8>n); }
    else if (n <= 0xffff) this.be16(0xda, n);
    else this.be32(0xdb, n);
  }

  bin(b: Uint8Array): void {
    const n = <u32>b.length;
    if (n <= 0xff) { const p = this.reserve(2); store<u8>(p, 0xc4); store<u8>(p + 1, <u8>n); }
    else if (n <= 0xffff) this.be16(0xc5, n);
    else this.be32(0xc6, n);
    memory.copy(this.reserve(<usize>n), b.dataStart, <usize>n);
  }

  arrayHeader(n: u32): void {
    if (n <= 15) this.byte(0x90 | n);
    else if (n <= 0xffff) this.be16(0xdc, n);
    else this.be32(0xdd, n);
  }

  mapHeader(n: u32): void {
    if (n <= 15) this.byte(0x80 | n);
    else if (n <= 0xffff) this.be16(0xde, n);
    else this.be32(0xdf, n);
  }

  value(v: Value): void {
    switch (v.kind) {
      case Kind.Nil: this.nil(); break;
      case Kind.Bool: this.bool(v.asBool()); break;
      case Kind.Int: this.int(v.asInt()); break;
      case Kind.Uint: this.uint(v.asUint()); break;
      case Kind.Float: this.float(v.asFloat()); break;
      case Kind.Str: {
        const raw = v.rawUtf8;
        if (raw != 0) this.utf8(<usize>(raw >>> 32), <u32>(raw & 0xffffffff));
        else this.str(v.asString());
        break;
      }
      case Kind.Bin: this.bin(v.asBytes()); break;
      case Kind.Array: {
        const items = v.values();
        this.arrayHeader(<u32>items.length);
        for (let i = 0; i < items.length; i++) this.value(items[i]);
        break;
      }
      case Kind.Map: {
        const vals = v.values();
        this.mapHeader(<u32>vals.length);
        const raw = v.rawKeySlices;
        if (raw !== null) {
          for (let i = 0; i < vals.length; i++) {
            this.utf8(<usize>(raw[i] >>> 32), <u32>(raw[i] & 0xffffffff));
            this.value(vals[i]);
          }
        } else {
          const keys = v.keys();
          for (let i = 0; i < keys.length; i++) { this.str(keys[i]); this.value(vals[i]); }
        }
        break;
      }
    }
  }

  /** A copy of the bytes written so far. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(<i32>this.pos);
    memory.copy(out.dataStart, this.buf, this.pos);
    return out;
  }

  /** `(ptr << 32) | len` of the bytes written, as a hook returns it. */
  finish(): i64 {
    return <i64>((<u64>this.buf << 32) | <u64>this.pos);
  }
}
