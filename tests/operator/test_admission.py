"""What the admission webhook answers, offline: the real engine, the shipped
plugins and hostile modules, no API server (tests/integration/test_webhook.py
has the API server's side)."""

from __future__ import annotations

import base64
import copy
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm

from podplug.operator.admission import Admission
from podplug.operator.chains import Chains
from podplug.operator.policy import Policy
from podplug.operator.sources import PluginDirectory, shipped_plugins_dir
from podplug.runtime import Engine, Limits

VALIDATE = "podplug_validate_config"
HOSTILE = {
    "loop": f"""(func (export "{VALIDATE}") (param i32 i32) (result i64)
                 (loop $l br $l) i64.const 0)""",
    "trap": f"""(func (export "{VALIDATE}") (param i32 i32) (result i64) unreachable)""",
    "bomb": f"""(func (export "{VALIDATE}") (param i32 i32) (result i64)
                 (loop $l i32.const 16 memory.grow i32.const -1 i32.ne br_if $l)
                 unreachable)""",
    "garbage": f"""(data (i32.const 16) "\\c1\\c1\\c1\\c1")
                  (func (export "{VALIDATE}") (param i32 i32) (result i64)
                   i64.const 68719476740)""",  # (16 << 32) | 4: four bytes msgpack never uses
}


def hostile(body: str) -> bytes:
    return wasm.wat(f'(module (memory (export "memory") 1) {wasm.ALLOC} {body})')


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with Engine(disk_cache=False) as e:
        yield e


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("plugins")
    for name, body in HOSTILE.items():
        (d / f"{name}.wasm").write_bytes(hostile(body))
    (d / "not-wasm.wasm").write_bytes(b"\0asm but not really")
    return d


CONFIGMAPS: dict[tuple[str, str], dict[str, Any]] = {}


def admission(engine: Engine, plugins: Path, policy: Policy | None = None, *,
              budget_s: float = 8.0) -> Admission:
    policy = policy or Policy()
    shipped = shipped_plugins_dir()
    assert shipped is not None
    chains = Chains(engine, PluginDirectory([plugins, shipped]), policy,
                    lambda ns, name: CONFIGMAPS.get((ns, name)))
    return Admission(chains, policy, budget_s=budget_s)


def model_serving(*plugins: dict[str, Any], image: str = "vllm/vllm-openai:v0.10.0"
                  ) -> dict[str, Any]:
    container = {"name": "vllm", "image": image}
    return {"apiVersion": "workload.serving.volcano.sh/v1alpha1", "kind": "ModelServing",
            "metadata": {"name": "llama", "namespace": "team-a", "uid": "u1", "generation": 1},
            "spec": {"replicas": 1, "plugins": list(plugins), "template": {"roles": [
                {"name": "decode", "replicas": 1, "workerReplicas": 1,
                 "entryTemplate": {"spec": {"containers": [container]}},
                 "workerTemplate": {"spec": {"containers": [container]}}}]}}}


DEMO_CHAIN = [
    {"name": "lws-standard-labels", "type": "BuiltIn"},
    {"name": "entry-address-file", "type": "Wasm",
     "module": {"plugin": "entry-address-file"}},
    {"name": "gpu", "type": "Wasm", "module": {"plugin": "nvidia-gpu-defaults"},
     "config": {"gpuCount": 8}},
]


def demo(**gpu_config: Any) -> list[dict[str, Any]]:
    chain = copy.deepcopy(DEMO_CHAIN)
    if gpu_config:
        chain[2]["config"] = gpu_config
    return chain


def wasm_entry(name: str, module: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "Wasm", "module": {"plugin": module}, **kw}


