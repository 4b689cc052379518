"""Validate a plugin's mutation list against the allow-list and apply it.

All-or-nothing: :func:`merge` checks each op against the Pod as the earlier ops
of the same list left it, then applies it, on a copy-on-write view: a denied op
discards the view, and the caller's Pod is never mutated. :class:`PodEditor`
copies a nested dict or list the first time an op writes under it, so a change
costs what it touches, not a deep copy of the Pod.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import mutations as m
from .errors import MutationDenied

# Reserved for the controller and the host, whatever the policy says.
RESERVED_LABEL_PREFIX = "modelserving.volcano.sh/"
RESERVED_ANNOTATION_PREFIX = "podplug.io/"
RESERVED_ENV = frozenset({"ENTRY_ADDRESS", "WORKER_INDEX", "GROUP_SIZE"})

ALLOWED_VOLUME_SOURCES = frozenset(
    {"emptyDir", "configMap", "secret", "downwardAPI", "projected",
     "persistentVolumeClaim", "ephemeral", "csi"}
)
GATED_VOLUME_SOURCES = {"hostPath": "hostPath"}

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(rf"^{_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_NAME})?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$")
_CAPABILITY = re.compile(r"^[A-Z_]+$")


class Denied(Exception):
    """One op broke a rule; :func:`merge` turns it into :class:`MutationDenied`."""


def _check_qualified(key: str, what: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise Denied(f"{what} key prefix {prefix!r} is not a DNS subdomain")
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        raise Denied(f"{what} key {key!r} is not a valid qualified name")


def _check_dns(value: str, what: str, pattern: re.Pattern[str] = _DNS_SUBDOMAIN) -> None:
    if not value or len(value) > 253 or not pattern.match(value):
        raise Denied(f"{what} {value!r} is not a valid DNS name")


@dataclass
class _State:
    """The names ops refer to, kept up to date as ops add and remove them."""

    template_containers: frozenset[str]
    containers: set[str]
    init_containers: set[str]
    volumes: set[str]

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> _State:
        spec = pod.get("spec") or {}
        names = [c.get("name", "") for c in spec.get("containers") or ()]
        return cls(
            template_containers=frozenset(names),
            containers=set(names),
            init_containers={c.get("name", "") for c in spec.get("initContainers") or ()},
            volumes={v.get("name", "") for v in spec.get("volumes") or ()},
        )


# --- per-op checks: (op, state) -> None, raising Denied; they may update state


def _ck_container(op: m._ContainerOp, st: _State) -> None:
    if op.container is not None and op.container not in st.containers:
        raise Denied(f"no container named {op.container!r}")


def _ck_label(op: m.SetLabel | m.RemoveLabel, st: _State) -> None:
    if op.key.startswith(RESERVED_LABEL_PREFIX):
        raise Denied("label is owned by the controller")
    _check_qualified(op.key, "label")
    if isinstance(op, m.SetLabel) and (len(op.value) > 63 or not _LABEL_VALUE.match(op.value)):
        raise Denied(f"label value {op.value!r} is not valid "
                     "(at most 63 characters: alphanumerics and -_.)")


def _ck_annotation(op: m.SetAnnotation | m.RemoveAnnotation, st: _State) -> None:
    if op.key.startswith(RESERVED_ANNOTATION_PREFIX):
        raise Denied("annotation is owned by podplug")
    _check_qualified(op.key, "annotation")


def _ck_env(op: m.SetEnv | m.RemoveEnv, st: _State) -> None:
    _ck_container(op, st)
    if op.name in RESERVED_ENV:
        raise Denied("env var is owned by the controller")
    if not _ENV_NAME.match(op.name):
        raise Denied(f"env name {op.name!r} is not valid")
    if isinstance(op, m.SetEnv):
        if (op.value is None) == (op.valueFrom is None):
            raise Denied("exactly one of value and valueFrom is required")
        if op.valueFrom is not None and (op.valueFrom.fieldRef is None) == (
            op.valueFrom.resourceFieldRef is None
        ):
            raise Denied("valueFrom needs exactly one of fieldRef and resourceFieldRef")


def _ck_resource(op: m.SetResource | m.RemoveResource, st: _State) -> None:
    _ck_container(op, st)
    _check_qualified(op.name, "resource")
    if isinstance(op, m.SetResource) and not _QUANTITY.match(op.quantity):
        raise Denied(f"quantity {op.quantity!r} is not a Kubernetes quantity")


def _ck_add_volume(op: m.AddVolume, st: _State, grants: frozenset[str]) -> None:
    name = op.volume.get("name")
    if not isinstance(name, str):
        raise Denied("volume needs a name")
    _check_dns(name, "volume name", _DNS_LABEL)
    sources = [k for k in op.volume if k != "name"]
    if len(sources) != 1:
        raise Denied(f"volume needs exactly one source, got {sources or 'none'}")
    source = sources[0]
    gate = GATED_VOLUME_SOURCES.get(source)
    if gate is not None:
        if gate not in grants:
            raise Denied(f"{source} volumes need the {gate!r} grant in the operator policy")
    elif source not in ALLOWED_VOLUME_SOURCES:
        raise Denied(f"volume source {source!r} is not allowed")
    if not isinstance(op.volume[source], dict):
        raise Denied(f"volume source {source} must be an object")
    st.volumes.add(name)


def _ck_remove_volume(op: m.RemoveVolume, st: _State) -> None:
    st.volumes.discard(op.name)


def _ck_mount(op: m.AddVolumeMount, st: _State) -> None:
    _ck_container(op, st)
    name, path = op.mount.get("name"), op.mount.get("mountPath")
    if not isinstance(name, str) or not isinstance(path, str):
        raise Denied("mount needs a name and a mountPath")
    if not path.startswith("/"):
        raise Denied(f"mountPath {path!r} is not absolute")
    if name not in st.volumes:
        raise Denied(f"no volume named {name!r}")
    extra = set(op.mount) - {"name", "mountPath", "readOnly", "subPath", "subPathExpr",
                             "mountPropagation", "recursiveReadOnly"}
    if extra:
        raise Denied(f"unknown mount fields {sorted(extra)}")
    if op.mount.get("mountPropagation") == "Bidirectional":
        raise Denied("Bidirectional mount propagation needs a privileged container")


def _ck_node_selector(op: m.SetNodeSelector | m.RemoveNodeSelector, st: _State) -> None:
    _check_qualified(op.key, "node selector")


def _ck_dns_value(op: m.SetRuntimeClassName | m.SetSchedulerName | m.SetPriorityClassName,
                  st: _State) -> None:
    _check_dns(op.value, op.op.removeprefix("set"))


def _ck_add_container(op: m.AddContainer | m.AddInitContainer, st: _State) -> None:
    name, image = op.container.get("name"), op.container.get("image")
    if not isinstance(name, str) or not isinstance(image, str) or not image:
        raise Denied("container needs a name and an image")
    _check_dns(name, "container name", _DNS_LABEL)
    if name in st.template_containers or (
        isinstance(op, m.AddInitContainer) and name in st.containers
    ):
        raise Denied(f"container {name!r} comes from the template and cannot be replaced")
    (st.init_containers if isinstance(op, m.AddInitContainer) else st.containers).add(name)


def _ck_caps(op: m.AddCapabilities, st: _State) -> None:
    _ck_container(op, st)
    for c in op.capabilities:
        if not _CAPABILITY.match(c):
            raise Denied(f"capability {c!r} is not valid")


def _ck_nothing(op: m._Op, st: _State) -> None:
    return None


# --- appliers: (editor, op) -> None; never fail once plan() passed


class PodEditor:
    """Copy-on-write over a Pod dict: containers on the path of a write are
    copied once, the rest is shared with the original."""

    __slots__ = ("_containers", "_owned", "_spec", "pod")

    def __init__(self, pod: Mapping[str, Any]) -> None:
        self.pod: dict[str, Any] = dict(pod)
        self._owned: set[int] = {id(self.pod)}
        # The two nodes nearly every op writes under, owned once per Pod.
        self._spec: dict[str, Any] | None = None
        self._containers: list[dict[str, Any]] | None = None

    def _own(self, parent: dict[str, Any], key: str, empty: type) -> Any:
        child = parent.get(key)
        if child is None:
            child = parent[key] = empty()
            self._owned.add(id(child))
        elif id(child) not in self._owned:
            child = parent[key] = child.copy()
            self._owned.add(id(child))
        return child

    def _own_item(self, items: list[Any], i: int) -> dict[str, Any]:
        item = items[i]
        if id(item) not in self._owned:
            item = items[i] = dict(item)
            self._owned.add(id(item))
        return item

    def metadata_map(self, key: str) -> dict[str, str]:
        return self._own(self._own(self.pod, "metadata", dict), key, dict)

    def spec(self) -> dict[str, Any]:
        if self._spec is None:
            self._spec = self._own(self.pod, "spec", dict)
        return self._spec

    def spec_list(self, key: str) -> list[Any]:
        return self._own(self.spec(), key, list)

    def spec_map(self, key: str) -> dict[str, Any]:
        return self._own(self.spec(), key, dict)

    def containers(self, name: str | None) -> Iterable[dict[str, Any]]:
        if self._containers is None:
            self._containers = self.spec_list("containers")
        items = self._containers
        for i, c in enumerate(items):
            if name is None or c.get("name") == name:
                yield self._own_item(items, i)

    def own(self, parent: dict[str, Any], key: str, empty: type) -> Any:
        return self._own(parent, key, empty)


def _ap_set_map(target: Callable[[PodEditor], dict[str, Any]]) -> Callable[..., None]:
    def apply(ed: PodEditor, op: Any) -> None:
        target(ed)[op.key] = op.value
    return apply


def _ap_remove_map(target: Callable[[PodEditor], dict[str, Any]]) -> Callable[..., None]:
    def apply(ed: PodEditor, op: Any) -> None:
        target(ed).pop(op.key, None)
    return apply


def _ap_set_env(ed: PodEditor, op: m.SetEnv) -> None:
    var: dict[str, Any] = {"name": op.name}
    if op.value is not None:
        var["value"] = op.value
    else:
        assert op.valueFrom is not None
        var["valueFrom"] = op.valueFrom.model_dump(exclude_none=True)
    for c in ed.containers(op.container):
        env = ed.own(c, "env", list)
        for i, e in enumerate(env):
            if e.get("name") == op.name:
                env[i] = var
                break
        else:
            env.append(var)


def _ap_remove_env(ed: PodEditor, op: m.RemoveEnv) -> None:
    for c in ed.containers(op.container):
        if any(e.get("name") == op.name for e in c.get("env") or ()):
            c["env"] = [e for e in c["env"] if e.get("name") != op.name]


def _ap_set_resource(ed: PodEditor, op: m.SetResource) -> None:
    for c in ed.containers(op.container):
        ed.own(ed.own(c, "resources", dict), op.kind, dict)[op.name] = op.quantity


def _ap_remove_resource(ed: PodEditor, op: m.RemoveResource) -> None:
    for c in ed.containers(op.container):
        if op.name in ((c.get("resources") or {}).get(op.kind) or {}):
            ed.own(ed.own(c, "resources", dict), op.kind, dict).pop(op.name)


def _replace_or_append(items: list[Any], key: str, item: dict[str, Any]) -> None:
    for i, existing in enumerate(items):
        if existing.get(key) == item[key]:
            items[i] = item
            return
    items.append(item)


def _ap_add_volume(ed: PodEditor, op: m.AddVolume) -> None:
    _replace_or_append(ed.spec_list("volumes"), "name", dict(op.volume))


def _ap_remove_volume(ed: PodEditor, op: m.RemoveVolume) -> None:
    spec = ed.spec()
    if any(v.get("name") == op.name for v in spec.get("volumes") or ()):
        spec["volumes"] = [v for v in spec["volumes"] if v.get("name") != op.name]
    for key in ("containers", "initContainers"):
        items = spec.get(key) or []
        for i, c in enumerate(items):
            if any(vm.get("name") == op.name for vm in c.get("volumeMounts") or ()):
                c = ed._own_item(ed.spec_list(key), i)
                c["volumeMounts"] = [vm for vm in c["volumeMounts"] if vm.get("name") != op.name]


def _ap_add_mount(ed: PodEditor, op: m.AddVolumeMount) -> None:
    for c in ed.containers(op.container):
        _replace_or_append(ed.own(c, "volumeMounts", list), "mountPath", dict(op.mount))


def _ap_remove_mount(ed: PodEditor, op: m.RemoveVolumeMount) -> None:
    for c in ed.containers(op.container):
        mounts = c.get("volumeMounts") or []
        if any(vm.get("mountPath") == op.mountPath for vm in mounts):
            c["volumeMounts"] = [vm for vm in mounts if vm.get("mountPath") != op.mountPath]


def _plain(model: Any) -> dict[str, Any]:
    """A flat model as a Kubernetes dict (model_dump costs 3x this on the hot path)."""
    return {k: v for k, v in model.__dict__.items() if v is not None}


def _ap_toleration(ed: PodEditor, op: m.AddToleration) -> None:
    t = _plain(op.toleration)
    items = ed.spec_list("tolerations")
    if t not in items:
        items.append(t)


def _ap_affinity_requirement(ed: PodEditor, op: m.AddNodeAffinityRequirement) -> None:
    expr = _plain(op.expression)
    node = ed.own(ed.spec_map("affinity"), "nodeAffinity", dict)
    required = ed.own(node, "requiredDuringSchedulingIgnoredDuringExecution", dict)
    terms = ed.own(required, "nodeSelectorTerms", list)
    if not terms:
        terms.append({})
    for i in range(len(terms)):
        term = ed._own_item(terms, i)
        exprs = ed.own(term, "matchExpressions", list)
        if expr not in exprs:
            exprs.append(expr)


def _ap_preferred_affinity(ed: PodEditor, op: m.AddPreferredNodeAffinity) -> None:
    item = {"weight": op.weight, "preference": op.preference.model_dump(exclude_none=True)}
    node = ed.own(ed.spec_map("affinity"), "nodeAffinity", dict)
    items = ed.own(node, "preferredDuringSchedulingIgnoredDuringExecution", list)
    if item not in items:
        items.append(item)


def _ap_spec_field(key: str) -> Callable[..., None]:
    def apply(ed: PodEditor, op: Any) -> None:
        ed.spec()[key] = op.value
    return apply


def _ap_add_container(key: str) -> Callable[..., None]:
    def apply(ed: PodEditor, op: Any) -> None:
        _replace_or_append(ed.spec_list(key), "name", dict(op.container))
    return apply


def _ap_args(ed: PodEditor, op: m.SetArgs) -> None:
    for c in ed.containers(op.container):
        c["args"] = list(op.args)


def _ap_caps(ed: PodEditor, op: m.AddCapabilities) -> None:
    for c in ed.containers(op.container):
        caps = ed.own(ed.own(c, "securityContext", dict), "capabilities", dict)
        add = ed.own(caps, "add", list)
        add.extend(x for x in op.capabilities if x not in add)


def _labels(ed: PodEditor) -> dict[str, Any]:
    return ed.metadata_map("labels")


def _annotations(ed: PodEditor) -> dict[str, Any]:
    return ed.metadata_map("annotations")


def _node_selector(ed: PodEditor) -> dict[str, Any]:
    return ed.spec_map("nodeSelector")


@dataclass(frozen=True)
class _Rule:
    check: Callable[..., None]
    apply: Callable[..., None]
    needs_grants: bool = False


# The one table: validation and application of every op derive from it.
RULES: dict[str, _Rule] = {
    "setLabel": _Rule(_ck_label, _ap_set_map(_labels)),
    "removeLabel": _Rule(_ck_label, _ap_remove_map(_labels)),
    "setAnnotation": _Rule(_ck_annotation, _ap_set_map(_annotations)),
    "removeAnnotation": _Rule(_ck_annotation, _ap_remove_map(_annotations)),
    "setEnv": _Rule(_ck_env, _ap_set_env),
    "removeEnv": _Rule(_ck_env, _ap_remove_env),
    "setResource": _Rule(_ck_resource, _ap_set_resource),
    "removeResource": _Rule(_ck_resource, _ap_remove_resource),
    "addVolume": _Rule(_ck_add_volume, _ap_add_volume, needs_grants=True),
    "removeVolume": _Rule(_ck_remove_volume, _ap_remove_volume),
    "addVolumeMount": _Rule(_ck_mount, _ap_add_mount),
    "removeVolumeMount": _Rule(_ck_container, _ap_remove_mount),
    "setNodeSelector": _Rule(_ck_node_selector, _ap_set_map(_node_selector)),
    "removeNodeSelector": _Rule(_ck_node_selector, _ap_remove_map(_node_selector)),
    "addToleration": _Rule(_ck_nothing, _ap_toleration),
    "addNodeAffinityRequirement": _Rule(_ck_nothing, _ap_affinity_requirement),
    "addPreferredNodeAffinity": _Rule(_ck_nothing, _ap_preferred_affinity),
    "setRuntimeClassName": _Rule(_ck_dns_value, _ap_spec_field("runtimeClassName")),
    "setSchedulerName": _Rule(_ck_dns_value, _ap_spec_field("schedulerName")),
    "setPriorityClassName": _Rule(_ck_dns_value, _ap_spec_field("priorityClassName")),
    "addContainer": _Rule(_ck_add_container, _ap_add_container("containers")),
    "addInitContainer": _Rule(_ck_add_container, _ap_add_container("initContainers")),
    "setArgs": _Rule(_ck_container, _ap_args),
    "addCapabilities": _Rule(_ck_caps, _ap_caps),
}
assert set(RULES) == set(m.OP_MODELS), "every op needs a rule"


def merge(
    ops: list[m._Op],
    pod: Mapping[str, Any],
    *,
    plugin: str,
    hook: str,
    grants: frozenset[str] = frozenset(),
    allowed_ops: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The Pod with ``ops`` applied in order, each checked against the Pod as the
    earlier ones left it. Raises :class:`MutationDenied` for the first op that
    breaks a rule; ``pod`` itself is never modified."""
    state = _State.of(pod)
    ed = PodEditor(pod)
    for i, op in enumerate(ops):
        name: str = op.op  # type: ignore[attr-defined]
        rule = RULES[name]
        try:
            if allowed_ops is not None and name not in allowed_ops:
                raise Denied(f"not allowed in the {hook} hook")
            if op.gate is not None and op.gate not in grants:
                raise Denied(f"needs the {op.gate!r} grant in the operator policy")
            if rule.needs_grants:
                rule.check(op, state, grants)
            else:
                rule.check(op, state)
        except Denied as e:
            where = f"{name} {op.target()}".rstrip()
            raise MutationDenied(plugin, hook, i, where, str(e)) from None
        rule.apply(ed, op)
    return ed.pod
