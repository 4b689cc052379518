// amd-rocm-defaults: AMD Instinct (ROCm) defaults for ModelServing Pods.
//
// Gives the chosen containers `gpuCount` AMD GPUs (limits = requests), a
// memory-backed /dev/shm, and optionally a toleration, a node selector on the
// AMD node labeller's product label and RCCL/HIP env defaults. /dev/kfd and
// /dev/dri are not touched: the AMD device plugin injects them per allocation.
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
  s.tolerations = config.getTolerations("tolerations");
  s.productName = config.getString("productName");
  s.env = envMap(config);
  s.rocmTuningEnv = config.getBool("rocmTuningEnv");
  s.overwrite = config.getBool("overwrite");
  return s;
}

function create(req: HookRequest): Mutations {
  const s = settings(req.config);
  if (!req.config.ok) return new Mutations(); // the SDK answers with the config error
  const targets = req.pod.selectContainers(s.containers);
  if (targets.error.length) return Mutations.error(targets.error);

  const m = new Mutations();
  const count = s.gpuCount.toString();
  for (let i = 0; i < targets.list.length; i++) {
    m.setExtendedResourceIn(targets.list[i], s.gpuResourceName, count, s.overwrite);
  }
  // A `dshm` volume the template already declares is reused, never replaced.
  if (s.shm) m.addSharedMemory(req.pod, targets.list, s.shmSize, s.overwrite, SHM_VOLUME);

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
    for (let j = 0; j < env.length; j += 2) m.setEnvDefaultIn(c, env[j], env[j + 1], s.overwrite);
  }

  // A no-op where nodes have no taint named after the resource.
  if (s.tolerateGpuTaint) m.tolerate(req.pod, s.gpuResourceName);
  for (let i = 0; i < s.tolerations.length; i++) m.addToleration(s.tolerations[i]);
  if (s.productName.length && (s.overwrite || !req.pod.nodeSelector.has(PRODUCT_LABEL))) {
    m.setNodeSelector(PRODUCT_LABEL, s.productName);
  }
  return m;
}

// Set by the ModelServing controller; the host denies plugins writing them.
const RESERVED_ENV = ["ENTRY_ADDRESS", "WORKER_INDEX", "GROUP_SIZE"];

/** `env`: env var names to string values, flattened to [name, value, ...]
 * in config order. */
function envMap(config: Config): string[] {
  const out = config.getStringMap("env").flatten();
  for (let i = 0; i < out.length; i += 2) {
    if (RESERVED_ENV.includes(out[i])) config.fail("env." + out[i], "is set by the ModelServing controller");
  }
  return out;
}

/** Appends `name=value` to a flattened env list unless `name` is in it. */
function addDefault(env: string[], name: string, value: string): void {
  for (let i = 0; i < env.length; i += 2) if (env[i] == name) return;
  env.push(name);
  env.push(value);
}
