"""The plugin chain: ordered plugins, each seeing the Pod the previous left.

A :class:`Chain` is built once per ModelServing generation and module digests
(it validates every entry's config then, once) and run for each Pod. A run
works on a copy-on-write view of the Pod: when it fails, the caller's Pod is
exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from . import codec, merge
from .engine import CompiledModule
from .errors import ChainConfigError, ConfigTooLarge, InvalidConfig, PluginError, PodplugError
from .limits import Limits
from .mutations import READY_OPS, Op

#: the annotation recording what each plugin did to a Pod
AUDIT_ANNOTATION = "podplug.io/plugins"


class Target(StrEnum):
    ALL = "All"
    ENTRY = "Entry"
    WORKER = "Worker"


class FailurePolicy(StrEnum):
    FAIL = "Fail"  # the hook fails: the Pod is not created
    IGNORE = "Ignore"  # the failure is recorded and the plugin skipped


@dataclass(frozen=True)
class Scope:
    """Which Pods a plugin applies to: roles by name (empty: every role) and
    entry, worker or both."""

    roles: frozenset[str] = frozenset()
    target: Target = Target.ALL

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Scope:
        raw = raw or {}
        target = raw.get("target") or "All"
        try:
            t = Target(target)
        except ValueError:
            raise ChainConfigError(
                f"unknown scope target {target!r} (expected All, Entry or Worker)"
            ) from None
        return cls(frozenset(raw.get("roles") or ()), t)

    def matches(self, role_name: str, is_entry: bool) -> bool:
        if self.roles and role_name not in self.roles:
            return False
        return (
            self.target is Target.ALL
            or (self.target is Target.ENTRY) == is_entry
        )


@dataclass(frozen=True)
class ChainEntry:
    """One configured plugin: a module plus how this ModelServing uses it."""

    name: str
    module: CompiledModule
    config: Mapping[str, Any] = field(default_factory=dict)
    scope: Scope = Scope()
    failure_policy: FailurePolicy = FailurePolicy.FAIL
    limits: Limits = Limits()
    #: gated mutation kinds the operator's policy grants this plugin
    grants: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PodContext:
    """Where a Pod sits in its ModelServing."""

    serving_group: str
    role_name: str
    role_id: str
    is_entry: bool


@dataclass(slots=True)
class CallRecord:
    """One plugin call, for events, the audit annotation and metrics."""

    plugin: str
    digest: str
    hook: str
    duration_s: float
    fuel_used: int
    ops: int
    outcome: str  # "applied" | "ignored" | "failed"
    error: PluginError | None = None
    logs: tuple[tuple[int, str], ...] = ()


@dataclass
class ChainResult:
    pod: dict[str, Any]
    records: list[CallRecord]
    #: (plugin, op) in the order applied
    ops: list[tuple[str, Op]]


class ChainError(PodplugError):
    """A plugin with failurePolicy Fail failed. ``cause`` is the typed plugin
    error; ``records`` what ran before it."""

    def __init__(self, cause: PluginError, records: list[CallRecord]) -> None:
        self.cause = cause
        self.records = records
        super().__init__(str(cause))


class Chain:
    """Entries in order, with the parts of their requests that do not change
    between Pods packed once (docs/runtime.md, "The chain")."""

    def __init__(self, entries: Sequence[ChainEntry], model_serving: Mapping[str, Any]) -> None:
        names = [e.name for e in entries]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ChainConfigError(f"duplicate plugin names: {', '.join(dupes)}")
        self._model_serving = model_serving
        versions = {e.module.info.abi_version for e in entries}
        self._plugin_fields = {e.name: codec.plugin_field(e.name, e.config) for e in entries}
        for e in entries:
            size = len(self._plugin_fields[e.name])
            if size > e.limits.max_config_bytes:
                raise ConfigTooLarge(e.name, "validate_config", f"{size} bytes encoded, over "
                                     f"the operator's {e.limits.max_config_bytes}-byte cap")
        self._ms_fields = {v: codec.model_serving_field(model_serving, v) for v in versions}
        self._hook_fields = {(v, h): codec.hook_fields(h, v)
                             for v in versions for h in ("create", "ready")}
        # role name -> packed ``role`` (v2), filled on first use: a chain serves
        # every Pod of its ModelServing, roles are few. Two threads filling the
        # same role at once only pack the same bytes twice.
        self._role_fields: dict[str, bytes] = {}
        #: the validate_config calls, and failures of Ignore entries (left out of the chain)
        self.records: list[CallRecord] = []
        kept = []
        for e in entries:
            try:
                self._validate_config(e)
            except PluginError as err:
                if e.failure_policy is not FailurePolicy.IGNORE:
                    raise
                self.records.append(CallRecord(e.name, e.module.digest, "validate_config", 0.0,
                                               0, 0, "ignored", err))
                continue
            kept.append(e)
        self.entries = tuple(kept)

    def _validate_config(self, e: ChainEntry) -> None:
        if "validate_config" not in e.module.hooks:
            return
        request = codec.validate_config_request(self._plugin_fields[e.name],
                                                e.module.info.abi_version)
        raw = e.module.invoke("validate_config", request, e.limits, e.name)
        valid, message = codec.decode_validation(raw.output, e.name)
        if not valid:
            raise InvalidConfig(e.name, "validate_config", message or "rejected")
        self.records.append(CallRecord(e.name, e.module.digest, "validate_config",
                                       raw.duration_s, raw.fuel_used, 0, "applied"))

    def run_create(self, ctx: PodContext, pod: Mapping[str, Any]) -> ChainResult:
        """Run every create hook in scope; the result Pod carries the audit
        annotation. Raises :class:`ChainError`; ``pod`` is never modified."""
        return self._run("create", ctx, pod, None)

    def run_ready(self, ctx: PodContext, pod: Mapping[str, Any]) -> ChainResult:
        """Run every ready hook in scope on a live Pod; only label and
        annotation ops are allowed (they are patched onto the Pod)."""
        return self._run("ready", ctx, pod, READY_OPS)

    def request(self, hook: str, ctx: PodContext, pod: Mapping[str, Any], name: str) -> bytes:
        """The request entry ``name`` gets for ``pod`` (benchmarks, debugging)."""
        e = next(e for e in self.entries if e.name == name)
        context = codec.context_fields(ctx.serving_group, ctx.role_name, ctx.role_id, ctx.is_entry)
        return self._request(e, hook, ctx, context, codec.pod_field(pod))

    def _role_field(self, role_name: str) -> bytes:
        field = self._role_fields.get(role_name)
        if field is None:
            field = self._role_fields[role_name] = codec.role_field(self._model_serving, role_name)
        return field

    def _request(self, e: ChainEntry, hook: str, ctx: PodContext, context: bytes,
                 pod: bytes) -> bytes:
        version = e.module.info.abi_version
        return codec.pod_request(
            self._hook_fields[version, hook], self._plugin_fields[e.name],
            self._ms_fields[version], context, pod,
            self._role_field(ctx.role_name) if version >= 2 else None,
        )

    def _run(
        self, hook: str, ctx: PodContext, pod: Mapping[str, Any],
        allowed: frozenset[str] | None,
    ) -> ChainResult:
        context = codec.context_fields(ctx.serving_group, ctx.role_name, ctx.role_id, ctx.is_entry)
        records: list[CallRecord] = []
        applied: list[tuple[str, Op]] = []
        # One copy-on-write editor for the run: what one plugin's ops copied, the
        # next plugin's write in place. Each plugin's list is checked whole
        # before any of it is applied, so a denied op still applies nothing.
        editor = merge.PodEditor(pod)
        packed: bytes | None = None  # the Pod packed; kept while plugins change nothing
        session = None
        try:
            for e in self.entries:
                if hook not in e.module.hooks or not e.scope.matches(ctx.role_name, ctx.is_entry):
                    continue
                if session is None:
                    # One Store for the run, a fresh instance per plugin
                    # (docs/runtime.md, "One Store per chain run").
                    session = e.module.engine.session().__enter__()
                fuel = duration = 0.0
                logs: tuple[tuple[int, str], ...] = ()
                try:
                    if packed is None:
                        packed = codec.pod_field(editor.pod, plugin_name=e.name, hook_name=hook)
                    request = self._request(e, hook, ctx, context, packed)
                    raw = session.invoke(e.module, hook, request, e.limits, e.name)
                    fuel, duration, logs = raw.fuel_used, raw.duration_s, raw.logs
                    ops = codec.decode_mutations(raw.output, e.name, hook)
                    if ops:
                        merge.check(ops, editor.pod, plugin=e.name, hook=hook, grants=e.grants,
                                    allowed_ops=allowed)
                except PluginError as err:
                    outcome = "ignored" if e.failure_policy is FailurePolicy.IGNORE else "failed"
                    records.append(CallRecord(e.name, e.module.digest, hook, duration, int(fuel),
                                              0, outcome, err, logs))
                    if outcome == "failed":
                        raise ChainError(err, records) from err
                    continue
                if ops:
                    merge.apply(editor, ops)
                    packed = None
                    applied.extend((e.name, op) for op in ops)
                records.append(CallRecord(e.name, e.module.digest, hook, duration, int(fuel),
                                          len(ops), "applied", None, logs))
        finally:
            if session is not None:
                session.close()
        if hook == "create":
            editor.metadata_map("annotations")[AUDIT_ANNOTATION] = audit_value(records)
        return ChainResult(editor.pod, records, applied)


def audit_value(records: Sequence[CallRecord]) -> str:
    """``[{"plugin":"x","digest":"sha256:…","ops":3},…]`` of the applied plugins."""
    return "[" + ",".join(
        f'{{"plugin":{json.dumps(r.plugin)},"digest":"sha256:{r.digest}","ops":{r.ops}}}'
        for r in records if r.outcome == "applied"
    ) + "]"
