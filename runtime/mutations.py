"""The closed vocabulary of mutation operations a plugin may return.

One pydantic model per op; field order is the canonical encoding order of
docs/abi.md. These models check shape only (types, required fields, enums);
whether an op is allowed on this Pod under this policy, which grant it needs and
what it may touch is :mod:`.merge`'s table.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError


class _Op(BaseModel):
    # Unknown keys are ignored: newer SDKs may add optional fields within ABI v1.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    #: narrowed to a Literal by each op; declared here so it is the first field
    op: str

    def target(self) -> str:
        """What the op touches, for error messages (`setLabel team`)."""
        for name in ("key", "name", "mountPath", "value"):
            v = getattr(self, name, None)
            if isinstance(v, str):
                return v
        return ""


class _ContainerOp(_Op):
    container: str | None = None


Kind = Literal["limits", "requests"]


class SetLabel(_Op):
    op: Literal["setLabel"]
    key: str
    value: str


class RemoveLabel(_Op):
    op: Literal["removeLabel"]
    key: str


class SetAnnotation(_Op):
    op: Literal["setAnnotation"]
    key: str
    value: str


class RemoveAnnotation(_Op):
    op: Literal["removeAnnotation"]
    key: str


class FieldRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fieldPath: str
    apiVersion: str | None = None


class ResourceFieldRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource: str
    containerName: str | None = None
    divisor: str | None = None


class EnvVarSource(BaseModel):
    """Only the downward-API sources: a plugin must not wire Secrets into Pods."""

    model_config = ConfigDict(extra="forbid")
    fieldRef: FieldRef | None = None
    resourceFieldRef: ResourceFieldRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _downward_api_only(cls, data: Any) -> Any:
        # Says why, where extra="forbid" would only say "Extra inputs are not permitted".
        for key in data if isinstance(data, dict) else ():
            if key not in cls.model_fields:
                raise PydanticCustomError(
                    "env_source", "source {source} is not allowed: only fieldRef and "
                    "resourceFieldRef (a plugin never wires a Secret or ConfigMap into a Pod)",
                    {"source": repr(key)})
        return data


class _EnvOp(_ContainerOp):
    #: true: the op applies to ``spec.initContainers`` (``container`` names one of them)
    #: instead of ``spec.containers``; absent or false: ``spec.containers``. Strict: a
    #: string "false" must not select them.
    initContainers: StrictBool | None = None


class SetEnv(_EnvOp):
    op: Literal["setEnv"]
    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class RemoveEnv(_EnvOp):
    op: Literal["removeEnv"]
    name: str


class AppendEnv(_EnvOp):
    """Appends env var ``name`` even where a container has one of that name (Kubernetes
    uses the last), as Kthena's demo-pod-tweaks does; not idempotent."""

    op: Literal["appendEnv"]
    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class SetResource(_ContainerOp):
    op: Literal["setResource"]
    kind: Kind
    name: str
    quantity: str


class RemoveResource(_ContainerOp):
    op: Literal["removeResource"]
    kind: Kind
    name: str


class AddVolume(_Op):
    op: Literal["addVolume"]
    volume: dict[str, Any]

    def target(self) -> str:
        return str(self.volume.get("name", ""))


class RemoveVolume(_Op):
    op: Literal["removeVolume"]
    name: str


class AddVolumeMount(_ContainerOp):
    op: Literal["addVolumeMount"]
    mount: dict[str, Any]

    def target(self) -> str:
        return str(self.mount.get("mountPath", ""))


class RemoveVolumeMount(_ContainerOp):
    op: Literal["removeVolumeMount"]
    mountPath: str


class SetNodeSelector(_Op):
    op: Literal["setNodeSelector"]
    key: str
    value: str


class RemoveNodeSelector(_Op):
    op: Literal["removeNodeSelector"]
    key: str


class Toleration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class AddToleration(_Op):
    op: Literal["addToleration"]
    toleration: Toleration

    def target(self) -> str:
        return self.toleration.key or ""


class NodeSelectorRequirement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] | None = None


class NodeSelectorTerm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchExpressions: list[NodeSelectorRequirement] | None = None
    matchFields: list[NodeSelectorRequirement] | None = None


class AddNodeAffinityRequirement(_Op):
    op: Literal["addNodeAffinityRequirement"]
    expression: NodeSelectorRequirement

    def target(self) -> str:
        return self.expression.key


class AddPreferredNodeAffinity(_Op):
    op: Literal["addPreferredNodeAffinity"]
    weight: Annotated[int, Field(ge=1, le=100)]
    preference: NodeSelectorTerm


class SetRuntimeClassName(_Op):
    op: Literal["setRuntimeClassName"]
    value: str


class SetSchedulerName(_Op):
    op: Literal["setSchedulerName"]
    value: str


class SetPriorityClassName(_Op):
    op: Literal["setPriorityClassName"]
    value: str


class AddContainer(_Op):
    op: Literal["addContainer"]
    container: dict[str, Any]

    def target(self) -> str:
        return str(self.container.get("name", ""))


class AddInitContainer(_Op):
    op: Literal["addInitContainer"]
    container: dict[str, Any]

    def target(self) -> str:
        return str(self.container.get("name", ""))


class SetArgs(_ContainerOp):
    op: Literal["setArgs"]
    args: list[str]


class AddCapabilities(_ContainerOp):
    op: Literal["addCapabilities"]
    capabilities: list[str]

    def target(self) -> str:
        return ",".join(self.capabilities)


Mutation = Annotated[
    SetLabel | RemoveLabel | SetAnnotation | RemoveAnnotation
    | SetEnv | RemoveEnv | AppendEnv | SetResource | RemoveResource
    | AddVolume | RemoveVolume | AddVolumeMount | RemoveVolumeMount
    | SetNodeSelector | RemoveNodeSelector | AddToleration
    | AddNodeAffinityRequirement | AddPreferredNodeAffinity
    | SetRuntimeClassName | SetSchedulerName | SetPriorityClassName
    | AddContainer | AddInitContainer | SetArgs | AddCapabilities,
    Field(discriminator="op"),
]

MUTATIONS: TypeAdapter[list[Mutation]] = TypeAdapter(list[Mutation])

#: op name -> model, in the order docs/abi.md lists them
OP_MODELS: dict[str, type[_Op]] = {
    m.model_fields["op"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in Mutation.__origin__.__args__  # type: ignore[attr-defined]
}

#: ops a ready hook may return: the live Pod only takes metadata patches
READY_OPS = frozenset({"setLabel", "removeLabel", "setAnnotation", "removeAnnotation"})
