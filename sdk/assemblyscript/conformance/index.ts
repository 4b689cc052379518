// The SDK conformance plugin (sdk/testdata/README.md): interprets
// `{steps: [...]}` from its config, calling one SDK builder method per step, so
// the shared vectors check that this SDK encodes every op byte for byte like
// the Rust SDK and the reference model (sdk/testdata/generate.py).

import {
  Config, HookRequest, Mutations, Value, onPodCreate, onPodReady, validateConfig,
} from "../assembly/index";
export { podplug_abi_version, podplug_alloc } from "../assembly/index";

export function podplug_on_pod_create(ptr: i32, len: i32): i64 {
  return onPodCreate(ptr, len, run);
}

export function podplug_on_pod_ready(ptr: i32, len: i32): i64 {
  return onPodReady(ptr, len, run);
}

export function podplug_validate_config(ptr: i32, len: i32): i64 {
  return validateConfig(ptr, len, check);
}

const CALLS: string[] = [
  "setLabel", "removeLabel", "setAnnotation", "removeAnnotation", "setEnv", "removeEnv",
  "appendEnv", "setResource", "removeResource", "addVolume", "removeVolume", "addVolumeMount",
  "removeVolumeMount", "setNodeSelector", "removeNodeSelector", "addToleration",
  "addNodeAffinityRequirement", "addPreferredNodeAffinity", "setRuntimeClassName",
  "setSchedulerName", "setPriorityClassName", "addContainer", "addInitContainer", "setArgs",
  "addCapabilities", "echo", "fail",
];

/** The README's checks, in its order, through the SDK's Config getters. */
function check(config: Config): void {
  config.allowOnly(["steps"]);
  const steps = config.getArray("steps");
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    if (!step.expectMap()) return;
    const call = step.requireString("call");
    if (!config.ok) return;
    if (!CALLS.includes(call)) {
      step.fail("call", "unknown call \"" + call + "\"");
      return;
    }
  }
}

function run(req: HookRequest): Mutations {
  check(req.config);
  const m = new Mutations();
  if (!req.config.ok) return m; // the SDK answers {error: <first problem>}
  const steps = req.config.value.getArray("steps");
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    const call = step.getString("call");
    if (call == "fail") return Mutations.error(step.getString("message"));
    if (call == "echo") echo(req, m);
    else apply(call, step, m);
  }
  return m;
}

/** The container a step names, or null for "every container". */
function target(step: Value): string | null {
  const c = step.get("container");
  return c && c.isString ? c.asString() : null;
}

function field(step: Value, key: string): Value {
  const v = step.get(key);
  return v ? v : Value.nil();
}

function strings(v: Value): string[] {
  const items = v.values();
  const out = new Array<string>(items.length);
  for (let i = 0; i < items.length; i++) out[i] = items[i].asString();
  return out;
}

/** `initContainers: true` (absent or false: spec.containers). */
function initContainers(step: Value): bool {
  const v = step.get("initContainers");
  return v !== null && v.isBool && v.asBool();
}

/** setEnv / appendEnv: one builder method per container list and value form;
 * a literal value wins over valueFrom. */
function env(append: bool, c: string | null, step: Value, m: Mutations): void {
  const name = step.getString("name");
  const init = initContainers(step);
  if (step.has("value")) {
    const value = step.getString("value");
    if (append && init) m.appendInitEnvIn(c, name, value);
    else if (append) m.appendEnvIn(c, name, value);
    else if (init) m.setInitEnvIn(c, name, value);
    else m.setEnvIn(c, name, value);
  } else {
    const from = field(step, "valueFrom");
    if (append && init) m.appendInitEnvFromIn(c, name, from);
    else if (append) m.appendEnvFromIn(c, name, from);
    else if (init) m.setInitEnvFromIn(c, name, from);
    else m.setEnvFromIn(c, name, from);
  }
}

