// amd-rocm-defaults: AMD Instinct (ROCm) defaults for ModelServing Pods.
//
// Gives the chosen containers `gpuCount` AMD GPUs (limits = requests), a
// memory-backed /dev/shm, and optionally a toleration, a node selector on the
// AMD node labeller's product label and RCCL/HIP env defaults. /dev/kfd and
// /dev/dri are not touched: the AMD device plugin injects them per allocation.
// Values the Pod already sets are kept unless `overwrite` is true.
// README.md has the config table and the sources behind each default.

import { Config, Container, HookRequest, Mutations, Value, onPodCreate, validateConfig } from "@podplug/sdk";
export { podplug_abi_version, podplug_alloc } from "@podplug/sdk";

export function podplug_on_pod_create(ptr: i32, len: i32): i64 {
  return onPodCreate(ptr, len, create);
}

export function podplug_validate_config(ptr: i32, len: i32): i64 {
  return validateConfig(ptr, len, (config: Config): void => { settings(config); });
}

const SHM_PATH = "/dev/shm";
const SHM_VOLUME = "dshm";
// The node labeller's current prefix (ROCm/k8s-device-plugin, cmd/k8s-node-labeller).
const PRODUCT_LABEL = "amd.com/gpu.product-name";

class Settings {
  gpuResourceName: string = "amd.com/gpu";
  gpuCount: i64 = 1;
  containers: string[] = [];
  shm: bool = true;
  shmSize: string = "";
  tolerateGpuTaint: bool = true;
  tolerations: Value[] = [];
  productName: string = "";
  env: string[] = []; // name, value, name, value... in config order
  rocmTuningEnv: bool = false;
  overwrite: bool = false;
}

const FIELDS = [
  "gpuResourceName", "gpuCount", "containers", "shm", "shmSize", "tolerateGpuTaint", "tolerations",
  "productName", "env", "rocmTuningEnv", "overwrite",
];

/** Reads and checks the config; the first problem is recorded on `config`
 * and becomes the hook's error (or validate_config's message). */
function settings(config: Config): Settings {
  const s = new Settings();
  config.allowOnly(FIELDS);
  s.gpuResourceName = config.getString("gpuResourceName", s.gpuResourceName);
  if (s.gpuResourceName.indexOf("/") <= 0) {
    config.fail("gpuResourceName", "expected an extended resource name like amd.com/gpu");
  }
  s.gpuCount = config.getInt("gpuCount", s.gpuCount);
  if (s.gpuCount < 1) config.fail("gpuCount", "must be at least 1");
  s.containers = config.getStringArray("containers");
  s.shm = config.getBool("shm", s.shm);
  s.shmSize = config.getQuantity("shmSize");
  if (s.shmSize.length && !isQuantity(s.shmSize)) config.fail("shmSize", "expected a quantity like 16Gi");
  s.tolerateGpuTaint = config.getBool("tolerateGpuTaint", s.tolerateGpuTaint);
  s.tolerations = tolerations(config);
  s.productName = config.getString("productName");
  s.env = envMap(config, []);
  s.rocmTuningEnv = config.getBool("rocmTuningEnv");
  s.overwrite = config.getBool("overwrite");
  return s;
}

function create(req: HookRequest): Mutations {
  const s = settings(req.config);
  if (!req.config.ok) return new Mutations(); // the SDK answers with the config error
  const targets = selectContainers(req, s.containers);
  if (targets.error.length) return Mutations.error(targets.error);

  const m = new Mutations();
  const count = s.gpuCount.toString();
  let needShm = false;
  for (let i = 0; i < targets.list.length; i++) {
    const c = targets.list[i];
    setCount(m, c, s.gpuResourceName, count, s.overwrite);
    if (s.shm && (s.overwrite || !mountsAt(c, SHM_PATH))) needShm = true;
  }
  if (needShm) {
    // Reuse a `dshm` volume the template already declares; never replace it.
    if (!req.pod.hasVolume(SHM_VOLUME)) m.addMemoryEmptyDir(SHM_VOLUME, s.shmSize);
    for (let i = 0; i < targets.list.length; i++) {
      const c = targets.list[i];
      if (s.overwrite || !mountsAt(c, SHM_PATH)) m.mountVolumeIn(c.name, SHM_VOLUME, SHM_PATH);
    }
  }

  const env = s.env.slice(0);
  if (s.rocmTuningEnv) {
    // AMD's vLLM V1 tuning guide for Instinct MI300X/MI355X; the RCCL channel
    // count only helps collectives across GPUs. `env` wins over these.
    addDefault(env, "HIP_FORCE_DEV_KERNARG", "1");
    addDefault(env, "TORCH_BLAS_PREFER_HIPBLASLT", "1");
    if (s.gpuCount > 1) addDefault(env, "NCCL_MIN_NCHANNELS", "112");
  }
  for (let i = 0; i < targets.list.length; i++) {
    const c = targets.list[i];
    for (let j = 0; j < env.length; j += 2) {
      if (s.overwrite || !c.hasEnv(env[j])) m.setEnvIn(c.name, env[j], env[j + 1]);
    }
  }

  if (s.tolerateGpuTaint && !toleratesTaint(req.pod.tolerations(), s.gpuResourceName)) {
    // What Kubernetes' ExtendedResourceToleration admission plugin adds for a
    // node tainted with the resource's name; a no-op where no such taint exists.
    m.addToleration(Value.map().setString("key", s.gpuResourceName)
      .setString("operator", "Exists").setString("effect", "NoSchedule"));
  }
  for (let i = 0; i < s.tolerations.length; i++) m.addToleration(s.tolerations[i]);
  if (s.productName.length && (s.overwrite || !req.pod.nodeSelector.has(PRODUCT_LABEL))) {
    m.setNodeSelector(PRODUCT_LABEL, s.productName);
  }
  return m;
}

