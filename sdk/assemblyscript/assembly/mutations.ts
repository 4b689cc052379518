// The Mutations builder: one named method per op of docs/abi.md. Each method
// writes the op's fields in the canonical order of docs/abi.md's table and omits
// absent optional fields, so two SDKs given the same calls emit the same bytes.
// `...In(container, ...)` variants target one container of `spec.containers`;
// the plain ones target every container. `...InitEnv...` methods are the env ops
// on `spec.initContainers` (`initContainers: true`).

import { Value } from "./msgpack";
import { Container, Pod } from "./request";

function op(name: string): Value { return Value.map().setString("op", name); }

function opIn(name: string, container: string | null): Value {
  const m = op(name);
  if (container !== null) m.setString("container", container);
  return m;
}

/** An env op: `container?`, `initContainers?` (only when true), `name`. */
function envOp(name: string, container: string | null, init: bool, varName: string): Value {
  const m = opIn(name, container);
  if (init) m.setBool("initContainers", true);
  return m.setString("name", varName);
}

/** The mutation set a create or ready hook returns, or the error it refuses with. */
export class Mutations {
  /** The ops in order, each a map whose first key is `op`. */
  readonly ops: Value[] = [];
  /** Set by `Mutations.error`: the hook refuses with this message. */
  errorMessage: string | null = null;

  /** A refusal: the hook's response becomes `{error: message}` (the host
   * reports `plugin error: <message>` and does not create the Pod). */
  static error(message: string): Mutations {
    const m = new Mutations();
    m.errorMessage = message;
    return m;
  }

  get length(): i32 { return this.ops.length; }

  /** Appends a raw op (a map whose first key is `op`). Prefer the named methods. */
  push(opValue: Value): Mutations { this.ops.push(opValue); return this; }

  // -- labels and annotations (the only ops a ready hook may use)

  setLabel(key: string, value: string): Mutations {
    return this.push(op("setLabel").setString("key", key).setString("value", value));
  }
  removeLabel(key: string): Mutations { return this.push(op("removeLabel").setString("key", key)); }
  setAnnotation(key: string, value: string): Mutations {
    return this.push(op("setAnnotation").setString("key", key).setString("value", value));
  }
  removeAnnotation(key: string): Mutations {
    return this.push(op("removeAnnotation").setString("key", key));
  }

  // -- env

  /** Sets env var `name` to `value` in every container. */
  setEnv(name: string, value: string): Mutations { return this.setEnvIn(null, name, value); }
  /** Sets env var `name` to `value` in container `container` (null: every container). */
  setEnvIn(container: string | null, name: string, value: string): Mutations {
    return this.push(opIn("setEnv", container).setString("name", name).setString("value", value));
  }
  /** Sets env var `name` from a source (see `fieldRef`, `resourceFieldRef`) in every container. */
  /** `setEnvIn(c.name, name, value)` unless container `c` sets `name`
   * already (to anything, or from `valueFrom`) and `overwrite` is off. */
  setEnvDefaultIn(c: Container, name: string, value: string, overwrite: bool = false): Mutations {
    return overwrite || !c.hasEnv(name) ? this.setEnvIn(c.name, name, value) : this;
  }
  setEnvFrom(name: string, valueFrom: Value): Mutations { return this.setEnvFromIn(null, name, valueFrom); }
  setEnvFromIn(container: string | null, name: string, valueFrom: Value): Mutations {
    return this.push(opIn("setEnv", container).setString("name", name).set("valueFrom", valueFrom));
  }
  /** Sets env var `name` from a Pod field (`fieldRef.fieldPath`) in every container. */
  setEnvFromField(name: string, fieldPath: string): Mutations {
    return this.setEnvFromIn(null, name, fieldRef(fieldPath));
  }
  removeEnv(name: string): Mutations { return this.removeEnvIn(null, name); }
  removeEnvIn(container: string | null, name: string): Mutations {
    return this.push(opIn("removeEnv", container).setString("name", name));
  }
  /** Appends env var `name` = `value` to every container, after its own env even
   * when it has `name` already (Kubernetes uses the last; Kthena's way). */
  appendEnv(name: string, value: string): Mutations { return this.appendEnvIn(null, name, value); }
  appendEnvIn(container: string | null, name: string, value: string): Mutations {
    return this.push(envOp("appendEnv", container, false, name).setString("value", value));
  }
  appendEnvFrom(name: string, valueFrom: Value): Mutations { return this.appendEnvFromIn(null, name, valueFrom); }
  appendEnvFromIn(container: string | null, name: string, valueFrom: Value): Mutations {
    return this.push(envOp("appendEnv", container, false, name).set("valueFrom", valueFrom));
  }

