"""What the validating webhook answers about a ModelServing (docs/operator.md,
"The admission webhook"). No HTTP here: an AdmissionReview in, one out.

The object is parsed and validated as the reconciler does (spec.py,
validation.py: Kthena's webhook rules and the policy's bounds), then each
plugin entry is had, compiled and its config validated in the sandbox as
Chains.resolve does it, one entry at a time and all at once, so one entry's
missing module hides no other's typo. Refusals read as Kthena's webhook's:
``validation failed:`` and one ``path: message`` line per problem.

What refuses and what does not:
- a spec the operator would not serve (InvalidSpec), a config the plugin
  rejects, a module that is not a plugin, a plugin that traps or runs out of
  fuel, memory or time in validate_config, a module the policy forbids
  (a namespace ConfigMap where none are allowed, no pin where one is required,
  a registry not on the allow-list): refused;
- a module that cannot be had now (a ConfigMap or a module not there yet, a
  digest that does not match yet, a registry down or refusing): admitted with a
  warning, unless the policy's ``admission.unavailableModules`` is Refuse; the
  operator reports it in PluginsReady and recovers once the module is there;
- anything about a failurePolicy Ignore entry: a warning, never a refusal;
- what is not checked within the review's budget: admitted with a warning
  (the operator checks it): the webhook answers before the API server's
  timeoutSeconds, and a slow plugin only ever delays its own object;
- an UPDATE that leaves the spec as it was, and an object being deleted:
  admitted unchecked (labels, finalizers and the garbage collector's writes
  never fail on a plugin).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from podplug.operator.chains import Chains, ResolvedChain
from podplug.operator.policy import Policy
from podplug.operator.sources import SourceError
from podplug.operator.spec import ModelServing, PluginSpec, PluginType
from podplug.operator.validation import validate
from podplug.runtime import (
    ConfigTooLarge,
    DeadlineExceeded,
    FailurePolicy,
    InvalidConfig,
    LoadError,
    PluginError,
)

log = logging.getLogger("podplug.operator.admission")

#: where the API server sends ModelServing reviews (controller-runtime's naming)
PATH = "/validate-workload-serving-volcano-sh-v1alpha1-modelserving"

#: module errors that waiting does not fix: the object asks for what the
#: operator's policy forbids
_POLICY_DENIALS = frozenset({"NamespacePluginsDenied", "DigestRequired", "RegistryNotAllowed",
                             "InvalidReference"})
#: a warning's length: kubectl prints each on a line of its own
_WARNING_CHARS = 512


@dataclass
class Verdict:
    """Refusals and warnings, each ``path: message``."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.errors

    def message(self) -> str:
        """Kthena's webhook's wording (pkg/model-serving-controller/webhook)."""
        return "validation failed:\n" + "\n".join(f"  - {e}" for e in self.errors)


