"""``podplug render``: every object the operator would create, offline.

It predicts the operator by being it: the ModelServing is checked as the
operator checks it (the CRD's schema and defaults, then the rules of
:mod:`podplug.operator.validation`), planned by the operator's own planner as
if nothing existed yet, and each Pod goes through the plugin chain. A spec the
operator would refuse is refused here with the same message.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from podplug.operator import podgen, podgroups
from podplug.operator.chains import Chains
from podplug.operator.crd import SchemaError, admit
from podplug.operator.observe import Observed
from podplug.operator.plan import Revisions, plan
from podplug.operator.policy import Policy
from podplug.operator.revision import spec_template
from podplug.operator.sources import PluginDirectory, default_plugin_dirs
from podplug.operator.spec import KIND, ModelServing
from podplug.operator.validation import validate
from podplug.runtime import ChainError, Engine, PluginError

from ._common import load_policy, yaml_documents
from .main import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="print the Pods and Services a ModelServing becomes, plugins applied",
        description="Offline, no cluster: print every Service and Pod the operator would "
        "create for the ModelServing(s) in FILE, with the plugin chain applied. The spec is "
        "checked as the operator checks it; what it would refuse is refused here.",
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
    p.add_argument("--volcano", action="store_true",
                   help="as with Volcano's PodGroup CRD installed: PodGroups too, and the "
                   "Pods' PodGroup annotations (for schedulerName volcano)")
    v = p.add_argument_group("checking against a cluster")
    v.add_argument("--validate", action="store_true",
                   help="send every object to the API server as a dry run (dryRun=All) and "
                   "print each refusal; nothing is created")
    v.add_argument("--kubeconfig", metavar="FILE",
                   help="kubeconfig for --validate (default $KUBECONFIG, ~/.kube/config, "
                   "else a running `podplug dev-cluster`)")
    v.add_argument("--context", help="kubeconfig context for --validate (default: its "
                   "current-context)")
    p.set_defaults(func=render)


def render(args: argparse.Namespace) -> int:
    docs = yaml_documents(args.file)
    configmaps = {}
    namespaces: dict[str, dict[str, str]] = {}
    # ConfigMaps and Namespaces may sit beside the ModelServing in one file.
    for d in [*(d for f in args.configmap for d in yaml_documents(f)), *docs]:
        meta = d.get("metadata") or {}
        if d.get("kind") == "ConfigMap":
            configmaps[(meta.get("namespace", args.namespace), meta.get("name"))] = d
        elif d.get("kind") == "Namespace":
            name = str(meta.get("name"))  # the API server adds the name label itself
            namespaces[name] = {"kubernetes.io/metadata.name": name, **(meta.get("labels") or {})}
    policy = load_policy(args.policy)
    objs = [d for d in docs if d.get("kind") == KIND]
    if not objs:
        raise UsageError(f"{args.file} holds no {KIND}")
    dirs = args.plugins_dir or default_plugin_dirs()
    if (args.kubeconfig or args.context) and not args.validate:
        raise UsageError("--kubeconfig and --context are for --validate")
    rendered: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    with Engine() as engine:
        chains = Chains(engine, PluginDirectory(dirs), policy,
                        lambda ns, name: configmaps.get((ns, name)),
                        lambda ns: namespaces.get(ns, {"kubernetes.io/metadata.name": ns}))
        for obj in objs:
            obj.setdefault("metadata", {}).setdefault("namespace", args.namespace)
            as_written = copy.deepcopy(obj)
            rendered.append((as_written, render_one(obj, chains, policy, volcano=args.volcano)))
    out = [o for _, objects in rendered for o in objects]
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False, allow_unicode=True))
    return validate_on_cluster(args, rendered) if args.validate else 0


def validate_on_cluster(args: argparse.Namespace,
                        rendered: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> int:
    """``--validate``: each object as a dry-run create; 1 if the server refuses any."""
    from . import dryrun  # the Kubernetes client: only when asked for

    api = dryrun.api_client(args.kubeconfig, args.context)
    refused = checked = 0
    try:
        for model_serving, objects in rendered:
            refusals, notes = dryrun.validate(api, model_serving, objects)
            for note in notes:
                print(f"podplug render: note: {note}", file=sys.stderr)
            for r in refusals:
                print(f"podplug render: {r}", file=sys.stderr)
            refused += len(refusals)
            checked += len(objects) + 1
    finally:
        api.close()
    host = api.configuration.host
    print(f"podplug render: {checked - refused} of {checked} objects accepted by {host} "
          f"(dry run)", file=sys.stderr)
    return 1 if refused else 0


def render_one(obj: dict[str, Any], chains: Chains, policy: Policy, *,
               volcano: bool = False) -> list[dict[str, Any]]:
    """What the operator creates for a new ``obj``: PodGroups (``volcano``),
    then per role replica its Pods and headless Service, in the operator's order.
    Raises UsageError with the operator's own message when it would refuse it."""
    name = (obj.get("metadata") or {}).get("name", "?")
    try:
        obj = admit(obj)
    except SchemaError as e:
        raise UsageError(f"{KIND} {name}: {e}") from None
    try:
        ms = ModelServing.parse(obj)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise UsageError(f"{KIND} {name}: {where}: {first['msg']}") from None
    problems = validate(ms, max_pods=policy.max_pods_per_model_serving)
    if problems:
        raise UsageError(f"{KIND} {name}: {'; '.join(problems)}")
    try:
        resolved = chains.resolve(ms, obj)
    except PluginError as e:
        raise UsageError(str(e)) from None
    update = spec_template(ms.spec, resolved.digests)
    p = plan(ms, Observed([], set(), []), Revisions(update))
    use_podgroups = podgen.uses_podgroups(ms, volcano)
    out: list[dict[str, Any]] = []
    requests: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    pods: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for unit in p.creates:
        for pp in podgen.role_pods(ms, unit.role, unit.group_index, unit.replica,
                                   unit.revision, unit.role_hash, podgroups=use_podgroups,
                                   only=unit.pods):
            try:
                pod = resolved.chain.run_create(pp.context, pp.pod).pod
            except ChainError as e:
                raise UsageError(str(e.cause)) from None
            requests.setdefault((unit.role.name, pp.context.is_entry), [
                (c.get("resources") or {}).get("requests") or {}
                for c in pod["spec"].get("containers") or ()])
            pods.append(pod)
        if podgen.needs_service(unit.role):
            services.append(podgen.headless_service(ms, unit.group, unit.role.name,
                                                    unit.replica))
    if use_podgroups:
        groups = sorted({(u.group_index, u.group) for u in p.creates})
        out += [podgroups.desired(ms, g, podgen.owner_reference(ms), requests, True)
                for _, g in groups]
    return out + services + pods


__all__ = ["Path", "render", "render_one"]
