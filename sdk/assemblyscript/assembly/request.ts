// Typed, read-only views of a HookRequest (docs/abi.md "Requests"). Absent or
// mistyped optional request fields read as empty string / false / zero / empty,
// never as a failure: a plugin must work on whatever the host's version sends.

import { Kind, Value } from "./msgpack";

/** A string-to-string map view (labels, annotations, nodeSelector, resource
 * limits...). Numbers read as their decimal text (a quantity written `1`). */
export class StringMap {
  constructor(public value: Value) {}

  get size(): i32 { return this.value.length; }
  keys(): string[] { return this.value.keys(); }
  has(key: string): bool { return this.value.has(key); }
  /** The entry's text, or null when absent. */
  get(key: string): string | null {
    const v = this.value.get(key);
    return v && !v.isNil ? v.toText() : null;
  }
  /** The entry's text, or `otherwise`. */
  getOr(key: string, otherwise: string): string {
    const v = this.value.get(key);
    return v && !v.isNil ? v.toText() : otherwise;
  }
  /** The entries flattened to `[key, value, key, value, ...]`, in order. */
  flatten(): string[] {
    const keys = this.keys();
    const out = new Array<string>();
    for (let i = 0; i < keys.length; i++) {
      out.push(keys[i]);
      out.push(this.getOr(keys[i], ""));
    }
    return out;
  }
}

/** One entry of a container's `env`. */
export class EnvVar {
  constructor(
    public name: string,
    /** null for a `valueFrom` variable. */
    public value: string | null,
    public valueFrom: Value | null,
  ) {}
}

/** A container of the Pod (`spec.containers[i]` or an init container). */
export class Container {
  constructor(public value: Value) {}

  get name(): string { return this.value.getString("name"); }
  get image(): string { return this.value.getString("image"); }

  /** Env vars in order. */
  env(): EnvVar[] {
    const items = this.value.getArray("env");
    const out = new Array<EnvVar>();
    for (let i = 0; i < items.length; i++) {
      const e = items[i];
      if (!e.isMap) continue;
      const v = e.get("value");
      const from = e.get("valueFrom");
      out.push(new EnvVar(
        e.getString("name"),
        v && v.isString ? v.asString() : null,
        from && from.isMap ? from : null,
      ));
    }
    return out;
  }

  /** The literal value of env var `name`, or null (absent or `valueFrom`). */
  envValue(name: string): string | null {
    const env = this.env();
    for (let i = 0; i < env.length; i++) if (env[i].name == name) return env[i].value;
    return null;
  }

  hasEnv(name: string): bool {
    const env = this.env();
    for (let i = 0; i < env.length; i++) if (env[i].name == name) return true;
    return false;
  }

  get resources(): Value { return this.value.getMap("resources"); }
  get limits(): StringMap { return new StringMap(this.resources.getMap("limits")); }
  get requests(): StringMap { return new StringMap(this.resources.getMap("requests")); }
  /** `resources.limits[name]` or null. */
  limit(name: string): string | null { return this.limits.get(name); }
  /** `resources.requests[name]` or null. */
  request(name: string): string | null { return this.requests.get(name); }

  args(): string[] { return strings(this.value.getArray("args")); }
  command(): string[] { return strings(this.value.getArray("command")); }
  volumeMounts(): Value[] { return this.value.getArray("volumeMounts"); }
  /** Whether a volume is mounted at `path`. */
  mountsAt(path: string): bool {
    const mounts = this.volumeMounts();
    for (let i = 0; i < mounts.length; i++) if (mounts[i].getString("mountPath") == path) return true;
    return false;
  }
}

/** The containers `Pod.selectContainers` picked, or why there are none. */
export class ContainerSelection {
  list: Container[] = [];
  /** "" when `list` is not empty. */
  error: string = "";
}

function strings(items: Value[]): string[] {
  const out = new Array<string>();
  for (let i = 0; i < items.length; i++) if (items[i].isString) out.push(items[i].asString());
  return out;
}

function containers(items: Value[]): Container[] {
  const out = new Array<Container>();
  for (let i = 0; i < items.length; i++) if (items[i].isMap) out.push(new Container(items[i]));
  return out;
}

