"""`make demo`: podplug end to end on a local control plane.

1. start a real kube-apiserver + etcd on loopback and install the CRD;
2. run `podplug operator` with the shipped plugins and a policy that lets the
   demo namespace bring its own module from a ConfigMap, pinned by sha256;
3. apply examples/demo.yaml: a vLLM-style ModelServing whose chain is the
   shipped nvidia-gpu-defaults, Kthena's built-in lws-standard-labels, and
   entry-address-file loaded from a ConfigMap in the namespace;
4. show the Pods, what the plugins did to them, the Services, Events and status;
   then play kubelet (mark the Pods Ready) and show the ModelServing Available.

There is no kubelet or scheduler: Pods stay Pending until the demo marks them
Ready. Set DEMO_KEEP=1 to leave the cluster and operator running afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from podplug.devcluster.cluster import LocalCluster, project_crds
from podplug.devcluster.pods import events_for, mark_ready

ROOT = Path(__file__).resolve().parent.parent
NS = "inference"
GROUP, VERSION, PLURAL = "workload.serving.volcano.sh", "v1alpha1", "modelservings"
CONFIGMAP_MODULE = ROOT / "plugins-wasm" / "entry-address-file" / "entry-address-file.wasm"


# Bold headings on a terminal only, and never under NO_COLOR (no-color.org).
BOLD, RESET = ("\033[1m", "\033[0m") if (
    sys.stdout.isatty() and not os.environ.get("NO_COLOR")) else ("", "")


def say(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def wait(check: Any, what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise SystemExit(f"demo: timed out waiting for {what}")


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main() -> int:
    say("starting a local control plane (kube-apiserver + etcd, built by `make controlplane`)")
    cluster = LocalCluster().start()
    operator: subprocess.Popen[bytes] | None = None
    try:
        print(f"  kube-apiserver {cluster.bins.k8s_version} ready in {cluster.start_seconds:.1f}s"
              f" at https://127.0.0.1:{cluster.apiserver_port}")
        print(f"  CRDs: {', '.join(cluster.install_crds(project_crds()))}")
        api = cluster.api_client()
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace({"metadata": {"name": NS}})
        # Admission checks that a Pod's runtimeClassName exists.
        client.NodeV1Api(api).create_runtime_class({
            "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": "nvidia"}, "handler": "nvidia"})

        module = CONFIGMAP_MODULE.read_bytes()
        digest = hashlib.sha256(module).hexdigest()
        policy = Path(cluster.dir) / "policy.yaml"
        policy.write_text(yaml.safe_dump({
            "limits": {"fuel": 50_000_000, "memory": "64Mi", "timeout": "1s"},
            "namespacePlugins": {"allowed": True, "requireSha256": True}}))
        say("starting `podplug operator` with the shipped plugins (plugins-wasm/)")
        log = Path(cluster.dir) / "operator.log"
        operator = subprocess.Popen(
            [sys.executable, "-m", "podplug.cli.main", "operator", "-n", NS,
             "--plugins-dir", str(ROOT / "plugins-wasm"), "--policy", str(policy),
             "--metrics-port", "0"],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        print(f"  operator log: {log}")

        say(f"a team's own plugin module in ConfigMap {NS}/entry-address-plugin, "
            f"pinned sha256:{digest[:16]}...")
        core.create_namespaced_config_map(NS, {
            "metadata": {"name": "entry-address-plugin"},
            "binaryData": {"plugin.wasm": base64.b64encode(module).decode()}})
        ms = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
        for p in ms["spec"]["plugins"]:
            if "configMapRef" in (p.get("module") or {}):
                p["module"]["sha256"] = digest
        say("applying examples/demo.yaml: " + ", ".join(
            f"{p['name']} ({p['type']})" for p in ms["spec"]["plugins"]))
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, ms)
        name = ms["metadata"]["name"]
        expected = sum(r["replicas"] * (1 + r.get("workerReplicas", 0))
                       for r in ms["spec"]["template"]["roles"]) * ms["spec"]["replicas"]

        def pods() -> list[dict[str, Any]]:
            data = json.loads(core.list_namespaced_pod(NS, _preload_content=False).data)
            return sorted(data["items"], key=lambda p: p["metadata"]["name"])

        got = wait(lambda: len(p := pods()) == expected and p, f"{expected} Pods")
        say(f"{len(got)} Pods, named and labelled as Kthena does, mutated by the plugin chain")
        rows = [["POD", "ROLE", "ENTRY", "RUNTIME", "GPU", "/dev/shm", "ENTRY_ADDRESS FILE",
                 "PLUGINS (ops)"]]
        for p in got:
            labels, spec = p["metadata"]["labels"], p["spec"]
            main = spec["containers"][0]
            mounts = {m["mountPath"] for m in main.get("volumeMounts") or []}
            audit = json.loads(p["metadata"]["annotations"].get("podplug.io/plugins", "[]"))
            rows.append([
                p["metadata"]["name"], labels.get("modelserving.volcano.sh/role", ""),
                labels.get("modelserving.volcano.sh/entry", "-"),
                spec.get("runtimeClassName", "-"),
                str((main.get("resources") or {}).get("limits", {}).get("nvidia.com/gpu", "-")),
                "yes" if "/dev/shm" in mounts else "no",
                next((m for m in mounts if "entry" in m), "-"),
                " ".join(f"{a['plugin']}({a['ops']})" for a in audit),
            ])
        table(rows)
        first = got[0]
        say(f"the plugin audit annotation on {first['metadata']['name']}")
        for a in json.loads(first["metadata"]["annotations"]["podplug.io/plugins"]):
            print(f"  {a['plugin']:<22} {a['digest'][:23]}...  {a['ops']} ops")
        say("headless Services (one per role replica with workers)")
        for s in core.list_namespaced_service(NS).items:
            sel = s.spec.selector or {}
            print(f"  {s.metadata.name:<26} clusterIP={s.spec.cluster_ip}  selects the entry Pod "
                  f"of {sel.get('modelserving.volcano.sh/role-id', '-')}")

        say("playing kubelet: marking every Pod Running and Ready")
        for p in got:
            mark_ready(core, NS, p["metadata"]["name"])

        def status() -> dict[str, Any]:
            return custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name).get(
                "status") or {}

        final = wait(lambda: (s := status()).get("availableReplicas") == ms["spec"]["replicas"]
                     and s, "the ModelServing to become Available")
        say(f"ModelServing {NS}/{name} status")
        for c in final.get("conditions") or []:
            print(f"  {c['type']:<15} {c['status']:<6} {c['reason']}: {c['message']}")
        print(f"  replicas={final['replicas']} available={final['availableReplicas']} "
              f"revision={final['updateRevision']}")
        say("Events")
        for e in events_for(core, NS, name):
            print(f"  {e['type']:<8} {e['reason']:<14} {e['message']}")

        if os.environ.get("DEMO_KEEP") == "1":
            say(f"DEMO_KEEP=1: the cluster stays up; export KUBECONFIG={cluster.kubeconfig}; "
                "Ctrl-C to stop")
            signal.pause()
        say("done: stopping the operator and the control plane")
        return 0
    finally:
        if operator is not None and operator.poll() is None:
            os.killpg(operator.pid, signal.SIGTERM)
            try:
                operator.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(operator.pid, signal.SIGKILL)
        cluster.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