function apply(call: string, step: Value, m: Mutations): void {
  const c = target(step);
  if (call == "setLabel") m.setLabel(step.getString("key"), step.getString("value"));
  else if (call == "removeLabel") m.removeLabel(step.getString("key"));
  else if (call == "setAnnotation") m.setAnnotation(step.getString("key"), step.getString("value"));
  else if (call == "removeAnnotation") m.removeAnnotation(step.getString("key"));
  else if (call == "setEnv" || call == "appendEnv") env(call == "appendEnv", c, step, m);
  else if (call == "removeEnv") {
    if (initContainers(step)) m.removeInitEnvIn(c, step.getString("name"));
    else m.removeEnvIn(c, step.getString("name"));
  }
  else if (call == "setResource") {
    m.setResourceIn(c, step.getString("kind"), step.getString("name"), step.getString("quantity"));
  } else if (call == "removeResource") m.removeResourceIn(c, step.getString("kind"), step.getString("name"));
  else if (call == "addVolume") m.addVolume(field(step, "volume"));
  else if (call == "removeVolume") m.removeVolume(step.getString("name"));
  else if (call == "addVolumeMount") m.addVolumeMountIn(c, field(step, "mount"));
  else if (call == "removeVolumeMount") m.removeVolumeMountIn(c, step.getString("mountPath"));
  else if (call == "setNodeSelector") m.setNodeSelector(step.getString("key"), step.getString("value"));
  else if (call == "removeNodeSelector") m.removeNodeSelector(step.getString("key"));
  else if (call == "addToleration") m.addToleration(field(step, "toleration"));
  else if (call == "addNodeAffinityRequirement") m.addNodeAffinityRequirement(field(step, "expression"));
  else if (call == "addPreferredNodeAffinity") {
    m.addPreferredNodeAffinity(field(step, "weight").asInt(), field(step, "preference"));
  } else if (call == "setRuntimeClassName") m.setRuntimeClassName(step.getString("value"));
  else if (call == "setSchedulerName") m.setSchedulerName(step.getString("value"));
  else if (call == "setPriorityClassName") m.setPriorityClassName(step.getString("value"));
  else if (call == "addContainer") m.addContainer(field(step, "container"));
  else if (call == "addInitContainer") m.addInitContainer(field(step, "container"));
  else if (call == "setArgs") m.setArgsIn(c, strings(field(step, "args")));
  else if (call == "addCapabilities") m.addCapabilitiesIn(c, strings(field(step, "capabilities")));
}

/** The README's `echo`: the request as read through the SDK's typed accessors. */
function echo(req: HookRequest, m: Mutations): void {
  const pod = req.pod;
  const containers = pod.containers();
  let env = "";
  let gpu = "none";
  if (containers.length > 0) {
    const vars = containers[0].env();
    const parts = new Array<string>();
    for (let i = 0; i < vars.length; i++) {
      const value = vars[i].value;
      if (value !== null) parts.push(vars[i].name + "=" + value);
    }
    env = parts.join(",");
    const limit = containers[0].limit("nvidia.com/gpu");
    if (limit !== null) gpu = limit;
  }
  const ms = req.modelServing;
  m.setAnnotation("conformance/hook", req.hook);
  m.setAnnotation("conformance/plugin", req.pluginName);
  m.setAnnotation("conformance/model", ms.name);
  m.setAnnotation("conformance/namespace", ms.namespace);
  m.setAnnotation("conformance/group", req.servingGroup);
  m.setAnnotation("conformance/role", req.roleName);
  m.setAnnotation("conformance/role-id", req.roleID);
  m.setAnnotation("conformance/entry", req.isEntry ? "true" : "false");
  m.setAnnotation("conformance/pod", pod.name);
  m.setAnnotation("conformance/containers", pod.containerNames().join(","));
  m.setAnnotation("conformance/env", env);
  m.setAnnotation("conformance/labels", pod.labels.size.toString());
  m.setAnnotation("conformance/gpu", gpu);
}