  // -- env of init containers: `container` names an init container (null: every one)

  setInitEnv(name: string, value: string): Mutations { return this.setInitEnvIn(null, name, value); }
  setInitEnvIn(container: string | null, name: string, value: string): Mutations {
    return this.push(envOp("setEnv", container, true, name).setString("value", value));
  }
  setInitEnvFrom(name: string, valueFrom: Value): Mutations { return this.setInitEnvFromIn(null, name, valueFrom); }
  setInitEnvFromIn(container: string | null, name: string, valueFrom: Value): Mutations {
    return this.push(envOp("setEnv", container, true, name).set("valueFrom", valueFrom));
  }
  appendInitEnv(name: string, value: string): Mutations { return this.appendInitEnvIn(null, name, value); }
  appendInitEnvIn(container: string | null, name: string, value: string): Mutations {
    return this.push(envOp("appendEnv", container, true, name).setString("value", value));
  }
  appendInitEnvFrom(name: string, valueFrom: Value): Mutations {
    return this.appendInitEnvFromIn(null, name, valueFrom);
  }
  appendInitEnvFromIn(container: string | null, name: string, valueFrom: Value): Mutations {
    return this.push(envOp("appendEnv", container, true, name).set("valueFrom", valueFrom));
  }
  removeInitEnv(name: string): Mutations { return this.removeInitEnvIn(null, name); }
  removeInitEnvIn(container: string | null, name: string): Mutations {
    return this.push(envOp("removeEnv", container, true, name));
  }

  // -- resources (`kind` is "limits" or "requests")

  setResource(kind: string, name: string, quantity: string): Mutations {
    return this.setResourceIn(null, kind, name, quantity);
  }
  setResourceIn(container: string | null, kind: string, name: string, quantity: string): Mutations {
    return this.push(opIn("setResource", container)
      .setString("kind", kind).setString("name", name).setString("quantity", quantity));
  }
  setResourceLimit(name: string, quantity: string): Mutations {
    return this.setResourceIn(null, "limits", name, quantity);
  }
  setResourceLimitIn(container: string | null, name: string, quantity: string): Mutations {
    return this.setResourceIn(container, "limits", name, quantity);
  }
  setResourceRequest(name: string, quantity: string): Mutations {
    return this.setResourceIn(null, "requests", name, quantity);
  }
  setResourceRequestIn(container: string | null, name: string, quantity: string): Mutations {
    return this.setResourceIn(container, "requests", name, quantity);
  }
  /** An extended resource (GPUs, NPUs...) for container `c`: limits =
   * requests = `count`, unless `c` already has a limit (Kubernetes then
   * defaults the request to it) and `overwrite` is off. A request without a
   * limit, invalid for an extended resource, gets the equal limit. */
  setExtendedResourceIn(c: Container, resource: string, count: string, overwrite: bool = false): Mutations {
    const limit = c.limit(resource);
    const request = c.request(resource);
    if (overwrite || (limit === null && request === null)) {
      this.setResourceIn(c.name, "limits", resource, count);
      this.setResourceIn(c.name, "requests", resource, count);
    } else if (limit === null && request !== null) {
      this.setResourceIn(c.name, "limits", resource, request);
    }
    return this;
  }
  removeResource(kind: string, name: string): Mutations { return this.removeResourceIn(null, kind, name); }
  removeResourceIn(container: string | null, kind: string, name: string): Mutations {
    return this.push(opIn("removeResource", container).setString("kind", kind).setString("name", name));
  }
  removeResourceLimit(name: string): Mutations { return this.removeResourceIn(null, "limits", name); }
  removeResourceRequest(name: string): Mutations { return this.removeResourceIn(null, "requests", name); }

  // -- volumes and mounts

