"""The ModelServing API (workload.serving.volcano.sh/v1alpha1) as pydantic models.

Field names, defaults and constants follow Kthena's Go types
(pkg/apis/workload/v1alpha1/model_serving_types.go, servinggroup_types.go,
labels.go) so Kthena YAML parses unchanged. Models read the dict the API
server returns (camelCase, CRD defaults applied); defaults here mirror the CRD
ones so an un-defaulted dict (a file, a test) means the same thing.

podplug's additions live on the plugin entry only: ``type: Wasm`` with a
``module``, ``failurePolicy`` and ``limits``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from podplug.oci.reference import Reference
from podplug.runtime.chain import FailurePolicy, Scope, Target
from podplug.runtime.limits import parse_duration, parse_size

GROUP = "workload.serving.volcano.sh"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelServing"
PLURAL = "modelservings"

# Pod/Service label keys (Kthena labels.go).
LABEL_NAME = "modelserving.volcano.sh/name"
LABEL_GROUP_NAME = "modelserving.volcano.sh/group-name"
LABEL_ROLE = "modelserving.volcano.sh/role"
LABEL_ROLE_ID = "modelserving.volcano.sh/role-id"
LABEL_ENTRY = "modelserving.volcano.sh/entry"
LABEL_REVISION = "modelserving.volcano.sh/revision"
LABEL_ROLE_TEMPLATE_HASH = "modelserving.volcano.sh/role-template-hash"
ENTRY_VALUE = "true"

# Env injected into every container and init container (Kthena model_serving_types.go).
ENV_ENTRY_ADDRESS = "ENTRY_ADDRESS"
ENV_WORKER_INDEX = "WORKER_INDEX"
ENV_GROUP_SIZE = "GROUP_SIZE"

# Kthena's built-in plugin names; podplug ships a WASM module for each.
BUILTIN_PLUGINS: tuple[str, ...] = ("demo-pod-tweaks", "lws-standard-labels")

# Kthena's CRD pattern for role names is looser than its webhook (DNS-1035);
# the stricter one is the one that actually admits objects, so use it.
ROLE_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
ROLE_NAME_MAX = 12
SHA256_PATTERN = r"^[a-f0-9]{64}$"
MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(us|ms|s|m|h))+$"


class _Model(BaseModel):
    # populate_by_name lets tests build models with Python names too; unknown
    # fields are ignored so a newer Kthena field never breaks parsing.
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class RecoveryPolicy(StrEnum):
    SERVING_GROUP_RECREATE = "ServingGroupRecreate"
    ROLE_RECREATE = "RoleRecreate"
    NONE = "None"


class RolloutStrategyType(StrEnum):
    SERVING_GROUP_ROLLING_UPDATE = "ServingGroupRollingUpdate"
    ROLE_ROLLING_UPDATE = "RoleRollingUpdate"


class PluginType(StrEnum):
    BUILT_IN = "BuiltIn"
    WASM = "Wasm"


# The chain's own enums: one definition of their values for the API and the runtime.
PluginTarget = Target


IntOrString = int | str


class Metadata(_Model):
    """Kthena's trimmed ObjectMeta for templates: labels and annotations only."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodTemplate(_Model):
    """A role's entry or worker template. ``spec`` stays a plain PodSpec dict:
    the operator copies it into the Pod untouched, so it never needs a schema."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    metadata: Metadata | None = None
    spec: dict[str, Any] = Field(default_factory=dict)


class Role(_Model):
    name: str
    replicas: int = 1
    entry_template: PodTemplate = Field(alias="entryTemplate")
    # Required by the CRD; a missing value decodes to 0 as in Kthena's Go struct.
    worker_replicas: int = Field(default=0, alias="workerReplicas")
    worker_template: PodTemplate | None = Field(default=None, alias="workerTemplate")
    # Inlined RollingUpdateConfiguration: used only by RoleRollingUpdate.
    max_unavailable: IntOrString = Field(default=1, alias="maxUnavailable")
    partition: IntOrString | None = None

    @field_validator("name")
    @classmethod
    def _name_is_dns1035(cls, v: str) -> str:
        if len(v) > ROLE_NAME_MAX or not re.match(ROLE_NAME_PATTERN, v):
            raise ValueError(
                f"role name {v!r} must be a DNS-1035 label of at most {ROLE_NAME_MAX} chars"
            )
        return v

    @model_validator(mode="after")
    def _workers_need_a_template(self) -> Role:
        if self.replicas < 0 or self.worker_replicas < 0:
            raise ValueError(f"role {self.name}: replicas and workerReplicas must be >= 0")
        if self.worker_replicas > 0 and self.worker_template is None:
            raise ValueError(
                f"role {self.name}: workerTemplate is required when workerReplicas > 0"
            )
        return self

    @property
    def group_size(self) -> int:
        """Pods per role replica: the entry plus its workers (GROUP_SIZE)."""
        return self.worker_replicas + 1


class GangPolicy(_Model):
    min_role_replicas: dict[str, int] | None = Field(default=None, alias="minRoleReplicas")


class NetworkTopologySpec(_Model):
    """Volcano's NetworkTopologySpec, kept as given (only passed to PodGroups)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    mode: str = "hard"
    highest_tier_allowed: int | None = Field(default=None, alias="highestTierAllowed")
    highest_tier_name: str | None = Field(default=None, alias="highestTierName")


