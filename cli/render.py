"""``podplug render``: every Pod and Service the operator would create, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from podplug.operator import podgen
from podplug.operator.chains import Chains, ChainUnavailable
from podplug.operator.policy import Policy, PolicyError
from podplug.operator.revision import model_serving_revision, role_template_hashes
from podplug.operator.sources import PluginDirectory, default_plugin_dirs
from podplug.operator.spec import KIND, ModelServing
from podplug.runtime import ChainError, Engine, PodContext

from .main import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="print the Pods and Services a ModelServing becomes, plugins applied",
        description="Offline, no cluster: print every Service and Pod the operator would "
        "create for the ModelServing(s) in FILE, with the plugin chain applied.",
    )
    p.add_argument("file", metavar="MODELSERVING.yaml")
    p.add_argument("--plugins-dir", action="append", metavar="DIR",
                   help="plugin directory (repeatable; default $PODPLUG_PLUGINS_DIR or "
                   "/etc/podplug/plugins, then the shipped plugins)")
    p.add_argument("--configmap", action="append", default=[], metavar="FILE",
                   help="ConfigMap manifest(s) standing in for the namespace's (repeatable); "
                   "Namespace manifests there give the labels grants select on")
    p.add_argument("--policy", metavar="FILE", help="operator policy (default: built-in)")
    p.add_argument("--namespace", "-n", default="default",
                   help="namespace of ModelServings that name none (default %(default)s)")
    p.set_defaults(func=render)


def _documents(path: str) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text() if path != "-" else sys.stdin.read()
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None


def render(args: argparse.Namespace) -> int:
    docs = _documents(args.file)
    configmaps = {}
    namespaces: dict[str, dict[str, str]] = {}
    # ConfigMaps and Namespaces may sit beside the ModelServing in one file.
    for d in [*(d for f in args.configmap for d in _documents(f)), *docs]:
        meta = d.get("metadata") or {}
        if d.get("kind") == "ConfigMap":
            configmaps[(meta.get("namespace", args.namespace), meta.get("name"))] = d
        elif d.get("kind") == "Namespace":
            name = str(meta.get("name"))  # the API server adds the name label itself
            namespaces[name] = {"kubernetes.io/metadata.name": name, **(meta.get("labels") or {})}
    try:
        policy = Policy.load(args.policy)
    except PolicyError as e:
        raise UsageError(str(e)) from None
    objs = [d for d in docs if d.get("kind") == KIND]
    if not objs:
        raise UsageError(f"{args.file} holds no {KIND}")
    dirs = args.plugins_dir or default_plugin_dirs()
    out: list[dict[str, Any]] = []
    with Engine() as engine:
        chains = Chains(engine, PluginDirectory(dirs), policy,
                        lambda ns, name: configmaps.get((ns, name)),
                        lambda ns: namespaces.get(ns, {"kubernetes.io/metadata.name": ns}))
        for obj in objs:
            obj.setdefault("metadata", {}).setdefault("namespace", args.namespace)
            out.extend(_render_one(obj, chains))
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False, allow_unicode=True))
    return 0


def _render_one(obj: dict[str, Any], chains: Chains) -> list[dict[str, Any]]:
    try:
        ms = ModelServing.parse(obj)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise UsageError(f"invalid {KIND}: {where}: {first['msg']}") from None
    try:
        resolved = chains.resolve(ms, obj)
    except ChainUnavailable as e:
        raise UsageError(str(e)) from None
    revision = model_serving_revision(ms.spec, resolved.digests)
    hashes = role_template_hashes(ms.spec, resolved.digests)
    out: list[dict[str, Any]] = []
    for i in range(ms.spec.replicas):
        out.extend(podgen.serving_group_services(ms, i))
    for plan in podgen.all_pods(ms, revision, hashes):
        ctx = PodContext(plan.serving_group, plan.role_name, plan.role_id, plan.is_entry)
        try:
            out.append(resolved.chain.run_create(ctx, plan.pod).pod)
        except ChainError as e:
            raise e.cause from None
    return out
