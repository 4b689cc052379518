// intel-gaudi-defaults: Intel Gaudi (Habana) defaults for ModelServing Pods.
//
// Gives the chosen containers `gaudiCount` Gaudi cards (limits = requests), a
// memory-backed /dev/shm, a toleration, and optionally a runtime class, a node
// selector on Gaudi feature discovery's device-type label and the env vLLM
// needs on Gaudi. HABANA_VISIBLE_DEVICES and the /dev/accel nodes come from the
// Habana device plugin's allocation, so the plugin never sets them.
// Values the Pod already sets are kept unless `overwrite` is true.
// README.md has the config table and the sources behind each default.

import {
  Config, HookRequest, Mutations, Value, isQuantity, onPodCreate, validateConfig,
} from "@podplug/sdk";
export { podplug_abi_version, podplug_alloc } from "@podplug/sdk";

export function podplug_on_pod_create(ptr: i32, len: i32): i64 {
  return onPodCreate(ptr, len, create);
}

export function podplug_validate_config(ptr: i32, len: i32): i64 {
  return validateConfig(ptr, len, (config: Config): void => { settings(config); });
}

const SHM_VOLUME = "dshm";
// Published by Gaudi feature discovery (HabanaAI/gaudi-feature-discovery).
const DEVICE_TYPE_LABEL = "habana.ai/device.type";
// Set per allocation by the Habana device plugin (habanalabs-k8s-device-plugin
// Allocate); a Pod value would override it and expose other cards.
const DEVICE_PLUGIN_ENV = ["HABANA_VISIBLE_DEVICES", "HABANA_VISIBLE_MODULES", "HL_VISIBLE_DEVICES", "HL_VISIBLE_DEVICES_UUID"];

class Settings {
  gaudiResourceName: string = "habana.ai/gaudi";
  gaudiCount: i64 = 1;
  containers: string[] = [];
  runtimeClassName: string = "";
  shm: bool = true;
  shmSize: string = "";
  tolerateGaudiTaint: bool = true;
  tolerations: Value[] = [];
  deviceType: string = "";
  vllmEnv: bool = true;
  env: string[] = []; // name, value, name, value... in config order
  overwrite: bool = false;
}

const FIELDS = [
  "gaudiResourceName", "gaudiCount", "containers", "runtimeClassName", "shm", "shmSize", "tolerateGaudiTaint",
  "tolerations", "deviceType", "vllmEnv", "env", "overwrite",
];

/** Reads and checks the config; the first problem is recorded on `config`
 * and becomes the hook's error (or validate_config's message). */
function settings(config: Config): Settings {
  const s = new Settings();
  config.allowOnly(FIELDS);
  s.gaudiResourceName = config.getString("gaudiResourceName", s.gaudiResourceName);
  if (s.gaudiResourceName.indexOf("/") <= 0) {
    config.fail("gaudiResourceName", "expected an extended resource name like habana.ai/gaudi");
  }
  s.gaudiCount = config.getInt("gaudiCount", s.gaudiCount);
  if (s.gaudiCount < 1) config.fail("gaudiCount", "must be at least 1");
  s.containers = config.getStringArray("containers");
  s.runtimeClassName = config.getString("runtimeClassName");
  s.shm = config.getBool("shm", s.shm);
  s.shmSize = config.getQuantity("shmSize");
  if (s.shmSize.length && !isQuantity(s.shmSize)) config.fail("shmSize", "expected a quantity like 16Gi");
  s.tolerateGaudiTaint = config.getBool("tolerateGaudiTaint", s.tolerateGaudiTaint);
  s.tolerations = config.getTolerations("tolerations");
  s.deviceType = config.getString("deviceType");
  s.vllmEnv = config.getBool("vllmEnv", s.vllmEnv);
  s.env = envMap(config);
  s.overwrite = config.getBool("overwrite");
  return s;
}

function create(req: HookRequest): Mutations {
  const s = settings(req.config);
  if (!req.config.ok) return new Mutations(); // the SDK answers with the config error
  const targets = req.pod.selectContainers(s.containers);
  if (targets.error.length) return Mutations.error(targets.error);

  const m = new Mutations();
  if (s.runtimeClassName.length && (s.overwrite || !req.pod.runtimeClassName.length)) {
    m.setRuntimeClassName(s.runtimeClassName);
  }
  const count = s.gaudiCount.toString();
  for (let i = 0; i < targets.list.length; i++) {
    m.setExtendedResourceIn(targets.list[i], s.gaudiResourceName, count, s.overwrite);
  }
  // A `dshm` volume the template already declares is reused, never replaced.
  if (s.shm) m.addSharedMemory(req.pod, targets.list, s.shmSize, s.overwrite, SHM_VOLUME);

  for (let i = 0; i < targets.list.length; i++) {
    const c = targets.list[i];
    const env = s.env.slice(0);
    // vLLM on Gaudi: collectives with HPU graphs in lazy mode need lazy
    // collectives, i.e. tensor parallelism over several cards or, with
    // workers (GROUP_SIZE > 1), across Pods. `env` wins over it.
    if (s.vllmEnv && (s.gaudiCount > 1 || parseCount(c.envValue("GROUP_SIZE")) > 1)) {
      addDefault(env, "PT_HPU_ENABLE_LAZY_COLLECTIVES", "true");
    }
    for (let j = 0; j < env.length; j += 2) m.setEnvDefaultIn(c, env[j], env[j + 1], s.overwrite);
  }

  // A no-op where nodes have no taint named after the resource.
  if (s.tolerateGaudiTaint) m.tolerate(req.pod, s.gaudiResourceName);
  for (let i = 0; i < s.tolerations.length; i++) m.addToleration(s.tolerations[i]);
  if (s.deviceType.length && (s.overwrite || !req.pod.nodeSelector.has(DEVICE_TYPE_LABEL))) {
    m.setNodeSelector(DEVICE_TYPE_LABEL, s.deviceType);
  }
  return m;
}

/** A decimal count (GROUP_SIZE), or 0 when absent or not a number. */
function parseCount(text: string | null): i64 {
  if (text === null || !text.length) return 0;
  let n: i64 = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57 || n > 1000000) return 0;
    n = n * 10 + (c - 48);
  }
  return n;
}

// Set by the ModelServing controller; the host denies plugins writing them.
const CONTROLLER_ENV = ["ENTRY_ADDRESS", "WORKER_INDEX", "GROUP_SIZE"];

/** `env` as [name, value, ...] in config order; names the controller or the
 * device plugin sets are refused. */
function envMap(config: Config): string[] {
  const env = config.getStringMap("env").flatten();
  for (let i = 0; i < env.length; i += 2) {
    const name = env[i];
    if (CONTROLLER_ENV.includes(name)) config.fail("env." + name, "is set by the ModelServing controller");
    else if (DEVICE_PLUGIN_ENV.includes(name)) config.fail("env." + name, "is set by the device plugin");
  }
  return env;
}

/** Adds `name=value` to a flattened env list that has no `name` yet. */
function addDefault(env: string[], name: string, value: string): void {
  let i = 0;
  while (i < env.length && env[i] != name) i += 2;
  if (i >= env.length) {
    env.push(name);
    env.push(value);
  }
}