class NetworkTopology(_Model):
    group_policy: NetworkTopologySpec | None = Field(default=None, alias="groupPolicy")
    role_policy: NetworkTopologySpec | None = Field(default=None, alias="rolePolicy")


class ServingGroupTemplate(_Model):
    restart_grace_period_seconds: int = Field(default=0, alias="restartGracePeriodSeconds")
    gang_policy: GangPolicy | None = Field(default=None, alias="gangPolicy")
    network_topology: NetworkTopology | None = Field(default=None, alias="networkTopology")
    roles: list[Role] = Field(min_length=1, max_length=4)

    @field_validator("roles")
    @classmethod
    def _unique_role_names(cls, roles: list[Role]) -> list[Role]:
        names = [r.name for r in roles]
        if len(set(names)) != len(names):
            raise ValueError("roles name must be unique")
        return roles


class RollingUpdateConfiguration(_Model):
    max_unavailable: IntOrString = Field(default=1, alias="maxUnavailable")
    partition: IntOrString | None = None


class RolloutStrategy(_Model):
    type: RolloutStrategyType = RolloutStrategyType.SERVING_GROUP_ROLLING_UPDATE
    rolling_update_configuration: RollingUpdateConfiguration | None = Field(
        default=None, alias="rollingUpdateConfiguration"
    )


class PluginScope(_Model):
    """Roles is a whitelist (empty: all roles); target picks entry/worker Pods.
    The runtime's :class:`~podplug.runtime.Scope` decides (Kthena's shouldRun)."""

    roles: list[str] = Field(default_factory=list)
    target: PluginTarget = PluginTarget.ALL


class ConfigMapRef(_Model):
    name: str
    key: str


class PluginModule(_Model):
    """Where a Wasm plugin's module comes from: exactly one source."""

    plugin: str | None = None
    config_map_ref: ConfigMapRef | None = Field(default=None, alias="configMapRef")
    #: registry/repository[:tag]@sha256:<hex>: an OCI artifact pinned by manifest digest
    oci: str | None = Field(default=None, max_length=512)
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)

    @field_validator("oci")
    @classmethod
    def _oci_is_pinned(cls, v: str | None) -> str | None:
        if v is not None and not Reference.parse(v).pinned:
            raise ValueError(f"{v!r} must be pinned by digest (...@sha256:<64 hex>)")
        return v

    @model_validator(mode="after")
    def _exactly_one_source(self) -> PluginModule:
        if sum(x is not None for x in (self.plugin, self.config_map_ref, self.oci)) != 1:
            raise ValueError("module needs exactly one of plugin, configMapRef or oci")
        return self


def parse_memory(text: str) -> int:
    """A Kubernetes memory quantity ("32Mi", "1G", "1048576") in bytes; the CRD's
    pattern first, so the API server and the operator agree on what is valid."""
    if not re.match(MEMORY_PATTERN, text):
        raise ValueError(f"not a memory quantity: {text!r}")
    return parse_size(text)


class PluginLimits(_Model):
    """Per-call limits a ModelServing may set; they can only lower the operator's."""

    fuel: int | None = Field(default=None, gt=0)
    memory: str | None = None
    timeout: str | None = None

    @field_validator("memory")
    @classmethod
    def _memory_parses(cls, v: str | None) -> str | None:
        if v is not None and parse_memory(v) <= 0:
            raise ValueError("memory must be positive")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout_parses(cls, v: str | None) -> str | None:
        if v is not None and parse_duration(v) <= 0:
            raise ValueError("timeout must be positive")
        return v

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_memory(self.memory)

    @property
    def timeout_seconds(self) -> float | None:
        return None if self.timeout is None else parse_duration(self.timeout)

    def above(self, fuel: int, memory_bytes: int, timeout_seconds: float) -> list[str]:
        """Names of the limits set higher than the given operator ceilings.

        The runtime clamps them anyway; this lets the operator say so in an Event.
        """
        over = []
        if self.fuel is not None and self.fuel > fuel:
            over.append("fuel")
        if self.memory_bytes is not None and self.memory_bytes > memory_bytes:
            over.append("memory")
        if self.timeout_seconds is not None and self.timeout_seconds > timeout_seconds:
            over.append("timeout")
        return over