/** The Pod: for `create` the Pod about to be created (as left by earlier
 * plugins), for `ready` the live Pod. */
export class Pod {
  constructor(public value: Value) {}

  get metadata(): Value { return this.value.getMap("metadata"); }
  get spec(): Value { return this.value.getMap("spec"); }
  get status(): Value { return this.value.getMap("status"); }

  get name(): string { return this.metadata.getString("name"); }
  get namespace(): string { return this.metadata.getString("namespace"); }
  get labels(): StringMap { return new StringMap(this.metadata.getMap("labels")); }
  get annotations(): StringMap { return new StringMap(this.metadata.getMap("annotations")); }
  label(key: string): string | null { return this.labels.get(key); }
  annotation(key: string): string | null { return this.annotations.get(key); }

  containers(): Container[] { return containers(this.spec.getArray("containers")); }
  initContainers(): Container[] { return containers(this.spec.getArray("initContainers")); }
  /** The container of `spec.containers` called `name`, or null. */
  container(name: string): Container | null {
    const all = this.containers();
    for (let i = 0; i < all.length; i++) if (all[i].name == name) return all[i];
    return null;
  }
  /** The first container: by Kthena's convention the serving container. */
  mainContainer(): Container | null {
    const all = this.containers();
    return all.length ? all[0] : null;
  }
  /** The init container called `name`, or null. */
  initContainer(name: string): Container | null {
    const all = this.initContainers();
    for (let i = 0; i < all.length; i++) if (all[i].name == name) return all[i];
    return null;
  }
  containerNames(): string[] {
    const all = this.containers();
    const out = new Array<string>(all.length);
    for (let i = 0; i < all.length; i++) out[i] = all[i].name;
    return out;
  }

  volumes(): Value[] { return this.spec.getArray("volumes"); }
  /** The volume called `name`, or null. */
  volume(name: string): Value | null {
    const vols = this.volumes();
    for (let i = 0; i < vols.length; i++) if (vols[i].getString("name") == name) return vols[i];
    return null;
  }
  hasVolume(name: string): bool { return this.volume(name) !== null; }
  /** Whether the `Ready` condition is `True` (in a ready hook). */
  get isReady(): bool {
    const conditions = this.status.getArray("conditions");
    for (let i = 0; i < conditions.length; i++) {
      const c = conditions[i];
      if (c.getString("type") == "Ready" && c.getString("status") == "True") return true;
    }
    return false;
  }
  get nodeSelector(): StringMap { return new StringMap(this.spec.getMap("nodeSelector")); }
  tolerations(): Value[] { return this.spec.getArray("tolerations"); }
  /** Whether a toleration already covers a `key:effect` taint of any value:
   * `Exists` on `key` (or on every key, no key), or a toleration of `key`
   * with neither operator nor value; with `effect` or no effect. */
  tolerates(key: string, effect: string = "NoSchedule"): bool {
    const all = this.tolerations();
    for (let i = 0; i < all.length; i++) {
      const t = all[i];
      const k = t.getString("key");
      const operator = t.getString("operator");
      const e = t.getString("effect");
      if (k != key && !(k == "" && operator == "Exists")) continue;
      if (e != "" && e != effect) continue;
      if (operator == "Exists" || (operator == "" && t.getString("value") == "")) return true;
    }
    return false;
  }
  /** The containers a plugin acts on: the first container (by Kthena's
   * convention the serving container) when `names` is empty, else the named
   * ones that are in this Pod, in `names` order, so one list can name the
   * entry template's container and the worker template's. None found is an
   * `error` naming config field `field`. */
  selectContainers(names: string[], field: string = "containers"): ContainerSelection {
    const t = new ContainerSelection();
    if (!names.length) {
      const main = this.mainContainer();
      if (main === null) t.error = "the Pod has no container";
      else t.list.push(main);
      return t;
    }
    for (let i = 0; i < names.length; i++) {
      const c = this.container(names[i]);
      if (c !== null) t.list.push(c);
    }
    if (!t.list.length) {
      t.error = "none of the containers [" + names.join(", ") + "] is in the Pod (config field " + field + ")";
    }
    return t;
  }
  get runtimeClassName(): string { return this.spec.getString("runtimeClassName"); }
  get schedulerName(): string { return this.spec.getString("schedulerName"); }
  get priorityClassName(): string { return this.spec.getString("priorityClassName"); }
}