class TestConfigs:
    def test_the_demo_chain_is_admitted_without_warnings(self, engine: Engine,
                                                         plugins: Path) -> None:
        verdict = admission(engine, plugins).check(model_serving(*demo()))
        assert (verdict.errors, verdict.warnings) == ([], [])

    def test_a_config_typo_is_refused_with_its_field_path_and_the_plugins_own_words(
            self, engine: Engine, plugins: Path) -> None:
        verdict = admission(engine, plugins).check(model_serving(*demo(gpuCont=8)))
        assert verdict.errors == ["spec.plugins[2].config: plugin gpu: unknown field `gpuCont`, "
                                  "expected one of `runtimeClassName`, `gpuResourceName`, "
                                  "`gpuCount`, `containers`, `shm`, `shmSize`, "
                                  "`tolerateGpuTaint`, `gpuProduct`, `ncclEnv`, `overwrite`"]
        assert verdict.message().startswith("validation failed:\n  - spec.plugins[2].config: ")

    def test_every_entry_is_checked_so_a_missing_module_hides_no_typo(
            self, engine: Engine, plugins: Path) -> None:
        verdict = admission(engine, plugins).check(model_serving(
            wasm_entry("later", "not-shipped-yet"), *demo(gpuCont=8)[1:]))
        assert [e.split(":")[0] for e in verdict.errors] == ["spec.plugins[2].config"]
        assert verdict.warnings == [
            "spec.plugins[0].module: plugin later (load): no module 'not-shipped-yet' in the "
            "operator's plugin directory (not checked: the operator reports it in "
            "PluginsReady until the module can be had)"]

    def test_a_failure_policy_ignore_entry_never_blocks(self, engine: Engine,
                                                         plugins: Path) -> None:
        chain = demo(gpuCont=8)
        chain[2]["failurePolicy"] = "Ignore"
        chain.append(wasm_entry("looping", "loop", failurePolicy="Ignore"))
        chain.append(wasm_entry("absent", "absent", failurePolicy="Ignore"))
        verdict = admission(engine, plugins).check(model_serving(*chain))
        assert verdict.errors == []
        assert [w.split(": ")[0] for w in verdict.warnings] == [
            "spec.plugins[2].config", "spec.plugins[3]", "spec.plugins[4].module"]
        assert all(w.endswith("(failurePolicy Ignore: the operator leaves it out)")
                   for w in verdict.warnings)

    def test_limits_above_the_policy_are_a_warning(self, engine: Engine,
                                                   plugins: Path) -> None:
        chain = demo()
        chain[2]["limits"] = {"fuel": 10**12}
        verdict = admission(engine, plugins).check(model_serving(*chain))
        assert verdict.errors == []
        assert verdict.warnings == ["spec.plugins[2].limits: plugin gpu: fuel above the "
                                    "operator's policy, lowered to it"]


class TestModules:
    def cm_entry(self, **module: Any) -> dict[str, Any]:
        return {"name": "team", "type": "Wasm",
                "module": {"configMapRef": {"name": "mods", "key": "plugin.wasm"}, **module}}

    def test_a_configmap_not_there_yet_is_admitted_unless_the_policy_refuses(
            self, engine: Engine, plugins: Path) -> None:
        open_policy = Policy(namespace_plugins_allowed=True, require_sha256=False)
        verdict = admission(engine, plugins, open_policy).check(model_serving(self.cm_entry()))
        assert verdict.errors == []
        assert verdict.warnings[0].startswith(
            "spec.plugins[0].module: plugin team (load): ConfigMap team-a/mods not found")
        strict = Policy(namespace_plugins_allowed=True, require_sha256=False,
                        admission_refuses_unavailable=True)
        verdict = admission(engine, plugins, strict).check(model_serving(self.cm_entry()))
        assert verdict.errors == ["spec.plugins[0].module: plugin team (load): ConfigMap "
                                  "team-a/mods not found"]

    def test_a_digest_that_does_not_match_yet_is_admitted_with_a_warning(
            self, engine: Engine, plugins: Path) -> None:
        CONFIGMAPS[("team-a", "mods")] = {"binaryData": {"plugin.wasm": base64.b64encode(
            wasm.mutations()).decode()}}
        try:
            verdict = admission(engine, plugins, Policy(namespace_plugins_allowed=True)).check(
                model_serving(self.cm_entry(sha256="0" * 64)))
        finally:
            del CONFIGMAPS[("team-a", "mods")]
        assert verdict.errors == []
        assert "pinned 0000" in verdict.warnings[0]

    def test_a_module_the_policy_forbids_is_refused(self, engine: Engine,
                                                    plugins: Path) -> None:
        verdict = admission(engine, plugins).check(model_serving(self.cm_entry()))
        assert verdict.errors == [
            "spec.plugins[0].module: plugin team (load): configmap:team-a/mods[plugin.wasm]: "
            "the operator's policy does not allow modules from namespace ConfigMaps"]

    def test_a_module_that_is_not_a_plugin_is_refused(self, engine: Engine,
                                                      plugins: Path) -> None:
        verdict = admission(engine, plugins).check(model_serving(wasm_entry("x", "not-wasm")))
        assert len(verdict.errors) == 1
        assert verdict.errors[0].startswith("spec.plugins[0].module: plugin x: cannot load "
                                            "module: ")