  /** Adds a Kubernetes Volume (replacing one of the same name). A `hostPath`
   * volume is gated by the operator's `hostPath` grant. */
  addVolume(volume: Value): Mutations { return this.push(op("addVolume").set("volume", volume)); }
  /** Adds `{name, emptyDir: {medium?, sizeLimit?}}` ("" omits an optional field). */
  addEmptyDir(name: string, medium: string = "", sizeLimit: string = ""): Mutations {
    return this.addVolume(emptyDirVolume(name, medium, sizeLimit));
  }
  /** Adds a memory-backed emptyDir (`medium: Memory`), e.g. for /dev/shm. */
  addMemoryEmptyDir(name: string, sizeLimit: string = ""): Mutations {
    return this.addVolume(emptyDirVolume(name, "Memory", sizeLimit));
  }
  /** Adds `{name, configMap: {name: configMap}}`. */
  addConfigMapVolume(name: string, configMap: string): Mutations {
    return this.addVolume(configMapVolume(name, configMap));
  }
  /** A memory-backed emptyDir `volume` (size limit `sizeLimit`, "" for none)
   * mounted at /dev/shm in each of `containers` that has nothing mounted
   * there (in every one with `overwrite`); NCCL, RCCL, HCCL and PyTorch
   * workers need more than the container runtime's 64 MiB. A volume of that
   * name the Pod already has is reused, never replaced; with no container
   * needing it nothing is added. */
  addSharedMemory(
    pod: Pod, containers: Container[], sizeLimit: string = "", overwrite: bool = false, volume: string = "dshm",
  ): Mutations {
    const needing = new Array<Container>();
    for (let i = 0; i < containers.length; i++) {
      if (overwrite || !containers[i].mountsAt("/dev/shm")) needing.push(containers[i]);
    }
    if (!needing.length) return this;
    if (!pod.hasVolume(volume)) this.addMemoryEmptyDir(volume, sizeLimit);
    for (let i = 0; i < needing.length; i++) this.mountVolumeIn(needing[i].name, volume, "/dev/shm");
    return this;
  }
  removeVolume(name: string): Mutations { return this.push(op("removeVolume").setString("name", name)); }
  /** Adds a VolumeMount to every container (replacing one at the same mountPath). */
  addVolumeMount(mount: Value): Mutations { return this.addVolumeMountIn(null, mount); }
  addVolumeMountIn(container: string | null, mount: Value): Mutations {
    return this.push(opIn("addVolumeMount", container).set("mount", mount));
  }
  /** Mounts volume `name` at `mountPath` in every container. */
  mountVolume(name: string, mountPath: string, readOnly: bool = false): Mutations {
    return this.addVolumeMountIn(null, volumeMount(name, mountPath, readOnly));
  }
  mountVolumeIn(container: string | null, name: string, mountPath: string, readOnly: bool = false): Mutations {
    return this.addVolumeMountIn(container, volumeMount(name, mountPath, readOnly));
  }
  removeVolumeMount(mountPath: string): Mutations { return this.removeVolumeMountIn(null, mountPath); }
  removeVolumeMountIn(container: string | null, mountPath: string): Mutations {
    return this.push(opIn("removeVolumeMount", container).setString("mountPath", mountPath));
  }

  // -- scheduling

  setNodeSelector(key: string, value: string): Mutations {
    return this.push(op("setNodeSelector").setString("key", key).setString("value", value));
  }
  removeNodeSelector(key: string): Mutations {
    return this.push(op("removeNodeSelector").setString("key", key));
  }
  /** Adds `{key, operator: Exists, effect: NoSchedule}` unless the Pod
   * tolerates a `key:NoSchedule` taint already (`Pod.tolerates`): what
   * Kubernetes' ExtendedResourceToleration admission plugin adds for a node
   * tainted with an extended resource's name. */
  tolerate(pod: Pod, key: string): Mutations {
    return pod.tolerates(key) ? this : this.addToleration(toleration(key, "Exists", "", "NoSchedule"));
  }
  /** Appends a Toleration (see `toleration`) unless an equal one is there. */
  addToleration(toleration: Value): Mutations {
    return this.push(op("addToleration").set("toleration", toleration));
  }
  /** ANDs a NodeSelectorRequirement (see `requirement`) into every required
   * node-affinity term. */
  addNodeAffinityRequirement(expression: Value): Mutations {
    return this.push(op("addNodeAffinityRequirement").set("expression", expression));
  }
  /** Appends a PreferredSchedulingTerm: `weight` 1-100, `preference` a NodeSelectorTerm. */
  addPreferredNodeAffinity(weight: i64, preference: Value): Mutations {
    return this.push(op("addPreferredNodeAffinity").setInt("weight", weight).set("preference", preference));
  }
  setRuntimeClassName(value: string): Mutations {
    return this.push(op("setRuntimeClassName").setString("value", value));
  }
  setSchedulerName(value: string): Mutations {
    return this.push(op("setSchedulerName").setString("value", value));
  }
  setPriorityClassName(value: string): Mutations {
    return this.push(op("setPriorityClassName").setString("value", value));
  }

  // -- gated ops: denied unless the operator's policy grants them

