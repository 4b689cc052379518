// Runs the built plugin in Node with the SDK's test harness: no cluster needed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadPlugin, pod, request } from "@podplug/sdk/testing";

const plugin = await loadPlugin(new URL("../build/{{name}}.wasm", import.meta.url).pathname);

test("mounts a memory-backed /dev/shm in every container and labels the role", () => {
  const out = plugin.create(request({ roleName: "prefill", pod: pod({ containers: ["main", "side"] }) }));
  assert.deepEqual(out, {
    mutations: [
      { op: "addVolume", volume: { name: "dshm", emptyDir: { medium: "Memory", sizeLimit: "1Gi" } } },
      { op: "addVolumeMount", mount: { name: "dshm", mountPath: "/dev/shm" } },
      { op: "setLabel", key: "example.com/role", value: "prefill" },
    ],
  });
});

test("mounts only in the configured container, with the configured size", () => {
  const out = plugin.create(request({ config: { shmSize: "8Gi", container: "main" }, pod: pod() }));
  assert.deepEqual(out.mutations[0].volume.emptyDir.sizeLimit, "8Gi");
  assert.equal(out.mutations[1].container, "main");
});

test("refuses a container that is not in the Pod", () => {
  const out = plugin.create(request({ config: { container: "nope" }, pod: pod() }));
  assert.deepEqual(out, { error: 'no container named "nope" in the Pod' });
});

test("validate_config names the offending field", () => {
  assert.deepEqual(plugin.validateConfig({ shmSize: "2Gi" }), { valid: true });
  assert.deepEqual(plugin.validateConfig({ shmSize: true }),
    { valid: false, message: "field shmSize: expected a quantity" });
  assert.deepEqual(plugin.validateConfig({ size: "1Gi" }),
    { valid: false, message: 'unknown field "size"' });
});
