// demo-pod-tweaks: Kthena's built-in plugin of the same name
// (pkg/model-serving-controller/plugins/demo_plugin.go) as a podplug module, so
// a ModelServing with `type: BuiltIn, name: demo-pod-tweaks` works unchanged.
//
// Like the Go plugin, on every Pod it: sets spec.runtimeClassName when
// `runtimeClassName` is not empty (replacing the template's); sets each of
// `annotations` (replacing same-named ones); appends each `env` entry to every
// container and every init container, after their own env (a duplicate name
// stays, and Kubernetes uses the last: the config's).
// Config decoding follows Go's encoding/json: key names match
// case-insensitively, null leaves a field unset, a wrong type is an error.
// README.md lists the few differences and why.

import { Config, HookRequest, Mutations, Value, onPodCreate, validateConfig } from "@podplug/sdk";
export { podplug_abi_version, podplug_alloc } from "@podplug/sdk";

export function podplug_on_pod_create(ptr: i32, len: i32): i64 {
  return onPodCreate(ptr, len, create);
}

export function podplug_validate_config(ptr: i32, len: i32): i64 {
  return validateConfig(ptr, len, (config: Config): void => { settings(config); });
}

// What the podplug host refuses from any plugin (docs/abi.md "Never writable").
const RESERVED_ANNOTATION_PREFIX = "podplug.io/";
const RESERVED_ENV = ["ENTRY_ADDRESS", "WORKER_INDEX", "GROUP_SIZE"];

class EnvVar {
  constructor(public name: string, public value: string, public valueFrom: Value | null) {}
}

class Settings {
  runtimeClassName: string = "";
  annotations: string[] = []; // key, value, key, value... in config order
  env: EnvVar[] = [];
}

/** `known` name that `key` matches as Go's encoding/json does (exact or
 * ASCII case-insensitive), or "" for an unknown key. */
function field(key: string, known: string[]): string {
  const lower = key.toLowerCase();
  for (let i = 0; i < known.length; i++) if (known[i].toLowerCase() == lower) return known[i];
  return "";
}

/** Records `unknown field "x"` for the first key matching none of `known`. */
function allowFolded(config: Config, known: string[]): void {
  if (!config.expectMap()) return;
  const keys = config.value.keys();
  const matching = new Array<string>();
  for (let i = 0; i < keys.length; i++) if (field(keys[i], known).length) matching.push(keys[i]);
  config.allowOnly(matching);
}

function isNil(config: Config, key: string): bool {
  const v = config.get(key);
  return v !== null && v.isNil;
}

const FIELDS = ["runtimeClassName", "annotations", "env"];

/** Decodes the config as Go's json.Unmarshal into DemoConfig would: keys in
 * document order, a later spelling of the same field wins (maps merge). */
function settings(config: Config): Settings {
  const s = new Settings();
  allowFolded(config, FIELDS);
  if (!config.ok) return s;
  const keys = config.value.keys();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const name = field(key, FIELDS);
    const nil = isNil(config, key);
    if (name == "runtimeClassName") {
      if (!nil) s.runtimeClassName = config.getString(key); // null: Go leaves a string as is
    } else if (name == "annotations") {
      if (nil) s.annotations = []; // null: Go sets the map to nil
      else annotations(config.getMap(key), s.annotations);
    } else if (name == "env") {
      s.env = nil ? [] : env(config, key);
    }
  }
  return s;
}

function annotations(m: Config, out: string[]): void {
  const keys = m.value.keys();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (key.startsWith(RESERVED_ANNOTATION_PREFIX)) m.fail(key, "annotations under podplug.io/ belong to the podplug host");
    const value = isNil(m, key) ? "" : m.getString(key); // Go stores null as ""
    let j = 0;
    while (j < out.length && out[j] != key) j += 2;
    if (j < out.length) out[j + 1] = value;
    else { out.push(key); out.push(value); }
  }
}

const ENV_FIELDS = ["name", "value", "valueFrom"];
const SOURCE_FIELDS = ["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef"];