class PluginSpec(_Model):
    """One plugin entry. Kthena's fields (name, type, config, scope) plus podplug's."""

    name: str
    type: PluginType = PluginType.BUILT_IN
    config: Any = None
    scope: PluginScope | None = None
    module: PluginModule | None = None
    failure_policy: FailurePolicy = Field(default=FailurePolicy.FAIL, alias="failurePolicy")
    limits: PluginLimits | None = None

    @model_validator(mode="after")
    def _module_iff_wasm(self) -> PluginSpec:
        if self.type == PluginType.WASM and self.module is None:
            raise ValueError(f"plugin {self.name}: type Wasm needs a module")
        if self.type == PluginType.BUILT_IN and self.module is not None:
            raise ValueError(f"plugin {self.name}: module is only valid for type Wasm")
        # An unknown BuiltIn name is not a parse error: the CRD rejects it at
        # admission, and an object that slipped past must still reconcile far
        # enough to report PluginsReady=False (see is_known_builtin).
        return self

    @property
    def is_known_builtin(self) -> bool:
        """For BuiltIn entries, the name selects the module (as in Kthena's registry)."""
        return self.type == PluginType.BUILT_IN and self.name in BUILTIN_PLUGINS

    def runtime_scope(self) -> Scope:
        return Scope(frozenset(self.scope.roles), self.scope.target) if self.scope else Scope()

    def applies_to_role(self, role_name: str) -> bool:
        """Whether this plugin can touch any Pod of the role (entry or worker)."""
        scope = self.runtime_scope()
        return scope.matches(role_name, True) or scope.matches(role_name, False)


class ModelServingSpec(_Model):
    replicas: int = Field(default=1, ge=0)
    scheduler_name: str = Field(default="volcano", alias="schedulerName")
    plugins: list[PluginSpec] = Field(default_factory=list)
    template: ServingGroupTemplate
    rollout_strategy: RolloutStrategy | None = Field(default=None, alias="rolloutStrategy")
    recovery_policy: RecoveryPolicy = Field(
        default=RecoveryPolicy.ROLE_RECREATE, alias="recoveryPolicy"
    )

    @field_validator("plugins")
    @classmethod
    def _unique_plugin_names(cls, plugins: list[PluginSpec]) -> list[PluginSpec]:
        names = [p.name for p in plugins]
        if len(set(names)) != len(names):
            raise ValueError("plugin names must be unique")
        return plugins

    def role(self, name: str) -> Role | None:
        return next((r for r in self.template.roles if r.name == name), None)

    @property
    def role_rolling_update(self) -> bool:
        return (
            self.rollout_strategy is not None
            and self.rollout_strategy.type == RolloutStrategyType.ROLE_ROLLING_UPDATE
        )


class ObjectRef(_Model):
    """The parts of a ModelServing's metadata that generated objects need."""

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    annotations: dict[str, str] = Field(default_factory=dict)


class ModelServing(_Model):
    api_version: Literal["workload.serving.volcano.sh/v1alpha1"] = Field(
        default=API_VERSION, alias="apiVersion"
    )
    kind: Literal["ModelServing"] = KIND
    metadata: ObjectRef
    spec: ModelServingSpec

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> ModelServing:
        """Parse a ModelServing as the API returns it (or as a YAML file holds it)."""
        return cls.model_validate(obj)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


def parse_spec(spec: dict[str, Any]) -> ModelServingSpec:
    """Parse ``body['spec']`` alone (what a kopf handler receives as ``spec``)."""
    return ModelServingSpec.model_validate(spec)


def generated_name_errors(name: str, spec: ModelServingSpec) -> list[str]:
    """Kthena's webhook check that names built from ``name`` stay DNS-1035 labels.

    It probes ``<name>-<replicas>-<role>-<roleReplicas>-<workerReplicas>`` per role
    (webhook/validator.go validGeneratedNameLength); the CRD repeats it in CEL.
    """
    errors = []
    for role in spec.template.roles:
        probe = f"{name}-{spec.replicas}-{role.name}-{role.replicas}-{role.worker_replicas}"
        if len(probe) > 63 or not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", probe):
            errors.append(f"generated name {probe!r} is not a DNS-1035 label of <= 63 chars")
    return errors
