// The SDK's own unit-test module, driven by tests/sdk/test_as_sdk.py through the
// podplug runtime (so every case also runs under the host's real ABI checks):
//   create           decodes the request bytes and re-encodes them (codec round trip)
//   ready            runs the self-test named by the request (a msgpack string)
//   validate_config  checks a fixed config schema with the typed Config getters

import {
  HookRequest, onPodReady,
  Config, Decoder, Kind, Mutations, Value, decode, emptyDirVolume, fieldRef, log, nodeSelectorTerm,
  requirement, resourceFieldRef, respondWith, toleration, validateConfig, volumeMount, configMapVolume,
  Container, downwardAPIFile, downwardAPIVolume, isQuantity,
} from "../assembly/index";
export { podplug_abi_version, podplug_alloc } from "../assembly/index";

export function podplug_on_pod_create(ptr: i32, len: i32): i64 {
  const d = new Decoder(<usize>ptr, <usize>len);
  const v = d.decodeAll();
  if (d.error != null) return respondWith(Value.map().setString("decodeError", d.error!));
  return respondWith(v);
}

export function podplug_on_pod_ready(ptr: i32, len: i32): i64 {
  const d = new Decoder(<usize>ptr, <usize>len);
  const input = d.decodeAll();
  if (input.isMap && input.has("helpers")) return onPodReady(ptr, len, helpers);
  if (input.isMap) return onPodReady(ptr, len, accessors);
  if (input.isArray) {
    // Strings read as AssemblyScript strings and written back (transcoded).
    const items = input.values();
    const out = new Array<Value>(items.length);
    for (let i = 0; i < items.length; i++) out[i] = Value.str(items[i].asString());
    return respondWith(Value.array(out));
  }
  const name = input.asString();
  if (name == "surrogates") return respondWith(surrogates());
  if (name == "builders") return respondWith(builders());
  if (name == "values") return respondWith(values());
  if (name == "rawMaps") return respondWith(rawMaps());
  if (name == "decodeErrors") return respondWith(decodeErrors());
  if (name == "log") { log.info("héllo 😀"); log.warn("w"); return respondWith(Value.nil()); }
  if (name == "throw") throw new Error("boom ✗");
  if (name == "assert") { assert(name.length == 0, "length must be zero"); }
  if (name == "bounds") { const a = new Array<i32>(1); return respondWith(Value.int(a[5])); }
  return respondWith(Value.str("unknown self-test " + name));
}

export function podplug_validate_config(ptr: i32, len: i32): i64 {
  return validateConfig(ptr, len, schema);
}

/** count: int, name: string, enabled: bool, ratio: number, tags: [string],
 * limits: {gpu: quantity}, items: [{id: int (required)}], env: {string: string},
 * tolerations: [Toleration], size: quantity (null = absent, syntax checked) */
function schema(c: Config): void {
  c.allowOnly(["count", "name", "enabled", "ratio", "tags", "limits", "items", "env", "tolerations", "size"]);
  c.getStringMap("env");
  c.getTolerations("tolerations");
  if (c.isSet("size") && !isQuantity(c.getQuantity("size"))) c.fail("size", "expected a quantity like 16Gi");
  c.getInt("count", 1);
  c.getString("name", "x");
  c.getBool("enabled", true);
  c.getFloat("ratio", 0.5);
  c.getStringArray("tags");
  const limits = c.getMap("limits");
  limits.allowOnly(["gpu"]);
  limits.getQuantity("gpu", "1");
  const items = c.getArray("items");
  for (let i = 0; i < items.length; i++) {
    if (items[i].expectMap()) items[i].requireInt("id");
  }
}

function surrogates(): Value {
  return Value.array([
    Value.str("a\uD800b"),         // lone lead
    Value.str("\uDC00"),           // lone trail
    Value.str("x\uD83D"),          // lead at the very end
    Value.str("\uD83D\uDE00"),     // a valid pair: U+1F600
    Value.str("\uDBFF\uDFFF"),     // U+10FFFF
  ]);
}

