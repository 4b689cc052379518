"""Validate a plugin's mutation list against the allow-list and apply it.

All-or-nothing: :func:`check` checks every op of a plugin's list against the Pod
as the earlier ops of the same list leave it, before :func:`apply` applies any,
on a copy-on-write view: a denied op applies nothing, and the caller's Pod is
never mutated. :class:`PodEditor`
copies a nested dict or list the first time an op writes under it, so a change
costs what it touches, not a deep copy of the Pod.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import mutations as m
from .errors import MutationDenied

# Reserved for the controller and the host, whatever the policy says.
RESERVED_LABEL_PREFIX = "modelserving.volcano.sh/"
RESERVED_ANNOTATION_PREFIX = "podplug.io/"
RESERVED_ENV = frozenset({"ENTRY_ADDRESS", "WORKER_INDEX", "GROUP_SIZE"})
#: Kubernetes reserves this prefix for the cluster's own priority classes
#: (system-node-critical, system-cluster-critical): no grant writes them.
RESERVED_PRIORITY_PREFIX = "system-"

#: Every gate a policy can grant, and what it allows. Anything a grant does not
#: name stays denied: a grant means what its name says.
GATES: dict[str, str] = {
    "sidecars": "`addContainer`: add containers beside the template's, unprivileged "
                "(see [Added containers](#added-containers))",
    "initContainers": "`addInitContainer`: add init containers, unprivileged",
    "privilegedContainers": "with `sidecars` or `initContainers`: an added container may "
                            "have any `securityContext`, `hostPort`s and `volumeDevices`",
    "args": "`setArgs`: replace a container's `args`",
    "capabilities": "`addCapabilities`: add Linux capabilities to a container",
    "replaceVolumes": "`addVolume` of a name the Pod already had (from the template or an "
                      "earlier plugin), or `addVolumeMount` over a mount a container already "
                      "had at that path: change what the template's containers see there",
    "priorityClass": "`setPriorityClassName`, except the reserved `system-` classes",
    "hostPath": "`hostPath` volumes, and mounting them",
    "secrets": "`secret` volumes, `secret` sources of `projected` volumes, mounting them, "
               "and an added container's `secretKeyRef` env and `secretRef` envFrom",
    "serviceAccountTokens": "`serviceAccountToken` sources of `projected` volumes (the "
                            "Pod's API credentials), and mounting them",
    "csi": "`csi` volumes (inline CSI drivers, which may fetch secrets with the Pod's "
           "identity), and mounting them",
    "ephemeralVolumes": "`ephemeral` volumes (a PersistentVolumeClaim per Pod, provisioned "
                        "from a StorageClass at any size), and mounting them",
}

#: Volume sources a plugin may add or mount: source -> the gate it needs (None:
#: none). A source not listed is refused, whatever the policy grants.
VOLUME_SOURCES: dict[str, str | None] = {
    "emptyDir": None,
    "configMap": None,
    "downwardAPI": None,
    "persistentVolumeClaim": None,
    "projected": None,  # and each of its sources, below
    "secret": "secrets",
    "csi": "csi",
    "ephemeral": "ephemeralVolumes",
    "hostPath": "hostPath",
}
PROJECTED_SOURCES: dict[str, str | None] = {
    "configMap": None,
    "downwardAPI": None,
    "clusterTrustBundle": None,
    "secret": "secrets",
    "serviceAccountToken": "serviceAccountTokens",
}

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
    # Plugins send the same few keys for every Pod: remember the verdicts on
    # keys short enough to be valid (longer ones are refused without a regex).
    problem = _qualified_problem(key, what) if len(key) <= 317 else _qualified(key, what)
    if problem is not None:
        raise Denied(problem)


def _qualified(key: str, what: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"{what} key prefix {prefix!r} is not a DNS subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return f"{what} key {key!r} is not a valid qualified name"
    return None


_qualified_problem = functools.lru_cache(maxsize=4096)(_qualified)


def _check_dns(value: str, what: str, pattern: re.Pattern[str] = _DNS_SUBDOMAIN) -> None:
    if not value or len(value) > 253 or not pattern.match(value):
        raise Denied(f"{what} {value!r} is not a valid DNS name")


def _need(gate: str, what: str, grants: frozenset[str], verb: str = "needs") -> None:
    if gate not in grants:
        raise Denied(f"{what} {verb} the {gate!r} grant in the operator policy")


class _State:
    """The names ops refer to, kept up to date as ops add and remove them, and
    what the Pod held before this plugin's ops (which they may not replace).

    Each part is read from the Pod the first time a check asks for it (most
    lists ask for none: labels, annotations, scheduling fields). The Pod does
    not change while a list is checked, so a part read late is the same."""

    grants: frozenset[str]
    #: init containers' names too: addInitContainer must not replace one either
    template_containers: frozenset[str]
    template_volumes: frozenset[str]
    containers: set[str]
    init_containers: set[str]
    #: name -> the volume, so a mount can be checked against its source
    volumes: dict[str, Mapping[str, Any]]
    #: (container, mountPath) -> the mount the Pod had there
    template_mounts: dict[tuple[str, str], Mapping[str, Any]]

    def __init__(self, pod: Mapping[str, Any], grants: frozenset[str]) -> None:
        self.grants = grants
        self._spec: Mapping[str, Any] = pod.get("spec") or {}

    @classmethod
    def of(cls, pod: Mapping[str, Any], grants: frozenset[str]) -> _State:
        return cls(pod, grants)

    def __getattr__(self, name: str) -> Any:
        # Only for a part not read yet; afterwards it is a plain attribute.
        spec = self._spec
        if name == "template_containers":
            # from the Pod, not from `containers`, which ops add to as they are checked
            value: Any = frozenset(c.get("name", "") for key in ("containers", "initContainers")
                                   for c in spec.get(key) or ())
        elif name == "containers":
            value = {c.get("name", "") for c in spec.get("containers") or ()}
        elif name == "init_containers":
            value = {c.get("name", "") for c in spec.get("initContainers") or ()}
        elif name == "template_volumes":
            value = frozenset(v.get("name", "") for v in spec.get("volumes") or ()
                              if isinstance(v, dict))
        elif name == "volumes":
            value = {v.get("name", ""): v for v in spec.get("volumes") or ()
                     if isinstance(v, dict)}
        elif name == "template_mounts":
            value = {(c.get("name", ""), vm.get("mountPath", "")): vm
                     for c in spec.get("containers") or ()
                     for vm in c.get("volumeMounts") or () if isinstance(vm, dict)}
        else:
            raise AttributeError(name)
        setattr(self, name, value)
        return value


# --- per-op checks: (op, state) -> None, raising Denied; they may update state


def _ck_container(op: m.Op, st: _State) -> None:
    if op.get("container") is not None and op.get("container") not in st.containers:
        raise Denied(f"no container named {op.get('container')!r}")


def _ck_label(op: m.Op, st: _State) -> None:
    if op["key"].startswith(RESERVED_LABEL_PREFIX):
        raise Denied("label is owned by the controller")
    _check_qualified(op["key"], "label")
    if op["op"] == "setLabel" and (len(op["value"]) > 63 or not _LABEL_VALUE.match(op["value"])):
        raise Denied(f"label value {op['value']!r} is not valid "
                     "(at most 63 characters: alphanumerics and -_.)")


def _ck_annotation(op: m.Op, st: _State) -> None:
    if op["key"].startswith(RESERVED_ANNOTATION_PREFIX):
        raise Denied("annotation is owned by podplug")
    _check_qualified(op["key"], "annotation")


def _ck_env_name(name: str) -> None:
    if name in RESERVED_ENV:
        raise Denied(f"env var {name} is owned by the controller")
    if not _ENV_NAME.match(name):
        raise Denied(f"env name {name!r} is not valid")


def _ck_env(op: m.Op, st: _State) -> None:
    if not op.get("initContainers"):
        _ck_container(op, st)
    elif op.get("container") is not None and op["container"] not in st.init_containers:
        raise Denied(f"no init container named {op['container']!r}")
    _ck_env_name(op["name"])
    if op["op"] != "removeEnv":
        source = op.get("valueFrom")
        if (op.get("value") is None) == (source is None):
            raise Denied("exactly one of value and valueFrom is required")
        if source is not None and (source.get("fieldRef") is None) == (
            source.get("resourceFieldRef") is None
        ):
            raise Denied("valueFrom needs exactly one of fieldRef and resourceFieldRef")


def _ck_resource(op: m.Op, st: _State) -> None:
    _ck_container(op, st)
    _check_qualified(op["name"], "resource")
    if op["op"] == "setResource" and not _QUANTITY.match(op["quantity"]):
        raise Denied(f"quantity {op['quantity']!r} is not a Kubernetes quantity")


def volume_gates(volume: Mapping[str, Any]) -> set[str]:
    """The gates adding or mounting ``volume`` needs. Raises :class:`Denied`
    for a malformed volume or a source plugins may not use at all."""
    sources = [k for k in volume if k != "name"]
    if len(sources) != 1:
        raise Denied(f"volume needs exactly one source, got {sources or 'none'}")
    source = sources[0]
    if source not in VOLUME_SOURCES:
        raise Denied(f"volume source {source!r} is not allowed")
    body = volume[source]
    if not isinstance(body, dict):
        raise Denied(f"volume source {source} must be an object")
    gate = VOLUME_SOURCES[source]
    gates = {gate} if gate else set()
    if source == "projected":
        items = body.get("sources") or []
        if not isinstance(items, list):
            raise Denied("projected sources must be a list")
        for item in items:
            if not isinstance(item, dict) or len(item) != 1:
                raise Denied("each projected source needs exactly one kind")
            (kind,) = item
            if kind not in PROJECTED_SOURCES:
                raise Denied(f"projected source {kind!r} is not allowed")
            if gate := PROJECTED_SOURCES[kind]:
                gates.add(gate)
    return gates


def _need_volume_gates(volume: Mapping[str, Any], what: str, grants: frozenset[str],
                       verb: str = "needs") -> None:
    for gate in sorted(volume_gates(volume)):
        _need(gate, what, grants, verb)


def _source_of(volume: Mapping[str, Any]) -> str:
    return next((k for k in volume if k != "name"), "no")


def _ck_add_volume(op: m.Op, st: _State) -> None:
    name = op["volume"].get("name")
    if not isinstance(name, str):
        raise Denied("volume needs a name")
    _check_dns(name, "volume name", _DNS_LABEL)
    if name in st.template_volumes and st.volumes.get(name) != op["volume"]:
        # Replacing it swaps what the template's mounts see (its model store for
        # a Secret, say) behind the containers' backs. The same volume again is
        # a no-op: ops stay idempotent.
        _need("replaceVolumes", f"replacing volume {name!r} (in the Pod before this plugin)",
              st.grants)
    _need_volume_gates(op["volume"], f"{_source_of(op['volume'])} volumes", st.grants, "need")
    st.volumes[name] = op["volume"]


def _ck_remove_volume(op: m.Op, st: _State) -> None:
    st.volumes.pop(op["name"], None)


_MOUNT_FIELDS = frozenset({"name", "mountPath", "readOnly", "subPath", "subPathExpr",
                           "mountPropagation", "recursiveReadOnly"})


def _check_mount(mount: Mapping[str, Any], st: _State) -> None:
    """A mount needs its volume to exist and the grants that volume's source needs:
    mounting a credential is reaching it."""
    name, path = mount.get("name"), mount.get("mountPath")
    if not isinstance(name, str) or not isinstance(path, str):
        raise Denied("mount needs a name and a mountPath")
    if not path.startswith("/"):
        raise Denied(f"mountPath {path!r} is not absolute")
    extra = set(mount) - _MOUNT_FIELDS
    if extra:
        raise Denied(f"unknown mount fields {sorted(extra)}")
    if mount.get("mountPropagation") == "Bidirectional":
        raise Denied("Bidirectional mount propagation needs a privileged container")
    volume = st.volumes.get(name)
    if volume is None:
        raise Denied(f"no volume named {name!r}")
    _need_volume_gates(volume, f"mounting {_source_of(volume)} volume {name!r}", st.grants)


def _ck_mount(op: m.Op, st: _State) -> None:
    _ck_container(op, st)
    _check_mount(op["mount"], st)
    path = op["mount"]["mountPath"]
    for name in [op.get("container")] if op.get("container") is not None else sorted(st.containers):
        had = st.template_mounts.get((name, path))
        if had is not None and had != op["mount"]:
            # Another volume at the template's path: the same swap as replacing the volume.
            _need("replaceVolumes", f"replacing the mount at {path} of container {name!r} "
                  "(in the Pod before this plugin)", st.grants)


def _ck_node_selector(op: m.Op, st: _State) -> None:
    _check_qualified(op["key"], "node selector")


def _ck_dns_value(op: m.Op, st: _State) -> None:
    _check_dns(op["value"], op["op"].removeprefix("set"))


def _ck_priority_class(op: m.Op, st: _State) -> None:
    _check_dns(op["value"], "PriorityClassName")
    if op["value"].startswith(RESERVED_PRIORITY_PREFIX):
        raise Denied(f"{RESERVED_PRIORITY_PREFIX}* priority classes are reserved for the "
                     "cluster's own components")


# What an added container may hold. Anything else (volumeDevices, or a field
# this host does not know) is refused, so a new Kubernetes field is never
# silently a way around the gates.
_CONTAINER_FIELDS = frozenset({
    "name", "image", "imagePullPolicy", "command", "args", "workingDir", "env", "envFrom",
    "ports", "resources", "resizePolicy", "volumeMounts", "livenessProbe", "readinessProbe",
    "startupProbe", "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
    "securityContext", "stdin", "stdinOnce", "tty", "restartPolicy",
})
_PRIVILEGED_CONTAINER_FIELDS = frozenset({"volumeDevices"})
# securityContext fields that cannot raise privilege; every other one (privileged,
# capabilities.add, procMount, seLinuxOptions, appArmorProfile, windowsOptions, ...)
# needs privilegedContainers.
_UNPRIVILEGED_SECURITY = frozenset({"runAsUser", "runAsGroup", "runAsNonRoot",
                                    "readOnlyRootFilesystem", "allowPrivilegeEscalation",
                                    "capabilities", "seccompProfile"})
_ENV_SOURCES: dict[str, str | None] = {
    "fieldRef": None, "resourceFieldRef": None, "configMapKeyRef": None, "fileKeyRef": None,
    "secretKeyRef": "secrets",
}
_ENV_FROM_SOURCES: dict[str, str | None] = {"configMapRef": None, "secretRef": "secrets"}


def _privileged_reason(container: Mapping[str, Any]) -> str | None:
    """Why an added container is privileged (needs privilegedContainers), or None."""
    extra = sorted(set(container) & _PRIVILEGED_CONTAINER_FIELDS)
    if extra:
        return extra[0]
    for port in _list(container, "ports"):
        if isinstance(port, dict) and (port.get("hostPort") or port.get("hostIP")):
            return "hostPort"
    sc = container.get("securityContext")
    if sc is None:
        return None
    if not isinstance(sc, dict):
        return "securityContext"
    for key in sorted(set(sc) - _UNPRIVILEGED_SECURITY):
        return f"securityContext.{key}"
    if sc.get("allowPrivilegeEscalation") not in (None, False):
        return "securityContext.allowPrivilegeEscalation"
    caps = sc.get("capabilities")
    if caps is not None and (not isinstance(caps, dict) or set(caps) - {"drop"}):
        return "securityContext.capabilities.add"
    seccomp = sc.get("seccompProfile")
    if seccomp is not None and (not isinstance(seccomp, dict)
                                or seccomp.get("type") not in ("RuntimeDefault", "Localhost")):
        return "securityContext.seccompProfile"
    return None


def _list(container: Mapping[str, Any], key: str) -> list[Any]:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Denied(f"container {key} must be a list")
    return value


def _ck_sources(refs: Mapping[str, Any], table: Mapping[str, str | None], what: str,
                st: _State) -> None:
    if len(refs) != 1:
        raise Denied(f"{what} needs exactly one source")
    (kind,) = refs
    if kind not in table:
        raise Denied(f"{what} source {kind!r} is not allowed")
    if gate := table[kind]:
        _need(gate, f"{what} from {kind}", st.grants)


def _ck_add_container(op: m.Op, st: _State) -> None:
    c = op["container"]
    name, image = c.get("name"), c.get("image")
    if not isinstance(name, str) or not isinstance(image, str) or not image:
        raise Denied("container needs a name and an image")
    _check_dns(name, "container name", _DNS_LABEL)
    if name in st.template_containers or (
        op["op"] == "addInitContainer" and name in st.containers
    ):
        raise Denied(f"container {name!r} comes from the template and cannot be replaced")
    unknown = sorted(set(c) - _CONTAINER_FIELDS - _PRIVILEGED_CONTAINER_FIELDS)
    if unknown:
        raise Denied(f"container field {unknown[0]!r} is not allowed")
    reason = _privileged_reason(c)
    if reason is not None:
        _need("privilegedContainers", f"a container with {reason}", st.grants)
    for var in _list(c, "env"):
        if not isinstance(var, dict) or not isinstance(var.get("name"), str):
            raise Denied("container env needs a name per variable")
        _ck_env_name(var["name"])
        source = var.get("valueFrom")
        if source is not None:
            if not isinstance(source, dict):
                raise Denied(f"env {var['name']}: valueFrom must be an object")
            _ck_sources(source, _ENV_SOURCES, f"env {var['name']}", st)
    for ref in _list(c, "envFrom"):
        if not isinstance(ref, dict):
            raise Denied("envFrom entries must be objects")
        _ck_sources({k: v for k, v in ref.items() if k != "prefix"}, _ENV_FROM_SOURCES,
                    "envFrom", st)
    for mount in _list(c, "volumeMounts"):
        if not isinstance(mount, dict):
            raise Denied("volumeMounts entries must be objects")
        _check_mount(mount, st)
    (st.init_containers if op["op"] == "addInitContainer" else st.containers).add(name)


def _ck_caps(op: m.Op, st: _State) -> None:
    _ck_container(op, st)
    for c in op["capabilities"]:
        if not _CAPABILITY.match(c):
            raise Denied(f"capability {c!r} is not valid")
    # An added container with capabilities is a privileged one, however it got them
    # (found by the fuzzer: addContainer, then addCapabilities on it).
    for name in [op.get("container")] if op.get("container") is not None else sorted(st.containers):
        if name not in st.template_containers:
            _need("privilegedContainers", f"adding capabilities to added container {name!r}",
                  st.grants)


def _ck_nothing(op: m.Op, st: _State) -> None:
    return None


# --- appliers: (editor, op) -> None; never fail once check() passed


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

    def containers(self, name: str | None, init: bool = False) -> Iterable[dict[str, Any]]:
        if init:  # spec.initContainers; never created when the Pod has none
            if not (self.pod.get("spec") or {}).get("initContainers"):
                return
            items = self.spec_list("initContainers")
        else:
            if self._containers is None:
                self._containers = self.spec_list("containers")
            items = self._containers
        for i, c in enumerate(items):
            if name is None or c.get("name") == name:
                yield self._own_item(items, i)

    def own(self, parent: dict[str, Any], key: str, empty: type) -> Any:
        return self._own(parent, key, empty)


def _ap_set_map(target: Callable[[PodEditor], dict[str, Any]]) -> Callable[..., None]:
    def apply(ed: PodEditor, op: m.Op) -> None:
        target(ed)[op["key"]] = op["value"]
    return apply


def _ap_remove_map(target: Callable[[PodEditor], dict[str, Any]]) -> Callable[..., None]:
    def apply(ed: PodEditor, op: m.Op) -> None:
        target(ed).pop(op["key"], None)
    return apply


def _env_var(op: m.Op) -> dict[str, Any]:
    var: dict[str, Any] = {"name": op["name"]}
    if op.get("value") is not None:
        var["value"] = op["value"]
    else:
        var["valueFrom"] = m.without_none(op["valueFrom"])
    return var


def _ap_set_env(ed: PodEditor, op: m.Op) -> None:
    var = _env_var(op)
    for c in ed.containers(op.get("container"), bool(op.get("initContainers"))):
        env = ed.own(c, "env", list)
        for i, e in enumerate(env):
            if e.get("name") == op["name"]:
                env[i] = var
                break
        else:
            env.append(var)


def _ap_append_env(ed: PodEditor, op: m.Op) -> None:
    var = _env_var(op)
    for c in ed.containers(op.get("container"), bool(op.get("initContainers"))):
        ed.own(c, "env", list).append(var)


def _ap_remove_env(ed: PodEditor, op: m.Op) -> None:
    for c in ed.containers(op.get("container"), bool(op.get("initContainers"))):
        if any(e.get("name") == op["name"] for e in c.get("env") or ()):
            c["env"] = [e for e in c["env"] if e.get("name") != op["name"]]


def _ap_set_resource(ed: PodEditor, op: m.Op) -> None:
    for c in ed.containers(op.get("container")):
        ed.own(ed.own(c, "resources", dict), op["kind"], dict)[op["name"]] = op["quantity"]


def _ap_remove_resource(ed: PodEditor, op: m.Op) -> None:
    for c in ed.containers(op.get("container")):
        if op["name"] in ((c.get("resources") or {}).get(op["kind"]) or {}):
            ed.own(ed.own(c, "resources", dict), op["kind"], dict).pop(op["name"])


def _replace_or_append(items: list[Any], key: str, item: dict[str, Any]) -> None:
    for i, existing in enumerate(items):
        if existing.get(key) == item[key]:
            items[i] = item
            return
    items.append(item)


def _ap_add_volume(ed: PodEditor, op: m.Op) -> None:
    _replace_or_append(ed.spec_list("volumes"), "name", dict(op["volume"]))


def _ap_remove_volume(ed: PodEditor, op: m.Op) -> None:
    spec = ed.spec()
    if any(v.get("name") == op["name"] for v in spec.get("volumes") or ()):
        spec["volumes"] = [v for v in spec["volumes"] if v.get("name") != op["name"]]
    for key in ("containers", "initContainers"):
        items = spec.get(key) or []
        for i, c in enumerate(items):
            if any(vm.get("name") == op["name"] for vm in c.get("volumeMounts") or ()):
                c = ed._own_item(ed.spec_list(key), i)
                c["volumeMounts"] = [vm for vm in c["volumeMounts"] if vm.get("name") != op["name"]]


def _ap_add_mount(ed: PodEditor, op: m.Op) -> None:
    for c in ed.containers(op.get("container")):
        _replace_or_append(ed.own(c, "volumeMounts", list), "mountPath", dict(op["mount"]))


def _ap_remove_mount(ed: PodEditor, op: m.Op) -> None:
    for c in ed.containers(op.get("container")):
        mounts = c.get("volumeMounts") or []
        if any(vm.get("mountPath") == op["mountPath"] for vm in mounts):
            c["volumeMounts"] = [vm for vm in mounts if vm.get("mountPath") != op["mountPath"]]


def _ap_toleration(ed: PodEditor, op: m.Op) -> None:
    t = m.without_none(op["toleration"])
    items = ed.spec_list("tolerations")
    if t not in items:
        items.append(t)


def _ap_affinity_requirement(ed: PodEditor, op: m.Op) -> None:
    expr = m.without_none(op["expression"])
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


def _ap_preferred_affinity(ed: PodEditor, op: m.Op) -> None:
    item = {"weight": op["weight"], "preference": m.without_none(op["preference"])}
    node = ed.own(ed.spec_map("affinity"), "nodeAffinity", dict)
    items = ed.own(node, "preferredDuringSchedulingIgnoredDuringExecution", list)
    if item not in items:
        items.append(item)


def _ap_spec_field(key: str) -> Callable[..., None]:
    def apply(ed: PodEditor, op: m.Op) -> None:
        ed.spec()[key] = op["value"]
    return apply


def _ap_add_container(key: str) -> Callable[..., None]:
    def apply(ed: PodEditor, op: m.Op) -> None:
        _replace_or_append(ed.spec_list(key), "name", dict(op["container"]))
    return apply


def _ap_args(ed: PodEditor, op: m.Op) -> None:
    for c in ed.containers(op.get("container")):
        c["args"] = list(op["args"])


def _ap_caps(ed: PodEditor, op: m.Op) -> None:
    for c in ed.containers(op.get("container")):
        caps = ed.own(ed.own(c, "securityContext", dict), "capabilities", dict)
        add = ed.own(caps, "add", list)
        add.extend(x for x in op["capabilities"] if x not in add)


def _labels(ed: PodEditor) -> dict[str, Any]:
    return ed.metadata_map("labels")


def _annotations(ed: PodEditor) -> dict[str, Any]:
    return ed.metadata_map("annotations")


def _node_selector(ed: PodEditor) -> dict[str, Any]:
    return ed.spec_map("nodeSelector")


@dataclass(frozen=True)
class Rule:
    """One op of the vocabulary: how it is checked and applied, the grant it
    needs, the Pod fields it may write, and what it does (docs/abi.md's table
    is generated from these)."""

    check: Callable[..., None]
    apply: Callable[..., None]
    #: Pod paths it may write ("spec.containers[].env"); tests hold every op to them
    touches: tuple[str, ...]
    effect: str
    #: the grant the op itself needs, or None (its check may require more)
    gate: str | None = None


_C = "spec.containers[]"
#: the env ops: `initContainers: true` selects spec.initContainers
_ENV = (f"{_C}.env", "spec.initContainers[].env")

# The one table: validation, application, gates and docs of every op derive from it.
RULES: dict[str, Rule] = {
    "setLabel": Rule(_ck_label, _ap_set_map(_labels), ("metadata.labels",),
                     "set `metadata.labels[key]`"),
    "removeLabel": Rule(_ck_label, _ap_remove_map(_labels), ("metadata.labels",),
                        "delete it if present"),
    "setAnnotation": Rule(_ck_annotation, _ap_set_map(_annotations), ("metadata.annotations",),
                          "set `metadata.annotations[key]`"),
    "removeAnnotation": Rule(_ck_annotation, _ap_remove_map(_annotations),
                             ("metadata.annotations",), "delete it if present"),
    "setEnv": Rule(_ck_env, _ap_set_env, _ENV,
                   "set or replace env var `name`; exactly one of `value` (string) or "
                   "`valueFrom` (`{fieldRef: {fieldPath}}` or `{resourceFieldRef: "
                   "{containerName?, resource, divisor?}}`: never a Secret)"),
    "removeEnv": Rule(_ck_env, _ap_remove_env, _ENV, "delete env var `name`"),
    "appendEnv": Rule(_ck_env, _ap_append_env, _ENV,
                      "append env var `name` after the container's env, even when it has "
                      "one of that name (Kubernetes uses the last; Kthena's demo-pod-tweaks "
                      "appends); the value as in `setEnv`. The one op that is not "
                      "idempotent: applied twice, it appends twice"),
    "setResource": Rule(_ck_resource, _ap_set_resource, (f"{_C}.resources",),
                        "`resources[kind][name] = quantity`; `kind` is `limits` or "
                        "`requests`, quantity a Kubernetes quantity string"),
    "removeResource": Rule(_ck_resource, _ap_remove_resource, (f"{_C}.resources",),
                           "delete it"),
    "addVolume": Rule(_ck_add_volume, _ap_add_volume, ("spec.volumes",),
                      "add `volume` (a Kubernetes Volume), replacing one an earlier op of "
                      "the same plugin added; replacing a volume the Pod already had "
                      "needs `replaceVolumes` (adding it unchanged is a no-op); its source "
                      "decides the grant (see [Volume sources](#volume-sources))"),
    "removeVolume": Rule(_ck_remove_volume, _ap_remove_volume,
                         ("spec.volumes", f"{_C}.volumeMounts",
                          "spec.initContainers[].volumeMounts"),
                         "delete the volume and every mount of it"),
    "addVolumeMount": Rule(_ck_mount, _ap_add_mount, (f"{_C}.volumeMounts",),
                           "add `mount` (a VolumeMount), replacing one at the same "
                           "`mountPath` (one the Pod already had needs `replaceVolumes`); its "
                           "volume must exist, and mounting it needs the grant its source "
                           "needs"),
    "removeVolumeMount": Rule(_ck_container, _ap_remove_mount, (f"{_C}.volumeMounts",),
                              "delete the mount at `mountPath`"),
    "setNodeSelector": Rule(_ck_node_selector, _ap_set_map(_node_selector),
                            ("spec.nodeSelector",), "set `spec.nodeSelector[key]`"),
    "removeNodeSelector": Rule(_ck_node_selector, _ap_remove_map(_node_selector),
                               ("spec.nodeSelector",), "delete it"),
    "addToleration": Rule(_ck_nothing, _ap_toleration, ("spec.tolerations",),
                          "append the Toleration unless an equal one is there"),
    "addNodeAffinityRequirement": Rule(
        _ck_nothing, _ap_affinity_requirement,
        ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",),
        "AND a NodeSelectorRequirement (`{key, operator, values?}`) into every required "
        "node-affinity term (creating one term if there is none), unless already there"),
    "addPreferredNodeAffinity": Rule(
        _ck_nothing, _ap_preferred_affinity,
        ("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution",),
        "append a PreferredSchedulingTerm (`weight` 1-100, `preference` a NodeSelectorTerm) "
        "unless an equal one is there"),
    "setRuntimeClassName": Rule(_ck_dns_value, _ap_spec_field("runtimeClassName"),
                                ("spec.runtimeClassName",), "set `spec.runtimeClassName`"),
    "setSchedulerName": Rule(_ck_dns_value, _ap_spec_field("schedulerName"),
                             ("spec.schedulerName",), "set `spec.schedulerName`"),
    "setPriorityClassName": Rule(_ck_priority_class, _ap_spec_field("priorityClassName"),
                                 ("spec.priorityClassName",),
                                 "set `spec.priorityClassName`; never a `system-` class",
                                 gate="priorityClass"),
    "addContainer": Rule(_ck_add_container, _ap_add_container("containers"),
                         ("spec.containers",),
                         "add a container (a Kubernetes Container), replacing one of the "
                         "same name that an earlier op added; replacing a template container "
                         "is denied; see [Added containers](#added-containers)",
                         gate="sidecars"),
    "addInitContainer": Rule(_ck_add_container, _ap_add_container("initContainers"),
                             ("spec.initContainers",),
                             "same, in `spec.initContainers`", gate="initContainers"),
    "setArgs": Rule(_ck_container, _ap_args, (f"{_C}.args",),
                    "replace the container's `args`", gate="args"),
    "addCapabilities": Rule(_ck_caps, _ap_caps, (f"{_C}.securityContext.capabilities.add",),
                            "add Linux capabilities to `securityContext.capabilities.add`; "
                            "to a container a plugin added, only with `privilegedContainers`",
                            gate="capabilities"),
}
assert set(RULES) == set(m.OP_MODELS), "every op needs a rule"
assert all(r.gate is None or r.gate in GATES for r in RULES.values())


def check(
    ops: Sequence[m.Op],
    pod: Mapping[str, Any],
    *,
    plugin: str,
    hook: str,
    grants: frozenset[str] = frozenset(),
    allowed_ops: frozenset[str] | None = None,
) -> None:
    """Check every op of one plugin's list against the Pod as the earlier ops of
    the list leave it (the checks read only the names ops add and remove, so
    nothing needs applying yet). Raises :class:`MutationDenied` for the first
    op that breaks a rule."""
    state = _State.of(pod, grants)
    for i, op in enumerate(ops):
        name: str = op["op"]
        rule = RULES[name]
        try:
            if allowed_ops is not None and name not in allowed_ops:
                raise Denied(f"not allowed in the {hook} hook")
            if rule.gate is not None:
                _need(rule.gate, name, grants)
            rule.check(op, state)
        except Denied as e:
            where = f"{name} {m.target(op)}".rstrip()
            raise MutationDenied(plugin, hook, i, where, str(e)) from None


def apply(ed: PodEditor, ops: Iterable[m.Op]) -> None:
    """Apply ops that :func:`check` passed, in order. Appliers never fail."""
    for op in ops:
        RULES[op["op"]].apply(ed, op)


def merge(
    ops: Sequence[m.Op],
    pod: Mapping[str, Any],
    *,
    plugin: str,
    hook: str,
    grants: frozenset[str] = frozenset(),
    allowed_ops: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The Pod with ``ops`` applied in order, each checked against the Pod as the
    earlier ones left it. Raises :class:`MutationDenied` for the first op that
    breaks a rule, before any is applied; ``pod`` itself is never modified. (A
    chain run checks and applies each plugin's list on one editor for the run.)"""
    check(ops, pod, plugin=plugin, hook=hook, grants=grants, allowed_ops=allowed_ops)
    ed = PodEditor(pod)
    apply(ed, ops)
    return ed.pod
