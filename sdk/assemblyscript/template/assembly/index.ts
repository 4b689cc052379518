// {{name}}: a podplug plugin. It gives serving Pods a memory-backed /dev/shm
// (NCCL and PyTorch dataloaders need more than the container default) and
// labels each Pod with its role.
//
// Config:
//   shmSize    size of /dev/shm, a Kubernetes quantity    (default "1Gi")
//   container  the container to mount it in              (default: every container)

import { Config, HookRequest, Mutations, onPodCreate, validateConfig } from "@podplug/sdk";
export { podplug_abi_version, podplug_alloc } from "@podplug/sdk";

export function podplug_on_pod_create(ptr: i32, len: i32): i64 {
  return onPodCreate(ptr, len, create);
}

export function podplug_validate_config(ptr: i32, len: i32): i64 {
  return validateConfig(ptr, len, (config: Config): void => { settings(config); });
}

class Settings {
  shmSize: string = "1Gi";
  container: string | null = null;
}

/** Reads the config; a wrong type or unknown key is recorded on `config` and
 * becomes the hook's error (or validate_config's message). */
function settings(config: Config): Settings {
  config.allowOnly(["shmSize", "container"]);
  const s = new Settings();
  s.shmSize = config.getQuantity("shmSize", s.shmSize);
  const container = config.getString("container");
  if (container.length) s.container = container;
  return s;
}

function create(req: HookRequest): Mutations {
  const s = settings(req.config);
  const container = s.container;
  if (container !== null && req.pod.container(container) === null) {
    return Mutations.error("no container named \"" + container + "\" in the Pod");
  }
  const m = new Mutations();
  m.addEmptyDir("dshm", "Memory", s.shmSize);
  m.mountVolumeIn(container, "dshm", "/dev/shm");
  if (req.roleName.length) m.setLabel("example.com/role", req.roleName);
  return m;
}