class Admission:
    def __init__(self, chains: Chains, policy: Policy, *, budget_s: float = 8.0) -> None:
        self.chains = chains
        self.policy = policy
        #: seconds one review may take, the plugin checks included
        self.budget_s = budget_s

    def review(self, review: Mapping[str, Any], *,
               budget_s: float | None = None) -> dict[str, Any]:
        """An AdmissionReview (admission.k8s.io/v1) answered within ``budget_s``
        (at most the configured budget). Raises ValueError on a body that is not one."""
        request = review.get("request") if isinstance(review, Mapping) else None
        if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
            raise ValueError("not an admission.k8s.io/v1 AdmissionReview with a request.uid")
        operation = str(request.get("operation") or "")
        verdict = self.check(request.get("object"), request.get("oldObject"), operation,
                             namespace=str(request.get("namespace") or ""), budget_s=budget_s)
        if not verdict.allowed:
            log.info("refused %s of ModelServing %s/%s: %s", operation,
                     request.get("namespace"), request.get("name"), "; ".join(verdict.errors))
        response: dict[str, Any] = {"uid": request["uid"], "allowed": verdict.allowed}
        if not verdict.allowed:
            # As the API server words its own validation errors: kubectl prints
            # 'The ModelServing "x" is invalid:' and each cause's field.
            kind = request.get("kind") or {}
            response["status"] = {
                "status": "Failure", "code": 422, "reason": "Invalid",
                "message": verdict.message(),
                "details": {"name": request.get("name") or "", "group": kind.get("group", ""),
                            "kind": kind.get("kind", "ModelServing"),
                            "causes": [_cause(e) for e in verdict.errors]}}
        if verdict.warnings:
            response["warnings"] = [w[:_WARNING_CHARS] for w in verdict.warnings]
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": response}

    def check(self, obj: Any, old: Any = None, operation: str = "CREATE", *,
              namespace: str = "", budget_s: float | None = None) -> Verdict:
        """Whether the operator would serve ``obj``, and what it could not check."""
        if operation not in ("CREATE", "UPDATE") or not isinstance(obj, Mapping):
            return Verdict()
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp") or (
                operation == "UPDATE" and isinstance(old, Mapping)
                and old.get("spec") == obj.get("spec")):
            return Verdict()
        obj = dict(obj)
        if namespace and not meta.get("namespace"):
            obj["metadata"] = {**meta, "namespace": namespace}
        budget = self.budget_s if budget_s is None else min(budget_s, self.budget_s)
        deadline = time.monotonic() + budget
        try:
            ms = ModelServing.parse(obj)
        except ValidationError as e:
            return Verdict([f"{_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                            for err in e.errors()])
        verdict = Verdict(validate(ms, max_pods=self.policy.max_pods_per_model_serving))
        self._check_plugins(ms, obj, deadline, verdict)
        return verdict

    def _late(self, i: int, entry: PluginSpec) -> str:
        return (f"spec.plugins[{i}]: plugin {entry.name}: not checked in time (the webhook "
                "answers within its budget); the operator checks it")

    # -- the plugins

    def _check_plugins(self, ms: ModelServing, obj: Mapping[str, Any], deadline: float,
                       verdict: Verdict) -> None:
        entries = ms.spec.plugins
        if not entries:
            return
        results: dict[int, ResolvedChain | tuple[PluginError, bool]] = {}
        lock = threading.Lock()
        left = threading.Semaphore(0)
        ceiling = self.policy.limits.timeout_s

        def check(i: int) -> None:
            remaining = deadline - time.monotonic()
            # Calls end by the deadline: their timeout is lowered to what is left.
            lowered = remaining < ceiling
            try:
                if remaining > 0:
                    outcome: ResolvedChain | tuple[PluginError, bool] = \
                        self.chains.resolve_entry(ms, obj, i, timeout_s=remaining
                                                  if lowered else None)
                    with lock:
                        results[i] = outcome
            except PluginError as e:
                with lock:
                    results[i] = (e, lowered)
            except Exception:  # a bug must not cost the answer
                log.exception("admission: checking plugin %s of %s/%s", entries[i].name,
                              ms.namespace, ms.name)
            finally:
                left.release()

        # A module fetched over the network (a namespace ConfigMap, a registry)
        # is had on a thread of its own, not from a shared pool: one that does
        # not answer holds up only its own entry. The operator's directory is
        # local: those entries run here, each call bounded by the deadline.
        fetched = [i for i, e in enumerate(entries)
                   if e.module is not None and e.module.plugin is None]
        for i in fetched:
            threading.Thread(target=check, args=(i,), daemon=True,
                             name=f"podplug-admission-{i}").start()
        for i in range(len(entries)):
            if i not in fetched:
                check(i)
        for _ in entries:
            if not left.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break
        with lock:
            done = dict(results)
        for i, entry in enumerate(entries):
            outcome = done.get(i)
            if outcome is None:
                verdict.warnings.append(self._late(i, entry))
            elif isinstance(outcome, ResolvedChain):
                self._report_chain(i, entry, outcome, verdict)
            else:
                self._report_error(i, entry, *outcome, verdict)

    def _report_chain(self, i: int, entry: PluginSpec, resolved: ResolvedChain,
                      verdict: Verdict) -> None:
        for rec in resolved.records:
            if rec.outcome == "ignored" and rec.error is not None:
                verdict.warnings.append(f"{_where(i, rec.error)}: {_what(rec.error)} "
                                        "(failurePolicy Ignore: the operator leaves it out)")
        verdict.warnings += [f"spec.plugins[{i}].limits: {m}" for m in resolved.clamped]

    def _report_error(self, i: int, entry: PluginSpec, e: PluginError, lowered: bool,
                      verdict: Verdict) -> None:
        where = _where(i, e, builtin=entry.type == PluginType.BUILT_IN)
        if isinstance(e, DeadlineExceeded) and lowered:
            verdict.warnings.append(self._late(i, entry))
        elif entry.failure_policy is FailurePolicy.IGNORE:
            verdict.warnings.append(f"{where}: {_what(e)} (failurePolicy Ignore: the "
                                    "operator leaves it out)")
        elif (isinstance(e, SourceError) and e.condition not in _POLICY_DENIALS
              and not self.policy.admission_refuses_unavailable):
            verdict.warnings.append(f"{where}: {_what(e)} (not checked: the operator "
                                    "reports it in PluginsReady until the module can be had)")
        else:
            verdict.errors.append(f"{where}: {_what(e)}")


def _where(i: int, e: PluginError, *, builtin: bool = False) -> str:
    """The field a plugin error is about."""
    if isinstance(e, InvalidConfig | ConfigTooLarge):
        return f"spec.plugins[{i}].config"
    if isinstance(e, SourceError | LoadError) or e.hook in ("load", ""):
        return f"spec.plugins[{i}].{'name' if builtin else 'module'}"
    return f"spec.plugins[{i}]"


def _what(e: PluginError) -> str:
    """A config rejection in the plugin's own words; anything else as the
    operator's conditions say it."""
    if isinstance(e, InvalidConfig):
        return f"plugin {e.plugin}: {e.reason}"
    return str(e)


def _path(loc: Sequence[int | str]) -> str:
    """pydantic's location as a Kubernetes field path: spec.template.roles[0].name."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<object>"


def _cause(error: str) -> dict[str, str]:
    path, _, message = error.partition(": ")
    return {"reason": "FieldValueInvalid", "field": path, "message": message}