function builders(): Value {
  const m = new Mutations()
    .setEnv("A", "1")
    .setEnvIn("main", "B", "2")
    .setEnvFrom("POD_IP", fieldRef("status.podIP"))
    .setEnvFromIn("main", "MEM", resourceFieldRef("limits.memory", "main", "1Mi"))
    .setEnvFrom("CPU", resourceFieldRef("limits.cpu"))
    .setResourceLimit("nvidia.com/gpu", "1")
    .setResourceLimitIn("main", "cpu", "2")
    .setResourceRequest("memory", "1Gi")
    .setResourceRequestIn("main", "cpu", "500m")
    .removeResourceLimit("cpu")
    .removeResourceRequest("cpu")
    .addEmptyDir("shm", "Memory", "1Gi")
    .addEmptyDir("scratch")
    .addVolume(configMapVolume("cfg", "my-config"))
    .mountVolume("shm", "/dev/shm")
    .mountVolumeIn("main", "cfg", "/etc/cfg", true)
    .addVolumeMount(volumeMount("scratch", "/scratch"))
    .addToleration(toleration("nvidia.com/gpu", "Exists", "", "NoSchedule"))
    .addToleration(toleration("", "Exists"))
    .addNodeAffinityRequirement(requirement("gpu", "In", ["a100", "h100"]))
    .addNodeAffinityRequirement(requirement("rdma", "Exists"))
    .addPreferredNodeAffinity(50, nodeSelectorTerm([requirement("zone", "In", ["z1"])]))
    .setArgs(["--x"])
    .addCapabilities(["IPC_LOCK"])
    .addCapabilitiesIn("main", ["SYS_RESOURCE"]);
  return Value.array(m.ops);
}

function values(): Value {
  const m = Value.map().setString("b", "1").setString("a", "2").setInt("c", 3);
  m.setString("b", "replaced");      // keeps its position
  m.remove("a");
  m.set("d", Value.array().push(Value.nil()).push(Value.bool(true)).push(Value.float(1.5)));
  // Round trip through the decoder keeps order and kinds.
  const again = decode(m.encode())!;
  const bytes = new Uint8Array(3);
  bytes[0] = 0; bytes[1] = 0xff; bytes[2] = 7;
  return Value.array([
    again,
    Value.bool(again.equals(m)),
    Value.uint(<u64>0xffffffffffffffff),
    Value.int(i64.MIN_VALUE),
    Value.int(-33),
    Value.bin(bytes),
    Value.str(Value.int(-5).toText() + "|" + Value.uint(18446744073709551615).toText() + "|" + Value.float(2.5).toText()),
    Value.bool(Value.uint(18446744073709551615).kind == Kind.Uint),
    Value.int(again.getArray("d").length),
  ]);
}

function decodeError(bytes: u8[]): Value {
  const buf = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) buf[i] = bytes[i];
  const d = new Decoder(buf.dataStart, <usize>buf.length);
  d.decodeAll();
  const e = d.error;
  return Value.str(e !== null ? e : "no error");
}

function decodeErrors(): Value {
  const deep = new Array<u8>(300);
  for (let i = 0; i < deep.length; i++) deep[i] = 0x91; // [[[[...
  return Value.array([
    decodeError([0xa5, 0x61]),                 // str of 5 with 1 byte
    decodeError([0xdc, 0xff, 0xff]),           // array of 65535 with no items
    decodeError([0xdf, 0x80, 0, 0, 0]),        // map of 2^31 entries
    decodeError([0xdd, 0xff, 0xff, 0xff, 0xff]), // array of 2^32-1 items
    decodeError([0xdb, 0xff, 0xff, 0xff, 0xff]), // str of 4 GiB
    decodeError([0x81, 0x01, 0x02]),           // integer map key
    decodeError([0xd4, 0x01, 0x02]),           // fixext 1
    decodeError([0xc1]),                       // never used
    decodeError([0x01, 0x02]),                 // trailing bytes
    decodeError(deep),                         // too deep
    decodeError([]),                           // empty input
  ]);
}