// -- helpers (the same in intel-gaudi-defaults)

class Targets {
  list: Container[] = [];
  error: string = "";
}

/** The containers to change: the first container (by Kthena's convention the
 * serving container) when `names` is empty, else the named ones that are in
 * this Pod, so one list can name the entry template's container and the
 * worker template's; none of them in the Pod is an error. */
function selectContainers(req: HookRequest, names: string[]): Targets {
  const t = new Targets();
  if (!names.length) {
    const main = req.pod.mainContainer();
    if (main === null) t.error = "the Pod has no container";
    else t.list.push(main);
    return t;
  }
  for (let i = 0; i < names.length; i++) {
    const c = req.pod.container(names[i]);
    if (c !== null) t.list.push(c);
  }
  if (!t.list.length) {
    t.error = "none of the containers [" + names.join(", ") + "] is in the Pod (config field containers)";
  }
  return t;
}

/** limits = requests = `count` of `resource`, unless the container already
 * has a limit (Kubernetes then defaults the request to it). A request without
 * a limit is invalid for an extended resource: it gets the equal limit. */
function setCount(m: Mutations, c: Container, resource: string, count: string, overwrite: bool): void {
  const limit = c.limit(resource);
  const request = c.request(resource);
  if (overwrite || (limit === null && request === null)) {
    m.setResourceIn(c.name, "limits", resource, count);
    m.setResourceIn(c.name, "requests", resource, count);
  } else if (limit === null && request !== null) {
    m.setResourceIn(c.name, "limits", resource, request);
  }
}

/** Whether a toleration already covers a `key:NoSchedule` taint of any value:
 * Exists on the key (or on every key), or Equal with no value. */
function toleratesTaint(tolerations: Value[], key: string): bool {
  for (let i = 0; i < tolerations.length; i++) {
    const t = tolerations[i];
    const k = t.getString("key");
    const operator = t.getString("operator");
    const effect = t.getString("effect");
    if (k != key && !(k == "" && operator == "Exists")) continue;
    if (effect != "" && effect != "NoSchedule") continue;
    if (operator == "Exists" || (operator == "" && t.getString("value") == "")) return true;
  }
  return false;
}

function mountsAt(c: Container, path: string): bool {
  const mounts = c.volumeMounts();
  for (let i = 0; i < mounts.length; i++) if (mounts[i].getString("mountPath") == path) return true;
  return false;
}

/** Appends `name=value` to a flattened env list unless `name` is in it. */
function addDefault(env: string[], name: string, value: string): void {
  for (let i = 0; i < env.length; i += 2) if (env[i] == name) return;
  env.push(name);
  env.push(value);
}

// Set by the ModelServing controller; the host denies plugins writing them.
const RESERVED_ENV = ["ENTRY_ADDRESS", "WORKER_INDEX", "GROUP_SIZE"];

/** `env`: a map of env var names to string values, flattened to
 * [name, value, ...] in config order. */
function envMap(config: Config, reserved: string[]): string[] {
  const out = stringMap(config, "env");
  for (let i = 0; i < out.length; i += 2) {
    if (RESERVED_ENV.includes(out[i])) config.fail("env." + out[i], "is set by the ModelServing controller");
    else if (reserved.includes(out[i])) config.fail("env." + out[i], "is set by the device plugin");
  }
  return out;
}

/** A map of strings under `key`, flattened to [name, value, ...] in config order. */
function stringMap(config: Config, key: string): string[] {
  const out = new Array<string>();
  if (!config.has(key)) return out;
  const m = config.getMap(key);
  const keys = m.value.keys();
  for (let i = 0; i < keys.length; i++) {
    out.push(keys[i]);
    out.push(m.getString(keys[i]));
  }
  return out;
}

const TOLERATION_FIELDS = ["key", "operator", "value", "effect", "tolerationSeconds"];
const EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/** `tolerations`: Kubernetes Tolerations, checked and passed through in the
 * order their fields are listed in TOLERATION_FIELDS. */
function tolerations(config: Config): Value[] {
  const out = new Array<Value>();
  const items = config.getArray("tolerations");
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    item.allowOnly(TOLERATION_FIELDS);
    const t = Value.map();
    const key = item.getString("key");
    const operator = item.getString("operator", "Equal");
    const value = item.getString("value");
    const effect = item.getString("effect");
    if (operator != "Equal" && operator != "Exists") item.fail("operator", "expected Equal or Exists");
    if (operator == "Exists" && value.length) item.fail("value", "must be empty when operator is Exists");
    if (!key.length && operator != "Exists") item.fail("key", "an empty key needs operator Exists");
    if (effect.length && !EFFECTS.includes(effect)) {
      item.fail("effect", "expected NoSchedule, PreferNoSchedule or NoExecute");
    }
    if (item.has("key")) t.setString("key", key);
    if (item.has("operator")) t.setString("operator", operator);
    if (item.has("value")) t.setString("value", value);
    if (item.has("effect")) t.setString("effect", effect);
    if (item.has("tolerationSeconds")) t.setInt("tolerationSeconds", item.getInt("tolerationSeconds"));
    out.push(t);
  }
  return out;
}

/** A Kubernetes quantity: a decimal number with an optional binary (Ki..Ei),
 * decimal (m, k, M..E) or exponent (e3) suffix. */
function isQuantity(q: string): bool {
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