/** `env`: a list of Kubernetes EnvVars. */
function env(config: Config, key: string): EnvVar[] {
  const out = new Array<EnvVar>();
  const items = config.getArray(key);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    allowFolded(item, ENV_FIELDS);
    if (!item.ok) return out;
    let name = "", value = "";
    let valueFrom: Value | null = null;
    const keys = item.value.keys();
    for (let k = 0; k < keys.length; k++) {
      const f = field(keys[k], ENV_FIELDS);
      if (isNil(item, keys[k])) {
        if (f == "valueFrom") valueFrom = null;
        continue;
      }
      if (f == "name") name = item.getString(keys[k]);
      else if (f == "value") value = item.getString(keys[k]);
      else valueFrom = source(item.getMap(keys[k]));
    }
    // The checks the API server would make when Kthena creates the Pod, and
    // the host's own rules, so a bad entry fails here, naming the field.
    if (!name.length) item.fail("name", "required");
    else if (RESERVED_ENV.includes(name)) item.fail("name", name + " is set by the ModelServing controller");
    if (valueFrom !== null && value.length) item.fail("value", "must be empty when valueFrom is set");
    out.push(new EnvVar(name, value, valueFrom));
  }
  return out;
}

/** An EnvVarSource as the host accepts it: only the downward-API sources. */
function source(from: Config): Value | null {
  allowFolded(from, SOURCE_FIELDS);
  if (!from.ok) return null;
  let out: Value | null = null;
  const keys = from.value.keys();
  for (let k = 0; k < keys.length; k++) {
    const f = field(keys[k], SOURCE_FIELDS);
    if (isNil(from, keys[k])) continue;
    if (f == "fieldRef") {
      const ref = from.getMap(keys[k]);
      allowFolded(ref, ["apiVersion", "fieldPath"]);
      const r = Value.map().setString("fieldPath", stringField(ref, "fieldPath"));
      const api = stringField(ref, "apiVersion");
      if (api.length) r.setString("apiVersion", api);
      if (!r.getString("fieldPath").length) ref.fail("fieldPath", "required");
      out = Value.map().set("fieldRef", r);
    } else if (f == "resourceFieldRef") {
      const ref = from.getMap(keys[k]);
      allowFolded(ref, ["containerName", "resource", "divisor"]);
      const r = Value.map().setString("resource", stringField(ref, "resource"));
      const container = stringField(ref, "containerName");
      if (container.length) r.setString("containerName", container);
      const divisor = quantityField(ref, "divisor");
      if (divisor.length) r.setString("divisor", divisor);
      if (!r.getString("resource").length) ref.fail("resource", "required");
      out = Value.map().set("resourceFieldRef", r);
    } else {
      from.fail(keys[k], "podplug lets plugins set only fieldRef and resourceFieldRef env sources");
    }
  }
  if (out === null && from.ok) from.fail("", "needs fieldRef or resourceFieldRef");
  return out;
}

/** The string under the key matching `name` case-insensitively, "" if absent or null. */
function stringField(c: Config, name: string): string {
  const keys = c.value.keys();
  let out = "";
  for (let i = 0; i < keys.length; i++) {
    if (field(keys[i], [name]).length && !isNil(c, keys[i])) out = c.getString(keys[i]);
  }
  return out;
}

/** Like stringField for a Kubernetes quantity (a string or a number). */
function quantityField(c: Config, name: string): string {
  const keys = c.value.keys();
  let out = "";
  for (let i = 0; i < keys.length; i++) {
    if (field(keys[i], [name]).length && !isNil(c, keys[i])) out = c.getQuantity(keys[i]);
  }
  return out;
}

function create(req: HookRequest): Mutations {
  const s = settings(req.config);
  const m = new Mutations();
  if (!req.config.ok) return m; // the SDK answers with the config error
  if (s.runtimeClassName.length) m.setRuntimeClassName(s.runtimeClassName);
  for (let i = 0; i < s.annotations.length; i += 2) m.setAnnotation(s.annotations[i], s.annotations[i + 1]);
  appendEnv(m, s.env, false);
  // Go appends to init containers after containers; a Pod without any needs no op.
  if (req.pod.initContainers().length) appendEnv(m, s.env, true);
  return m;
}

function appendEnv(m: Mutations, env: EnvVar[], init: bool): void {
  for (let i = 0; i < env.length; i++) {
    const e = env[i];
    const from = e.valueFrom;
    if (init && from !== null) m.appendInitEnvFrom(e.name, from);
    else if (init) m.appendInitEnv(e.name, e.value);
    else if (from !== null) m.appendEnvFrom(e.name, from);
    else m.appendEnv(e.name, e.value);
  }
}
