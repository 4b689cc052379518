// The ABI v2 glue (docs/abi.md): the required exports, the hook wrappers that
// decode the request and encode the response, and the `podplug.log` import.
//
// Every call runs in a fresh instance that is thrown away afterwards, so
// nothing here frees memory: the stub runtime's bump allocator is enough.

import { Decoder, Value, Writer } from "./msgpack";
import { Mutations } from "./mutations";
import { Config, HookRequest } from "./request";

export const ABI_VERSION: i32 = 2;

/** Required export: the ABI this module speaks. */
export function podplug_abi_version(): i32 {
  return ABI_VERSION;
}

/** Required export: `len` writable bytes for the request, or 0 when memory
 * cannot grow (the stub allocator would trap instead, so grow first). */
export function podplug_alloc(len: i32): i32 {
  if (len < 0) return 0;
  const pages = ((<u32>len + 0xffff + 16) >>> 16);
  if (memory.grow(<i32>pages) < 0) return 0;
  return <i32>heap.alloc(<usize>len);
}

// -- logging

// @ts-ignore: decorator
@external("podplug", "log")
declare function hostLog(level: i32, ptr: usize, len: usize): void;

function logAt(level: i32, message: string): void {
  const bytes = String.UTF8.encode(message, false, String.UTF8.ErrorMode.REPLACE);
  hostLog(level, changetype<usize>(bytes), <usize>bytes.byteLength);
}

/** Log lines reach the host's log with the plugin's name and hook. */
export namespace log {
  export function debug(message: string): void { logAt(0, message); }
  export function info(message: string): void { logAt(1, message); }
  export function warn(message: string): void { logAt(2, message); }
  export function error(message: string): void { logAt(3, message); }
}

// -- hooks

/** A create or ready hook: the request in, the mutations (or
 * `Mutations.error(...)`) out. */
export type Hook = (req: HookRequest) => Mutations;

/** A validate_config check: call the config's typed getters (and
 * `config.fail(...)` for anything else); the first problem recorded answers
 * `{valid: false, message}`. */
export type ConfigCheck = (config: Config) => void;

function decodeRequest(ptr: i32, len: i32, error: Writer): HookRequest | null {
  const d = new Decoder(<usize>ptr, <usize>len);
  const v = d.decodeAll();
  if (d.error != null || !v.isMap) {
    error.mapHeader(1);
    error.str("error");
    error.str("invalid request: " + (d.error != null ? d.error! : "not a map"));
    return null;
  }
  return new HookRequest(v);
}

function respond(req: HookRequest, hook: Hook): i64 {
  const m = hook(req);
  const w = new Writer();
  // A config problem recorded by the typed getters wins: the plugin ran on
  // defaults it did not mean to use.
  const problem = req.config.error != null ? req.config.error : m.errorMessage;
  if (problem != null) {
    w.mapHeader(1);
    w.str("error");
    w.str(problem);
  } else {
    w.mapHeader(1);
    w.str("mutations");
    w.arrayHeader(<u32>m.ops.length);
    for (let i = 0; i < m.ops.length; i++) w.value(m.ops[i]);
  }
  return w.finish();
}

/** Runs a create hook: `export function podplug_on_pod_create(ptr: i32, len: i32): i64
 * { return onPodCreate(ptr, len, create); }` */
export function onPodCreate(ptr: i32, len: i32, hook: Hook): i64 {
  const w = new Writer();
  const req = decodeRequest(ptr, len, w);
  return req ? respond(req, hook) : w.finish();
}

/** Runs a ready hook (only label and annotation ops are allowed on a live Pod). */
export function onPodReady(ptr: i32, len: i32, hook: Hook): i64 {
  return onPodCreate(ptr, len, hook);
}

/** Runs a validate_config check: `export function podplug_validate_config(ptr: i32,
 * len: i32): i64 { return validateConfig(ptr, len, check); }` */
export function validateConfig(ptr: i32, len: i32, check: ConfigCheck): i64 {
  const w = new Writer();
  const req = decodeRequest(ptr, len, w);
  if (!req) return w.finish();
  const config = req.config;
  check(config);
  const problem = config.error;
  if (problem == null) {
    w.mapHeader(1);
    w.str("valid");
    w.bool(true);
  } else {
    w.mapHeader(2);
    w.str("valid");
    w.bool(false);
    w.str("message");
    w.str(problem);
  }
  return w.finish();
}

/** Encodes `value` as a hook's raw response (for hand-made responses and tests). */
export function respondWith(value: Value): i64 {
  const w = new Writer();
  w.value(value);
  return w.finish();
}