class TestHostilePlugins:
    @pytest.mark.parametrize(("module", "fuel", "what"), [
        ("loop", 50_000_000, "(validate_config): out of fuel"),
        ("loop", 10**15, "(validate_config): deadline exceeded"),
        ("trap", 50_000_000, "(validate_config): trap"),
        ("bomb", 50_000_000, "(validate_config): memory limit"),
        ("garbage", 50_000_000, "(validate_config): invalid output"),
    ])
    def test_a_hostile_plugin_fails_its_own_object_with_what_it_did(
            self, engine: Engine, plugins: Path, module: str, fuel: int, what: str) -> None:
        policy = Policy(limits=Limits(fuel=fuel, timeout_s=0.2, memory_bytes=8 << 20))
        verdict = admission(engine, plugins, policy).check(model_serving(
            *demo(), wasm_entry("bad", module)))
        assert [e.split(": ", 1)[0] for e in verdict.errors] == ["spec.plugins[3]"]
        assert verdict.errors[0].startswith(f"spec.plugins[3]: plugin bad {what}")

    def test_a_slow_plugin_delays_only_its_own_review(self, engine: Engine,
                                                      plugins: Path) -> None:
        policy = Policy(limits=Limits(fuel=10**15, timeout_s=1.0))
        a = admission(engine, plugins, policy)
        slow: list[Any] = []
        t = threading.Thread(target=lambda: slow.append(
            a.check(model_serving(wasm_entry("bad", "loop")))))
        t.start()
        time.sleep(0.05)  # the loop is running
        started = time.monotonic()
        fast = a.check(model_serving(*demo(gpuCont=1)))
        elapsed = time.monotonic() - started
        t.join()
        assert fast.errors[0].startswith("spec.plugins[2].config: plugin gpu: unknown field")
        assert slow[0].errors[0].startswith("spec.plugins[0]: plugin bad (validate_config): "
                                            "deadline exceeded")
        assert elapsed < 0.5, f"the valid object waited {elapsed:.2f}s for the hostile one"

    def test_a_review_answers_within_its_budget_and_says_what_it_did_not_check(
            self, engine: Engine, plugins: Path) -> None:
        a = admission(engine, plugins, Policy(limits=Limits(fuel=10**15, timeout_s=5.0)),
                      budget_s=0.3)
        started = time.monotonic()
        verdict = a.check(model_serving(*demo(), wasm_entry("bad", "loop")))
        elapsed = time.monotonic() - started
        assert elapsed < 1.0
        assert verdict.errors == []
        assert verdict.warnings == ["spec.plugins[3]: plugin bad: not checked in time (the "
                                    "webhook answers within its budget); the operator "
                                    "checks it"]


class TestSpec:
    def test_an_image_with_a_space_is_refused_with_kthenas_message(
            self, engine: Engine, plugins: Path) -> None:
        verdict = admission(engine, plugins).check(model_serving(image="nginx 1.25"))
        assert verdict.message() == (
            "validation failed:\n"
            "  - spec.template.roles[0].entryTemplate.spec.containers[0].image: Invalid value: "
            "'nginx 1.25': invalid container image reference: image cannot contain spaces\n"
            "  - spec.template.roles[0].workerTemplate.spec.containers[0].image: Invalid "
            "value: 'nginx 1.25': invalid container image reference: image cannot contain "
            "spaces")

    def test_a_spec_the_models_refuse_is_refused_with_kubernetes_field_paths(
            self, engine: Engine, plugins: Path) -> None:
        obj = model_serving()
        obj["spec"]["template"]["roles"][0]["name"] = "Decode"
        verdict = admission(engine, plugins).check(obj)
        assert verdict.errors == ["spec.template.roles[0].name: role name 'Decode' must be a "
                                  "DNS-1035 label of at most 12 chars"]

    def test_an_update_that_keeps_the_spec_and_a_deletion_are_not_checked(
            self, engine: Engine, plugins: Path) -> None:
        a = admission(engine, plugins)
        bad = model_serving(*demo(gpuCont=8), image="nginx 1.25")
        relabelled = copy.deepcopy(bad)
        relabelled["metadata"]["labels"] = {"team": "a"}
        assert a.check(relabelled, bad, "UPDATE").allowed
        deleting = copy.deepcopy(bad)
        deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        deleting["spec"]["replicas"] = 2
        assert a.check(deleting, bad, "UPDATE").allowed
        changed = copy.deepcopy(bad)
        changed["spec"]["replicas"] = 2
        assert not a.check(changed, bad, "UPDATE").allowed


def test_an_admission_review_is_answered_with_its_uid_a_422_and_a_cause_per_field(
        engine: Engine, plugins: Path) -> None:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": "r-1", "operation": "CREATE", "namespace": "team-a",
                          "name": "llama", "object": model_serving(*demo(gpuCont=8))}}
    answer = admission(engine, plugins).review(review)
    response = answer["response"]
    assert (answer["kind"], response["uid"], response["allowed"]) == ("AdmissionReview", "r-1",
                                                                      False)
    assert (response["status"]["code"], response["status"]["reason"]) == (422, "Invalid")
    (cause,) = response["status"]["details"]["causes"]
    assert cause["field"] == "spec.plugins[2].config"
    assert cause["message"].startswith("plugin gpu: unknown field `gpuCont`")
    with pytest.raises(ValueError):
        admission(engine, plugins).review({"request": {}})
