// entry-address-file: the entry address as a file, for engines that read
// their rendezvous address from a file rather than from env (Kthena issue 563).
//
// The controller gives every container of every entry and worker Pod the env
// var ENTRY_ADDRESS. The downward API cannot project env vars into files, but
// it can project annotations, so the plugin copies ENTRY_ADDRESS into a Pod
// annotation and mounts a downwardAPI volume with one file holding that
// annotation: <path>/<fileName>. No gated op, no image, no API write.
// README.md compares the alternatives.

import { Config, Container, HookRequest, Mutations, Value, onPodCreate, validateConfig } from "@podplug/sdk";
export { podplug_abi_version, podplug_alloc } from "@podplug/sdk";

export function podplug_on_pod_create(ptr: i32, len: i32): i64 {
  return onPodCreate(ptr, len, create);
}

export function podplug_validate_config(ptr: i32, len: i32): i64 {
  return validateConfig(ptr, len, (config: Config): void => { settings(config); });
}

const ENTRY_ADDRESS = "ENTRY_ADDRESS";

class Settings {
  annotation: string = "modelserving.podplug.dev/entry-address";
  path: string = "/etc/podplug/entry-address";
  fileName: string = "address";
  volumeName: string = "entry-address";
  containers: string[] = [];
  overwrite: bool = false;
}

const FIELDS = ["annotation", "path", "fileName", "volumeName", "containers", "overwrite"];

/** Reads and checks the config; the first problem is recorded on `config`
 * and becomes the hook's error (or validate_config's message). */
function settings(config: Config): Settings {
  const s = new Settings();
  config.allowOnly(FIELDS);
  s.annotation = config.getString("annotation", s.annotation);
  const bad = annotationKeyProblem(s.annotation);
  if (bad.length) config.fail("annotation", bad);
  s.path = config.getString("path", s.path);
  if (!s.path.startsWith("/") || s.path == "/" || hasSegment(s.path, "..")) {
    config.fail("path", "expected an absolute directory path without ..");
  }
  s.fileName = config.getString("fileName", s.fileName);
  if (!s.fileName.length || s.fileName.includes("/") || s.fileName.startsWith("..")) {
    config.fail("fileName", "expected a file name without / that does not start with ..");
  }
  s.volumeName = config.getString("volumeName", s.volumeName);
  if (!isDnsLabel(s.volumeName)) config.fail("volumeName", "expected a DNS label (a-z, 0-9, -)");
  s.containers = config.getStringArray("containers");
  s.overwrite = config.getBool("overwrite");
  return s;
}

function create(req: HookRequest): Mutations {
  const s = settings(req.config);
  if (!req.config.ok) return new Mutations(); // the SDK answers with the config error
  const targets = new Array<Container>();
  if (!s.containers.length) {
    // Like the accelerator plugins: the first container, Kthena's serving container.
    const main = req.pod.mainContainer();
    if (main === null) return Mutations.error("the Pod has no container");
    targets.push(main);
  } else {
    // Names not in this Pod are skipped, so one list can name the entry
    // template's container and the worker template's.
    for (let i = 0; i < s.containers.length; i++) {
      const c = req.pod.container(s.containers[i]);
      if (c !== null) targets.push(c);
    }
    if (!targets.length) {
      return Mutations.error("none of the containers [" + s.containers.join(", ") + "] is in the Pod (config field containers)");
    }
  }
  const address = entryAddress(targets, req.pod.containers());
  if (address === null) {
    return Mutations.error("no container sets ENTRY_ADDRESS: the Pod was not made by a ModelServing controller");
  }
  if (!s.overwrite && req.pod.hasVolume(s.volumeName)) {
    // Someone else's volume: replacing it would break their mounts.
    return Mutations.error("the Pod already has a volume named \"" + s.volumeName + "\" (config field volumeName)");
  }

  const m = new Mutations();
  // An annotation the template sets is the user's explicit value: keep it.
  if (s.overwrite || req.pod.annotation(s.annotation) === null) m.setAnnotation(s.annotation, address);
  // A container that already mounts something at `path` keeps it.
  const mount = new Array<string>();
  for (let i = 0; i < targets.length; i++) {
    if (s.overwrite || !mountsAt(targets[i], s.path)) mount.push(targets[i].name);
  }
  if (!mount.length) return m;
  const item = Value.map().setString("path", s.fileName).set("fieldRef",
    Value.map().setString("fieldPath", "metadata.annotations['" + s.annotation + "']"));
  m.addVolume(Value.map().setString("name", s.volumeName)
    .set("downwardAPI", Value.map().set("items", Value.array([item]))));
  for (let i = 0; i < mount.length; i++) m.mountVolumeIn(mount[i], s.volumeName, s.path, true);
  return m;
}

/** ENTRY_ADDRESS as the controller set it: from the selected containers
 * first, else from any container (all of them get the same value). */
function entryAddress(targets: Container[], all: Container[]): string | null {
  for (let i = 0; i < targets.length; i++) {
    const v = targets[i].envValue(ENTRY_ADDRESS);
    if (v !== null && v.length) return v;
  }
  for (let i = 0; i < all.length; i++) {
    const v = all[i].envValue(ENTRY_ADDRESS);
    if (v !== null && v.length) return v;
  }
  return null;
}

function mountsAt(c: Container, path: string): bool {
  const mounts = c.volumeMounts();
  for (let i = 0; i < mounts.length; i++) if (mounts[i].getString("mountPath") == path) return true;
  return false;
}

function hasSegment(path: string, segment: string): bool {
  const parts = path.split("/");
  for (let i = 0; i < parts.length; i++) if (parts[i] == segment) return true;
  return false;
}

function isAlnum(c: i32): bool {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

/** A DNS-1123 label: lower-case alphanumerics and -, at most 63, alphanumeric ends. */
function isDnsLabel(s: string): bool {
  if (!s.length || s.length > 63) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 48 && c <= 57) || (c >= 97 && c <= 122) || (c == 45 && i > 0 && i < s.length - 1);
    if (!ok) return false;
  }
  return true;
}

/** Why `key` is not a usable annotation key, or "" (Kubernetes qualified name:
 * an optional DNS-subdomain prefix and a name of at most 63 characters). */
function annotationKeyProblem(key: string): string {
  const slash = key.indexOf("/");
  const name = slash < 0 ? key : key.substring(slash + 1);
  const prefix = slash < 0 ? "" : key.substring(0, slash);
  if (prefix == "podplug.io") return "annotations under podplug.io/ belong to the podplug host";
  if (slash >= 0) {
    const labels = prefix.split(".");
    let ok = prefix.length > 0 && prefix.length <= 253;
    for (let i = 0; ok && i < labels.length; i++) ok = isDnsLabel(labels[i]);
    if (!ok) return "expected a DNS subdomain before the /";
  }
  let ok = name.length > 0 && name.length <= 63 && isAlnum(name.charCodeAt(0)) && isAlnum(name.charCodeAt(name.length - 1));
  for (let i = 0; ok && i < name.length; i++) {
    const c = name.charCodeAt(i);
    ok = isAlnum(c) || c == 45 || c == 95 || c == 46; // - _ .
  }
  return ok ? "" : "expected a qualified name like example.com/entry-address";
}
