#!/usr/bin/env node
// Post-build step: write the `podplug.metadata` custom section (docs/abi.md)
// into a .wasm. AssemblyScript cannot emit custom sections, so the plugin's
// metadata lives in a JSON file and is appended here as MessagePack.
//
//   node scripts/metadata.js plugin.wasm podplug.json [-o out.wasm]
//
// An existing podplug.metadata section is replaced, so the step is idempotent.
import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { encode } from "../testing/msgpack.js";

const SECTION = "podplug.metadata";
const KEYS = ["name", "version", "hooks", "mutations", "configSchema"];

function leb128(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function readLeb(buf, pos) {
  let result = 0, shift = 0, b;
  do {
    b = buf[pos++];
    result |= (b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  return [result >>> 0, pos];
}

/** The module without any existing `podplug.metadata` section. */
function strip(wasm) {
  const parts = [wasm.subarray(0, 8)];
  let pos = 8;
  while (pos < wasm.length) {
    const start = pos;
    const [size, body] = readLeb(wasm, pos + 1);
    const end = body + size;
    let keep = true;
    if (wasm[start] === 0) {
      const [nameLen, p] = readLeb(wasm, body);
      keep = Buffer.from(wasm.subarray(p, p + nameLen)).toString() !== SECTION;
    }
    if (keep) parts.push(wasm.subarray(start, end));
    pos = end;
  }
  return Buffer.concat(parts);
}

/** `wasm` with `metadata` (a JSON object) appended as the custom section. */
export function withMetadata(wasm, metadata) {
  for (const key of Object.keys(metadata)) {
    if (!KEYS.includes(key)) throw new Error(`podplug.metadata: unknown key "${key}" (known: ${KEYS.join(", ")})`);
  }
  // Canonical key order of docs/abi.md, whatever the JSON file's order.
  const ordered = {};
  for (const key of KEYS) if (key in metadata) ordered[key] = metadata[key];
  const name = Buffer.from(SECTION);
  const payload = Buffer.concat([Buffer.from(leb128(name.length)), name, Buffer.from(encode(ordered))]);
  return Buffer.concat([strip(wasm), Buffer.from([0]), Buffer.from(leb128(payload.length)), payload]);
}

// Run as a script (also through node_modules/.bin's symlink), not imported.
const isMain = process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const args = process.argv.slice(2);
  const o = args.indexOf("-o");
  const out = o >= 0 ? args.splice(o, 2)[1] : null;
  if (args.length !== 2) {
    console.error("usage: metadata.js plugin.wasm podplug.json [-o out.wasm]");
    process.exit(2);
  }
  const [wasmPath, jsonPath] = args;
  const wasm = readFileSync(wasmPath);
  const metadata = JSON.parse(readFileSync(jsonPath, "utf8"));
  writeFileSync(out || wasmPath, withMetadata(wasm, metadata));
}
