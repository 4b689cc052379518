"""The closed vocabulary of mutation operations a plugin may return.

One pydantic model per op; field order is the canonical encoding order of
docs/abi.md. These models check shape only (types, required fields, enums);
whether an op is allowed on this Pod under this policy, which grant it needs and
what it may touch is :mod:`.merge`'s table. The host validates responses with
:data:`OPS`, TypedDicts derived from these models: an op is then the validated
map itself (:data:`Op`), not a model object.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, NotRequired, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12


class _Op(BaseModel):
    # Unknown keys are ignored: newer SDKs may add optional fields within ABI v1.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    #: narrowed to a Literal by each op; declared here so it is the first field
    op: str


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

    @staticmethod
    def downward_api_only(data: Any) -> Any:
        # Says why, where extra="forbid" would only say "Extra inputs are not permitted";
        # run before the model and before its TypedDict (see _typed_dict).
        for key in data if isinstance(data, dict) else ():
            if key not in ("fieldRef", "resourceFieldRef"):
                raise PydanticCustomError(
                    "env_source", "source {source} is not allowed: only fieldRef and "
                    "resourceFieldRef (a plugin never wires a Secret or ConfigMap into a Pod)",
                    {"source": repr(key)})
        return data

    @model_validator(mode="before")
    @classmethod
    def _downward_api_only(cls, data: Any) -> Any:
        return cls.downward_api_only(data)


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



class RemoveVolume(_Op):
    op: Literal["removeVolume"]
    name: str


class AddVolumeMount(_ContainerOp):
    op: Literal["addVolumeMount"]
    mount: dict[str, Any]



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



class AddInitContainer(_Op):
    op: Literal["addInitContainer"]
    container: dict[str, Any]



class SetArgs(_ContainerOp):
    op: Literal["setArgs"]
    args: list[str]


class AddCapabilities(_ContainerOp):
    op: Literal["addCapabilities"]
    capabilities: list[str]



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

#: the models' own validator: what :data:`OPS` must agree with (tests/runtime/test_fuzz.py)
MUTATIONS: TypeAdapter[list[Mutation]] = TypeAdapter(list[Mutation])

#: op name -> model, in the order docs/abi.md lists them
OP_MODELS: dict[str, type[_Op]] = {
    m.model_fields["op"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in Mutation.__origin__.__args__  # type: ignore[attr-defined]
}

#: ops a ready hook may return: the live Pod only takes metadata patches
READY_OPS = frozenset({"setLabel", "removeLabel", "setAnnotation", "removeAnnotation"})


# --- the validator the host runs on every response ------------------------------
# Building a pydantic model per op costs twice what validating the op does. The
# host validates against TypedDicts derived from the models above (same fields,
# types, constraints, extra-key rules, so the same errors; the one pydantic words
# differently, a non-map where a model goes, codec._describe words as before)
# in one compiled discriminated union, and works on the validated dicts: an op
# is the map the plugin sent, its optional fields absent when not given.


def _typed(annotation: Any, made: dict[type, Any]) -> Any:
    """``annotation`` with every model in it replaced by its TypedDict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _typed_dict(annotation, made)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        return Union[tuple(_typed(a, made) for a in args)]  # noqa: UP007
    if origin is list:
        return list[_typed(args[0], made)]  # type: ignore[misc]
    return annotation


def _typed_dict(model: type[BaseModel], made: dict[type, Any]) -> Any:
    if model not in made:
        fields: dict[str, Any] = {}
        for name, f in model.model_fields.items():
            ann = _typed(f.annotation, made)
            if f.metadata:
                ann = Annotated[(ann, *f.metadata)]  # type: ignore[valid-type]
            fields[name] = ann if f.is_required() else NotRequired[ann]
        td = TypedDict(model.__name__, fields)  # type: ignore[operator]
        td.__pydantic_config__ = ConfigDict(extra=model.model_config.get("extra", "ignore"))
        if model is EnvVarSource:  # its before-validator, which a TypedDict cannot hold
            td = Annotated[td, BeforeValidator(EnvVarSource.downward_api_only)]
        made[model] = td
    return made[model]


#: a validated op: the map the plugin sent, checked against its model
Op = dict[str, Any]

_MADE: dict[type, Any] = {}
#: ``list[op]`` validated into plain dicts: what ``codec.decode_mutations`` runs
OPS: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(list[Annotated[  # type: ignore[valid-type]
    Union[tuple(_typed_dict(m, _MADE) for m in OP_MODELS.values())],  # noqa: UP007
    Field(discriminator="op"),
]])

_TARGETS = ("key", "name", "mountPath", "value")


def target(op: Mapping[str, Any]) -> str:
    """What an op touches, for error messages (`setLabel team`)."""
    name = op["op"]
    if name in ("addVolume",):
        return str(op["volume"].get("name", ""))
    if name == "addVolumeMount":
        return str(op["mount"].get("mountPath", ""))
    if name in ("addContainer", "addInitContainer"):
        return str(op["container"].get("name", ""))
    if name == "addToleration":
        return op["toleration"].get("key") or ""
    if name == "addNodeAffinityRequirement":
        return str(op["expression"]["key"])
    if name == "addCapabilities":
        return ",".join(op["capabilities"])
    for key in _TARGETS:
        v = op.get(key)
        if isinstance(v, str):
            return v
    return ""


def without_none(value: Any) -> Any:
    """A validated value as Kubernetes JSON: optional fields given as null left out."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def model_at(op: str, path: tuple[Any, ...]) -> str | None:
    """The name of the model the field at ``path`` of ``op`` holds, if it holds
    one: pydantic words a wrong type there after the model's name."""
    here: Any = OP_MODELS.get(op)
    for step in path:
        if isinstance(here, type) and issubclass(here, BaseModel) and isinstance(step, str):
            field = here.model_fields.get(step)
            here = field.annotation if field is not None else None
        elif get_origin(here) is list and isinstance(step, int):
            here = get_args(here)[0]
        else:
            return None
        if get_origin(here) in (Union, UnionType):  # Optional[Model]: the model
            here = next((a for a in get_args(here) if a is not type(None)), None)
    return here.__name__ if isinstance(here, type) and issubclass(here, BaseModel) else None


def dump(op: Mapping[str, Any]) -> dict[str, Any]:
    """An op as JSON for people (``podplug run --ops``, fixture cases): fields
    given as null left out, at the top and inside its typed fields (the
    free-form volume, mount and container maps stay as sent)."""
    name = op["op"]
    return {k: without_none(v) if model_at(name, (k,)) else v
            for k, v in op.items() if v is not None}