  /** Adds a sidecar container (a Kubernetes Container). Gated: `sidecars`. */
  addContainer(container: Value): Mutations {
    return this.push(op("addContainer").set("container", container));
  }
  /** Adds an init container. Gated: `initContainers`. */
  addInitContainer(container: Value): Mutations {
    return this.push(op("addInitContainer").set("container", container));
  }
  /** Replaces every container's args. Gated: `args`. */
  setArgs(args: string[]): Mutations { return this.setArgsIn(null, args); }
  setArgsIn(container: string | null, args: string[]): Mutations {
    return this.push(opIn("setArgs", container).set("args", Value.strArray(args)));
  }
  /** Adds Linux capabilities to `securityContext.capabilities.add`. Gated: `capabilities`. */
  addCapabilities(capabilities: string[]): Mutations { return this.addCapabilitiesIn(null, capabilities); }
  addCapabilitiesIn(container: string | null, capabilities: string[]): Mutations {
    return this.push(opIn("addCapabilities", container).set("capabilities", Value.strArray(capabilities)));
  }
}

// -- builders for the Kubernetes objects ops carry ("" omits an optional field)

/** `{name, emptyDir: {medium?, sizeLimit?}}` */
export function emptyDirVolume(name: string, medium: string = "", sizeLimit: string = ""): Value {
  const dir = Value.map();
  if (medium.length) dir.setString("medium", medium);
  if (sizeLimit.length) dir.setString("sizeLimit", sizeLimit);
  return Value.map().setString("name", name).set("emptyDir", dir);
}

/** `{name, configMap: {name: configMapName}}` */
export function configMapVolume(name: string, configMapName: string): Value {
  return Value.map().setString("name", name)
    .set("configMap", Value.map().setString("name", configMapName));
}

/** `{name, mountPath, readOnly?}` (readOnly only when true). */
export function volumeMount(name: string, mountPath: string, readOnly: bool = false): Value {
  const m = Value.map().setString("name", name).setString("mountPath", mountPath);
  if (readOnly) m.setBool("readOnly", true);
  return m;
}

/** `{key?, operator, value?, effect?, tolerationSeconds?}`: operator "Exists"
 * or "Equal"; `seconds` (how long a NoExecute taint is tolerated) only when
 * not negative. */
export function toleration(
  key: string, operator: string, value: string = "", effect: string = "", seconds: i64 = -1,
): Value {
  const t = Value.map();
  if (key.length) t.setString("key", key);
  t.setString("operator", operator);
  if (value.length) t.setString("value", value);
  if (effect.length) t.setString("effect", effect);
  if (seconds >= 0) t.setInt("tolerationSeconds", seconds);
  return t;
}

/** `{name, downwardAPI: {items: [...]}}`, items from `downwardAPIFile`. */
export function downwardAPIVolume(name: string, items: Value[]): Value {
  return Value.map().setString("name", name)
    .set("downwardAPI", Value.map().set("items", Value.array(items)));
}

/** A downwardAPI volume file `{path, fieldRef: {fieldPath}}`, e.g.
 * `downwardAPIFile("labels", "metadata.labels")`. */
export function downwardAPIFile(path: string, fieldPath: string): Value {
  return Value.map().setString("path", path).set("fieldRef", Value.map().setString("fieldPath", fieldPath));
}

/** A NodeSelectorRequirement `{key, operator, values?}` (values omitted when empty,
 * as for Exists / DoesNotExist). */
export function requirement(key: string, operator: string, values: string[] = []): Value {
  const r = Value.map().setString("key", key).setString("operator", operator);
  if (values.length) r.set("values", Value.strArray(values));
  return r;
}

/** A NodeSelectorTerm `{matchExpressions: [...]}`. */
export function nodeSelectorTerm(expressions: Value[]): Value {
  return Value.map().set("matchExpressions", Value.array(expressions));
}

/** `valueFrom` of an env var: `{fieldRef: {fieldPath}}`. */
export function fieldRef(fieldPath: string): Value {
  return Value.map().set("fieldRef", Value.map().setString("fieldPath", fieldPath));
}

/** `valueFrom` of an env var: `{resourceFieldRef: {containerName?, resource, divisor?}}`. */
export function resourceFieldRef(resource: string, containerName: string = "", divisor: string = ""): Value {
  const r = Value.map();
  if (containerName.length) r.setString("containerName", containerName);
  r.setString("resource", resource);
  if (divisor.length) r.setString("divisor", divisor);
  return Value.map().set("resourceFieldRef", r);
}
