"""Generate deploy/crd/modelservings.workload.serving.volcano.sh.yaml.

The CRD is podplug's hand-written schema (hack/crd/modelservings.base.yaml:
the ModelServing's own fields, defaults and CEL rules) with a structural
PodSpec schema put in for every Pod template. The PodSpec comes from
Kubernetes' own OpenAPI document (``/openapi/v3/api/v1`` of a real
kube-apiserver of the project's version), turned into what controller-gen
makes of the same Go types, because that is what Kthena's CRD holds and
ModelServings must be admitted, defaulted and pruned alike:

- ``$ref``/``allOf`` inlined; descriptions dropped (the CRD stays well under
  the 256 KiB a client-side ``kubectl apply`` can carry);
- ``resource.Quantity``: an int-or-string with Kubernetes' quantity pattern;
  ``intstr.IntOrString``: an int-or-string; ``metav1.Time``: a date-time
  string; an ``ObjectMeta`` below the template: a plain object;
- ``default`` kept only where the Go field has a ``+default`` marker: the
  OpenAPI document also carries zero values for required fields, array items
  and nested objects (dropped here), and controller-gen does not evaluate
  ``+default=ref(...)`` markers (dropped, see ``_NO_DEFAULT``);
- ``enum`` dropped (controller-gen reads no ``+enum`` markers): a wrong value is
  refused when the Pod is created, as with Kthena;
- list types, map keys and map types kept; patch strategies dropped.

No CEL rule reaches into the PodSpec: without Kubernetes' (absent) bounds on
its lists and strings, the API server refuses any as too costly. Kthena's
webhook rule on container images (no spaces) is therefore podplug's admission
webhook's and the operator's (operator/validation.py), not the CRD's.

Run it (a control plane is started if none is given):

    python hack/crd/generate.py                 # rewrite the CRD
    python hack/crd/generate.py --check         # exit 1 if the committed CRD is stale
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = Path(__file__).with_name("modelservings.base.yaml")
OUT = ROOT / "deploy" / "crd" / "modelservings.workload.serving.volcano.sh.yaml"
PLACEHOLDER = "podplug:PodSpec"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIMES = {"io.k8s.apimachinery.pkg.apis.meta.v1.Time",
         "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
                    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
#: defaults written as +default=ref(...) in k8s.io/api: controller-gen leaves them out
_NO_DEFAULT = {("io.k8s.api.core.v1.AzureDiskVolumeSource", "cachingMode"),
               ("io.k8s.api.core.v1.AzureDiskVolumeSource", "kind")}
_KEEP = ("type", "format", "required", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
         "x-kubernetes-map-type", "maxItems", "minItems", "maxLength", "minLength", "pattern",
         "minimum", "maximum", "nullable")


class _Converter:
    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas

    def named(self, name: str) -> dict[str, Any]:
        if name == QUANTITY:
            return {"anyOf": [{"type": "integer"}, {"type": "string"}],
                    "pattern": QUANTITY_PATTERN, "x-kubernetes-int-or-string": True}
        if name == INT_OR_STRING:
            return {"anyOf": [{"type": "integer"}, {"type": "string"}],
                    "x-kubernetes-int-or-string": True}
        if name in TIMES:
            return {"type": "string", "format": "date-time"}
        if name == OBJECT_META:
            return {"type": "object"}
        out = self.node(self.schemas[name], owner=name)
        if name in _ATOMIC:
            out["x-kubernetes-map-type"] = "atomic"
        return out

    def node(self, node: dict[str, Any], *, owner: str = "", field: str = "",
             zero_default: bool = False) -> dict[str, Any]:
        ref = node.get("$ref")
        all_of = node.get("allOf") or ()
        if ref is None and len(all_of) == 1 and "$ref" in all_of[0]:
            ref = all_of[0]["$ref"]
        out: dict[str, Any] = copy.deepcopy(self.named(ref.rsplit("/", 1)[1])) if ref else {}
        required = set(node.get("required") or ())
        for key, value in node.items():
            if key == "properties":
                out["properties"] = {
                    name: self.node(sub, owner=owner, field=name,
                                    zero_default=name in required)
                    for name, sub in value.items()}
            elif key == "items":
                out["items"] = self.node(value, owner=owner, zero_default=True)
            elif key == "additionalProperties" and isinstance(value, dict):
                out["additionalProperties"] = self.node(value, owner=owner, zero_default=True)
            elif key == "default":
                if not (zero_default or value == {} or (owner, field) in _NO_DEFAULT):
                    out["default"] = value
            elif key in _KEEP:
                out[key] = value
        return out


#: structs that embed LocalObjectReference (+structType=atomic): controller-gen
#: carries the embedded type's map type over, the OpenAPI document does not
_ATOMIC = {"io.k8s.api.core.v1.ConfigMapEnvSource", "io.k8s.api.core.v1.SecretEnvSource",
           "io.k8s.api.core.v1.ConfigMapVolumeSource", "io.k8s.api.core.v1.ConfigMapProjection",
           "io.k8s.api.core.v1.SecretProjection"}


def pod_spec_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    """The structural schema of core/v1 PodSpec from Kubernetes' OpenAPI v3 document."""
    return _Converter(openapi["components"]["schemas"]).named("io.k8s.api.core.v1.PodSpec")


def render(openapi: dict[str, Any]) -> str:
    """The CRD file: the base with every placeholder replaced by the PodSpec schema."""
    base_text = BASE.read_text()
    header = "".join(line for line in base_text.splitlines(keepends=True)
                     if line.startswith("#"))
    crd = yaml.safe_load(base_text)
    spec = pod_spec_schema(openapi)

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("x-podplug-schema") == PLACEHOLDER:
                return copy.deepcopy(spec)
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    crd = fill(crd)
    body = yaml.safe_dump(crd, sort_keys=False, width=100)
    return (header.replace("# SOURCE", "# GENERATED by hack/crd/generate.py from "
                           "hack/crd/modelservings.base.yaml: edit those, not this file.\n#")
            + body)


def fetch_openapi(kubeconfig: str | None) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from podplug.operator.kube import Kube, load_api_client

    if kubeconfig:
        return Kube(load_api_client(kubeconfig)).request("GET", "/openapi/v3/api/v1")
    from podplug.devcluster.cluster import LocalCluster

    with LocalCluster() as cluster:
        return Kube(load_api_client(str(cluster.kubeconfig))).request(
            "GET", "/openapi/v3/api/v1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", help="a running API server (default: start a local one)")
    p.add_argument("--check", action="store_true",
                   help="compare with the committed CRD instead of writing it")
    args = p.parse_args(argv)
    text = render(fetch_openapi(args.kubeconfig))
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python hack/crd/generate.py",
                  file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(json.dumps(yaml.safe_load(text)))} bytes "
          "as JSON)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