function text(s: string | null): string { return s === null ? "<null>" : s; }

/** Every request accessor, as setAnnotation ops `accessor -> text`. */
function accessors(req: HookRequest): Mutations {
  const m = new Mutations();
  const pod = req.pod;
  const ms = req.modelServing;
  m.setAnnotation("abi", req.abi.toString());
  m.setAnnotation("hook", req.hook + "|" + (req.isCreate ? "create" : "") + "|" + (req.isReady ? "ready" : ""));
  m.setAnnotation("pluginName", req.pluginName);
  m.setAnnotation("config", req.config.getString("mode", "default"));
  m.setAnnotation("ms", ms.name + "|" + ms.namespace + "|" + ms.uid + "|" + ms.generation.toString()
    + "|" + ms.replicas.toString() + "|" + ms.roles().length.toString()
    + "|" + text(ms.labels.get("team")) + "|" + text(ms.annotations.get("note")));
  const specAt = ms.specAt("template/roles/1/replicas");
  m.setAnnotation("specAt", specAt ? specAt.toText() : "<null>");
  const role = req.role();
  m.setAnnotation("role", role ? role.getString("name") + ":" + role.getMap("entryTemplate").getString("x") : "<null>");
  m.setAnnotation("context", req.servingGroup + "|" + req.roleName + "|" + req.roleID + "|" + (req.isEntry ? "entry" : "worker"));
  m.setAnnotation("pod", pod.name + "|" + pod.namespace + "|" + text(pod.label("a")) + "|" + text(pod.annotation("n"))
    + "|" + pod.labels.keys().join(",") + "|" + pod.annotations.size.toString());
  m.setAnnotation("containers", pod.containerNames().join(","));
  const main = pod.mainContainer();
  m.setAnnotation("main", main ? main.name + "|" + main.image : "<null>");
  const side = pod.container("side");
  m.setAnnotation("side", side ? side.name : "<null>");
  m.setAnnotation("missing", pod.container("nope") === null ? "null" : "found");
  if (main) {
    const env = main.env();
    const parts = new Array<string>();
    for (let i = 0; i < env.length; i++) {
      const from = env[i].valueFrom;
      parts.push(env[i].name + "=" + text(env[i].value) + (from ? "(from " + from.keys().join(",") + ")" : ""));
    }
    m.setAnnotation("env", parts.join(","));
    m.setAnnotation("envValue", text(main.envValue("A")) + "|" + text(main.envValue("B")) + "|" + (main.hasEnv("B") ? "hasB" : "noB"));
    m.setAnnotation("resources", text(main.limit("nvidia.com/gpu")) + "|" + text(main.limit("cpu")) + "|"
      + text(main.request("memory")) + "|" + main.limits.keys().join(",") + "|" + main.requests.getOr("x", "dflt"));
    m.setAnnotation("args", main.args().join(" ") + "|" + main.command().join(" ") + "|" + main.volumeMounts().length.toString());
  }
  m.setAnnotation("init", pod.initContainers().length.toString() + "|" + (pod.initContainer("init") ? "init" : "<null>"));
  const vol = pod.volume("shm");
  m.setAnnotation("volumes", pod.volumes().length.toString() + "|" + (vol ? vol.getMap("emptyDir").getString("medium") : "<null>")
    + "|" + (pod.hasVolume("nope") ? "yes" : "no"));
  m.setAnnotation("scheduling", text(pod.nodeSelector.get("zone")) + "|" + pod.tolerations().length.toString() + "|"
    + pod.runtimeClassName + "|" + pod.schedulerName + "|" + pod.priorityClassName);
  m.setAnnotation("ready", pod.isReady ? "ready" : "not-ready");
  m.addMemoryEmptyDir("shm", "2Gi").addConfigMapVolume("c", "cm").setEnvFromField("IP", "status.podIP");
  return m;
}