/** The ModelServing the Pod belongs to. */
export class ModelServing {
  constructor(public value: Value) {}

  get metadata(): Value { return this.value.getMap("metadata"); }
  /** The ModelServing spec, as sent: in ABI v2 its roles come without
   * their Pod templates (the Pod is its role's template rendered). */
  get spec(): Value { return this.value.getMap("spec"); }
  get name(): string { return this.metadata.getString("name"); }
  get namespace(): string { return this.metadata.getString("namespace"); }
  get uid(): string { return this.metadata.getString("uid"); }
  get generation(): i64 {
    const g = this.metadata.get("generation");
    return g ? g.asInt() : 0;
  }
  get labels(): StringMap { return new StringMap(this.metadata.getMap("labels")); }
  get annotations(): StringMap { return new StringMap(this.metadata.getMap("annotations")); }
  /** `spec.replicas` (serving groups), or -1 when absent. */
  get replicas(): i64 {
    const r = this.spec.get("replicas");
    return r && r.isInt ? r.asInt() : -1;
  }
  /** `spec.template.roles[]`. */
  roles(): Value[] { return this.spec.getMap("template").getArray("roles"); }
  /** The role called `name` in `spec.template.roles[]`, or null. */
  role(name: string): Value | null {
    const roles = this.roles();
    for (let i = 0; i < roles.length; i++) if (roles[i].getString("name") == name) return roles[i];
    return null;
  }
  /** A spec field by `/`-separated path, e.g. `specAt("template/roles/0/replicas")`. */
  specAt(path: string): Value | null { return this.spec.pointer(path); }
}

/** The first config problem of a call, shared by every Config view of it. */
export class ConfigErrors {
  first: string | null = null;
  record(msg: string): void { if (this.first == null) this.first = msg; }
}

/**
 * The plugin's config (`plugin.config`), or a part of it, with typed getters.
 * A getter that finds the wrong type records "field <path>: expected <type>"
 * and answers its default; the first problem recorded becomes the hook's error
 * (`{error}`) or, in validate_config, `{valid: false, message}`.
 */
export class Config {
  private errors: ConfigErrors;

  constructor(public value: Value, public path: string = "", errors: ConfigErrors | null = null) {
    this.errors = errors ? errors : new ConfigErrors();
  }

  /** The first problem recorded, or null. */
  get error(): string | null { return this.errors.first; }
  get ok(): bool { return this.errors.first == null; }

  private field(key: string): string {
    return this.path.length ? this.path + "." + key : key;
  }

  /** Records a problem with field `key` of this map ("" for this value itself):
   * `field <path>: <message>`. */
  fail(key: string, message: string): void {
    const path = key.length ? this.field(key) : this.path;
    this.errors.record(path.length ? "field " + path + ": " + message : "config: " + message);
  }

  /** Records "expected a map" unless this value is a map. */
  expectMap(): bool {
    if (this.value.isMap) return true;
    this.fail("", "expected a map");
    return false;
  }

  /** Records `unknown field "X"` for the first key not in `allowed`. */
  allowOnly(allowed: string[]): void {
    if (!this.expectMap()) return;
    const keys = this.value.keys();
    for (let i = 0; i < keys.length; i++) {
      if (!allowed.includes(keys[i])) {
        this.errors.record(
          "unknown field \"" + (this.path.length ? this.field(keys[i]) : keys[i]) + "\"",
        );
        return;
      }
    }
  }

  has(key: string): bool { return this.value.has(key); }

  /** The raw value under `key`, or null when absent; records "expected a map"
   * when this config is not a map. An explicit nil is present: the typed
   * getters report it as the wrong type. */
  get(key: string): Value | null {
    if (!this.expectMap()) return null;
    return this.value.get(key);
  }

  getString(key: string, otherwise: string = ""): string {
    const v = this.get(key);
    if (!v) return otherwise;
    if (v.isString) return v.asString();
    this.fail(key, "expected a string");
    return otherwise;
  }

