// Test a plugin without a cluster or the podplug host: load its .wasm in Node,
// call a hook with a request built from a few fields, and get the decoded
// response. Like the host, every call gets a fresh instance; unlike the host
// there are no fuel, memory or policy checks (use `podplug run` for those).
//
//   import { loadPlugin, request } from "@podplug/sdk/testing";
//   const plugin = await loadPlugin("build/my-plugin.wasm");
//   const { mutations } = plugin.create(request({ config: { size: "1Gi" }, pod }));

import { readFileSync } from "node:fs";
import { decode, encode } from "./msgpack.js";

export { decode, encode };

const HOOK_EXPORTS = {
  create: "podplug_on_pod_create",
  ready: "podplug_on_pod_ready",
  validate_config: "podplug_validate_config",
};

/** A request as the host builds it (docs/abi.md "Requests"); fields left out
 * are omitted, except `plugin.config`, which is `{}` when absent. */
export function request({
  hook = "create", pluginName = "test", config = {}, modelServing, servingGroup, roleName,
  roleID, isEntry, role, pod,
} = {}) {
  const req = { abi: 2, hook, plugin: { name: pluginName, config } };
  if (hook === "validate_config") return req;
  const context = { modelServing, servingGroup, roleName, roleID, isEntry, role, pod };
  for (const [key, value] of Object.entries(context)) if (value !== undefined) req[key] = value;
  return req;
}

/** A minimal Pod with the given containers (names or Container objects). */
export function pod({ name = "demo-0-prefill-0-0", labels = {}, containers = ["main"] } = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels },
    spec: { containers: containers.map((c) => (typeof c === "string" ? { name: c, image: "img" } : c)) },
  };
}

/** AssemblyScript's string at `ptr`: UTF-16LE, its byte length the u32 before it. */
function asString(memory, ptr) {
  if (!ptr) return "";
  const view = new DataView(memory.buffer);
  const len = view.getUint32(ptr - 4, true);
  return Buffer.from(memory.buffer, ptr, len).toString("utf16le");
}

export class PluginTrap extends Error {}

export class Plugin {
  constructor(module) {
    this.module = module;
    const exports = WebAssembly.Module.exports(module).map((e) => e.name);
    this.hooks = Object.keys(HOOK_EXPORTS).filter((h) => exports.includes(HOOK_EXPORTS[h]));
  }

  /** Runs `hook` on `req` (an object, or encoded bytes) in a fresh instance:
   * `{response, logs}`. A missing hook answers as the host would. Throws a
   * PluginTrap carrying the abort message when the plugin aborts. */
  call(hook, req) {
    const logs = [];
    let memory;
    const instance = new WebAssembly.Instance(this.module, {
      podplug: {
        log: (level, ptr, len) => {
          logs.push([level, Buffer.from(memory.buffer, ptr, len).toString("utf8")]);
        },
      },
      env: {
        abort: (msg, file, line, col) => {
          const where = asString(memory, file);
          throw new PluginTrap(`abort: ${asString(memory, msg) || "no message"}${where ? ` at ${where}:${line}:${col}` : ""}`);
        },
      },
    });
    memory = instance.exports.memory;
    if (instance.exports.podplug_abi_version() !== 2) throw new Error("plugin does not speak ABI v2");
    const fn = instance.exports[HOOK_EXPORTS[hook]];
    if (!fn) return { response: hook === "validate_config" ? { valid: true } : { mutations: [] }, logs };
    const bytes = req instanceof Uint8Array ? req : encode(req);
    const ptr = instance.exports.podplug_alloc(bytes.length) >>> 0;
    if (ptr === 0 && bytes.length) throw new Error(`podplug_alloc(${bytes.length}) returned 0`);
    new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
    const packed = BigInt.asUintN(64, fn(ptr, bytes.length));
    const outPtr = Number(packed >> 32n), outLen = Number(packed & 0xffffffffn);
    const out = new Uint8Array(memory.buffer.slice(outPtr, outPtr + outLen));
    return { response: decode(out), raw: out, logs };
  }

  create(req) { return this.call("create", { ...req, hook: "create" }).response; }
  ready(req) { return this.call("ready", { ...req, hook: "ready" }).response; }
  validateConfig(config, pluginName = "test") {
    return this.call("validate_config", request({ hook: "validate_config", pluginName, config })).response;
  }
}

/** Compiles a plugin from a path or bytes. */
export async function loadPlugin(wasm) {
  const bytes = typeof wasm === "string" ? readFileSync(wasm) : wasm;
  return new Plugin(await WebAssembly.compile(bytes));
}