/** Lookups and changes on a decoded map, whose keys are still UTF-8 slices. */
function rawMaps(): Value {
  const src = Value.map().setString("ab", "1").setString("é", "2").setString("ée", "3")
    .setString("a", "4").setString("\uD83D\uDE00", "5");
  const m = decode(src.encode())!;
  const found = new Array<string>();
  const probes = ["ab", "a", "abc", "é", "ée", "ee", "\uD83D\uDE00", "", "b"];
  for (let i = 0; i < probes.length; i++) {
    const v = m.get(probes[i]);
    found.push(v ? v.asString() : "-");
  }
  const lookups = Value.str(found.join(","));
  m.set("a", Value.str("4b"));       // replace in place: keys stay slices
  const replaced = m.encode();
  m.set("new", Value.int(6));        // a new key: keys become strings
  m.remove("é");
  return Value.array([lookups, decode(replaced)!, m, Value.str(m.keys().join(","))]);
}

/** The Pod and Mutations helpers, on the request's Pod; config: containers,
 * overwrite, quantities (strings to check), env ({string: string}),
 * tolerations. Results are annotations, then the helpers' ops. */
function helpers(req: HookRequest): Mutations {
  const pod = req.pod;
  const overwrite = req.config.getBool("overwrite");
  const sel = pod.selectContainers(req.config.getStringArray("containers"));
  const m = new Mutations();
  m.setAnnotation("selected", names(sel.list) + "|" + sel.error);
  const all = pod.containers();
  const mounts = new Array<string>();
  for (let i = 0; i < all.length; i++) mounts.push(all[i].mountsAt("/dev/shm") ? "y" : "n");
  m.setAnnotation("mountsAt", mounts.join(","));
  const keys = ["a", "b", "x.com/dev"];
  const tolerated = new Array<string>();
  for (let i = 0; i < keys.length; i++) {
    tolerated.push((pod.tolerates(keys[i]) ? "y" : "n") + (pod.tolerates(keys[i], "NoExecute") ? "y" : "n"));
  }
  m.setAnnotation("tolerates", tolerated.join(","));
  const quantities = req.config.getStringArray("quantities");
  const ok = new Array<string>();
  for (let i = 0; i < quantities.length; i++) ok.push(isQuantity(quantities[i]) ? "y" : "n");
  m.setAnnotation("isQuantity", ok.join(","));
  m.setAnnotation("env", req.config.getStringMap("env").flatten().join(","));
  m.setAnnotation("isSet", (req.config.isSet("env") ? "y" : "n") + (req.config.isSet("nil") ? "y" : "n")
    + (req.config.isSet("nope") ? "y" : "n"));
  for (let i = 0; i < sel.list.length; i++) {
    m.setExtendedResourceIn(sel.list[i], "x.com/dev", "2", overwrite);
    m.setEnvDefaultIn(sel.list[i], "A", "1", overwrite);
  }
  m.addSharedMemory(pod, sel.list, "1Gi", overwrite);
  m.tolerate(pod, "x.com/dev");
  const tolerations = req.config.getTolerations("tolerations");
  for (let i = 0; i < tolerations.length; i++) m.addToleration(tolerations[i]);
  m.addToleration(toleration("k", "Equal", "v", "NoExecute", 30));
  m.addToleration(toleration("k", "Exists", "", "NoExecute", 0));
  m.addVolume(downwardAPIVolume("podinfo", [downwardAPIFile("labels", "metadata.labels")]));
  return m;
}

function names(list: Container[]): string {
  const out = new Array<string>();
  for (let i = 0; i < list.length; i++) out.push(list[i].name);
  return out.join(",");
}