  getInt(key: string, otherwise: i64 = 0): i64 {
    const v = this.get(key);
    if (!v) return otherwise;
    if (v.kind == Kind.Int) return v.asInt();
    this.fail(key, v.kind == Kind.Uint ? "integer out of range" : "expected an integer");
    return otherwise;
  }

  /** Integers are accepted as floats. */
  getFloat(key: string, otherwise: f64 = 0): f64 {
    const v = this.get(key);
    if (!v) return otherwise;
    if (v.isFloat || v.isInt) return v.asFloat();
    this.fail(key, "expected a number");
    return otherwise;
  }

  getBool(key: string, otherwise: bool = false): bool {
    const v = this.get(key);
    if (!v) return otherwise;
    if (v.isBool) return v.asBool();
    this.fail(key, "expected a boolean");
    return otherwise;
  }

  /** A Kubernetes quantity: a string, or a number read as its decimal text. */
  getQuantity(key: string, otherwise: string = ""): string {
    const v = this.get(key);
    if (!v) return otherwise;
    if (v.isString || v.isInt || v.isFloat) return v.toText();
    this.fail(key, "expected a quantity");
    return otherwise;
  }

  /** The map under `key` as a Config (an empty one when absent or mistyped). */
  getMap(key: string): Config {
    const v = this.get(key);
    if (v && v.isMap) return new Config(v, this.field(key), this.errors);
    if (v) this.fail(key, "expected a map");
    return new Config(Value.map(), this.field(key), this.errors);
  }

  /** The items of the array under `key`, each a Config with path `key[i]`. */
  getArray(key: string): Config[] {
    const v = this.get(key);
    const out = new Array<Config>();
    if (!v) return out;
    if (!v.isArray) { this.fail(key, "expected an array"); return out; }
    const items = v.values();
    const base = this.field(key);
    for (let i = 0; i < items.length; i++) {
      out.push(new Config(items[i], base + "[" + i.toString() + "]", this.errors));
    }
    return out;
  }

  getStringArray(key: string, otherwise: string[] = []): string[] {
    const v = this.get(key);
    if (!v) return otherwise;
    if (!v.isArray) { this.fail(key, "expected an array of strings"); return otherwise; }
    const items = v.values();
    const out = new Array<string>(items.length);
    for (let i = 0; i < items.length; i++) {
      if (!items[i].isString) {
        this.fail(key + "[" + i.toString() + "]", "expected a string");
        return otherwise;
      }
      out[i] = items[i].asString();
    }
    return out;
  }

  /** Whether `key` is present with a value other than nil. The typed getters
   * report an explicit nil as the wrong type; test this first to read
   * `key: null` as absent. */
  isSet(key: string): bool {
    const v = this.value.isMap ? this.value.get(key) : null;
    return v !== null && !v.isNil;
  }

  /** A map of strings under `key` (an empty one when absent); records
   * "expected a map", or "field key.name: expected a string" for a value of
   * another type. */
  getStringMap(key: string): StringMap {
    const m = this.getMap(key);
    const out = Value.map();
    const keys = m.value.keys();
    for (let i = 0; i < keys.length; i++) out.setString(keys[i], m.getString(keys[i]));
    return new StringMap(out);
  }

  /** Kubernetes Tolerations under `key`, checked (fields key, operator Equal
   * or Exists, value, effect, tolerationSeconds) and returned with the fields
   * given, in that order. */
  getTolerations(key: string): Value[] {
    const out = new Array<Value>();
    const items = this.getArray(key);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      item.allowOnly(["key", "operator", "value", "effect", "tolerationSeconds"]);
      const t = Value.map();
      const k = item.getString("key");
      const operator = item.getString("operator", "Equal");
      const value = item.getString("value");
      const effect = item.getString("effect");
      if (operator != "Equal" && operator != "Exists") item.fail("operator", "expected Equal or Exists");
      if (operator == "Exists" && value.length) item.fail("value", "must be empty when operator is Exists");
      if (!k.length && operator != "Exists") item.fail("key", "an empty key needs operator Exists");
      if (effect.length && !["NoSchedule", "PreferNoSchedule", "NoExecute"].includes(effect)) {
        item.fail("effect", "expected NoSchedule, PreferNoSchedule or NoExecute");
      }
      if (item.has("key")) t.setString("key", k);
      if (item.has("operator")) t.setString("operator", operator);
      if (item.has("value")) t.setString("value", value);
      if (item.has("effect")) t.setString("effect", effect);
      if (item.has("tolerationSeconds")) t.setInt("tolerationSeconds", item.getInt("tolerationSeconds"));
      out.push(t);
    }
    return out;
  }

  /** Like getString but records "expected a string" when absent too. */
  requireString(key: string): string {
    if (this.value.isMap && !this.has(key)) { this.fail(key, "expected a string"); return ""; }
    return this.getString(key);
  }

  /** Like getInt but records "expected an integer" when absent too. */
  requireInt(key: string): i64 {
    if (this.value.isMap && !this.has(key)) { this.fail(key, "expected an integer"); return 0; }
    return this.getInt(key);
  }
}

/** One hook call's request (docs/abi.md "Requests"). */
export class HookRequest {
  /** The whole decoded request, for fields this SDK has no accessor for. */
  readonly value: Value;
  readonly config: Config;

  constructor(value: Value) {
    this.value = value;
    const c = value.getMap("plugin").get("config");
    this.config = new Config(c ? c : Value.map());
  }

  get abi(): i64 { const v = this.value.get("abi"); return v ? v.asInt() : 0; }
  /** `create`, `ready` or `validate_config`. */
  get hook(): string { return this.value.getString("hook"); }
  private get plugin(): Value { return this.value.getMap("plugin"); }
  /** The name of the plugin entry in `spec.plugins`. */
  get pluginName(): string { return this.plugin.getString("name"); }
  get modelServing(): ModelServing { return new ModelServing(this.value.getMap("modelServing")); }
  get servingGroup(): string { return this.value.getString("servingGroup"); }
  get roleName(): string { return this.value.getString("roleName"); }
  get roleID(): string { return this.value.getString("roleID"); }
  get isEntry(): bool { const v = this.value.get("isEntry"); return v ? v.asBool() : false; }
  get pod(): Pod { return new Pod(this.value.getMap("pod")); }
  get isCreate(): bool { return this.hook == "create"; }
  get isReady(): bool { return this.hook == "ready"; }
  /** This Pod's role in the ModelServing (`spec.template.roles[]` named
   * `roleName`, without its Pod templates): the request's `role` (ABI v2),
   * else looked up in the ModelServing (a v1 host). */
  role(): Value | null {
    const r = this.value.get("role");
    if (r && r.isMap && r.length > 0) return r;
    return this.modelServing.role(this.roleName);
  }
}

/** Whether `q` is a Kubernetes quantity: a decimal number (optionally signed)
 * with an optional binary (Ki..Ei), decimal (m, k, M..E) or exponent (e3,
 * E+3) suffix, e.g. `16Gi`, `500m`, `1.5`, `1e9`. */
export function isQuantity(q: string): bool {
  let i = 0;
  const n = q.length;
  if (i < n && (q.charCodeAt(i) == 43 || q.charCodeAt(i) == 45)) i++; // + -
  const digitsStart = i;
  while (i < n && isDigit(q.charCodeAt(i))) i++;
  let digits = i - digitsStart;
  if (i < n && q.charCodeAt(i) == 46) { // .
    i++;
    const fracStart = i;
    while (i < n && isDigit(q.charCodeAt(i))) i++;
    digits += i - fracStart;
  }
  if (!digits) return false;
  const suffix = q.substring(i);
  if (["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E"].includes(suffix)) return true;
  if (suffix.length < 2 || (suffix.charCodeAt(0) != 101 && suffix.charCodeAt(0) != 69)) return false; // e E
  let j = 1;
  if (suffix.charCodeAt(j) == 43 || suffix.charCodeAt(j) == 45) j++;
  if (j >= suffix.length) return false;
  for (; j < suffix.length; j++) if (!isDigit(suffix.charCodeAt(j))) return false;
  return true;
}

function isDigit(c: i32): bool { return c >= 48 && c <= 57; }
