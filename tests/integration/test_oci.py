"""Plugins from a real OCI registry (CNCF distribution's `registry`, TLS and
htpasswd auth on loopback), signed with a real `cosign sign --key`: `podplug
push`/`pull`, and the operator pulling, verifying and refusing modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from oci_testbed import (
    CosignKey,
    Registry,
    built_tool,
    cosign_key_pair,
    cosign_sign,
    running_registry,
)
from test_operator import (
    Operator,
    condition,
    create,
    eventually,
    model_serving,
    ms_status,
    patch_spec,
    pods,
)

from podplug.cli.main import main
from podplug.devcluster.pods import events_for
from podplug.devcluster.processes import free_port
from podplug.oci.reference import Reference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import wasm


def module(label: str) -> bytes:
    """A distinct test plugin per artifact: it sets ``from-registry=<label>``."""
    return wasm.mutations({"op": "setLabel", "key": "from-registry", "value": label})


def push(registry: Registry, path: Path, ref: str, capsys: Any) -> str:
    capsys.readouterr()
    assert main(["push", str(path), f"{registry.host}/{ref}", "--ca-file",
                 str(registry.ca_file), "--docker-config", str(registry.docker_config)]) == 0
    return capsys.readouterr().out.strip()


def pull(registry: Registry, ref: str, out: Path, *keys: Path) -> int:
    argv = ["pull", ref, "-o", str(out), "--ca-file", str(registry.ca_file),
            "--docker-config", str(registry.docker_config)]
    for key in keys:
        argv += ["--key", str(key)]
    return main(argv)


def pushed(registry: Registry, tmp_path: Path, capsys: Any, name: str,
           signer: tuple[Path, CosignKey] | None = None) -> str:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(module(name))
    ref = push(registry, path, f"team-a/{name}:0.1.0", capsys)
    if signer is not None:
        cosign_sign(*signer, registry, ref)
    return ref


def tamper(registry: Registry, ref: str) -> None:
    """Flip one byte of the module blob in the registry's storage (same size)."""
    manifest = json.loads(registry.blob_file(Reference.parse(ref).digest or "").read_bytes())
    blob = registry.blob_file(manifest["layers"][0]["digest"])
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))


class TestPushAndPull:
    def test_a_pushed_module_pulls_back_byte_for_byte_by_digest_and_by_tag(
        self, registry: Registry, tmp_path: Path, capsys: Any
    ) -> None:
        src = tmp_path / "shm.wasm"
        src.write_bytes(module("roundtrip"))
        ref = push(registry, src, "team-a/shm:0.1.0", capsys)
        assert ref.startswith(f"{registry.host}/team-a/shm:0.1.0@sha256:")
        assert push(registry, src, "team-a/shm:0.1.0", capsys) == ref  # same bytes, same digest
        assert pull(registry, ref, tmp_path / "by-digest.wasm") == 0
        assert pull(registry, f"{registry.host}/team-a/shm:0.1.0", tmp_path / "by-tag.wasm") == 0
        assert (tmp_path / "by-digest.wasm").read_bytes() == src.read_bytes()
        assert (tmp_path / "by-tag.wasm").read_bytes() == src.read_bytes()

    def test_the_manifest_uses_the_wasm_artifact_media_types(
        self, registry: Registry, tmp_path: Path, capsys: Any
    ) -> None:
        ref = pushed(registry, tmp_path, capsys, "media-types")
        manifest = json.loads(registry.blob_file(Reference.parse(ref).digest or "").read_bytes())
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v1+json"
        assert [x["mediaType"] for x in manifest["layers"]] == [
            "application/vnd.wasm.content.layer.v1+wasm"]
        assert manifest["annotations"]["org.opencontainers.image.title"] == "media-types.wasm"

    def test_push_refuses_a_file_that_is_not_a_plugin_and_uploads_nothing(
        self, registry: Registry, tmp_path: Path, capsys: Any
    ) -> None:
        bad = tmp_path / "bad.wasm"
        bad.write_bytes(b"\0asm\1\0\0\0garbage")
        assert main(["push", str(bad), f"{registry.host}/team-a/bad:1", "--ca-file",
                     str(registry.ca_file), "--docker-config", str(registry.docker_config)]) == 1
        assert "bad" in capsys.readouterr().err
        assert pull(registry, f"{registry.host}/team-a/bad:1", tmp_path / "x.wasm") == 1
        assert "not found" in capsys.readouterr().err

    def test_pull_accepts_a_module_signed_with_cosign_sign_key(
        self, registry: Registry, cosign: Path, cosign_key: CosignKey, tmp_path: Path,
        capsys: Any
    ) -> None:
        ref = pushed(registry, tmp_path, capsys, "signed", (cosign, cosign_key))
        assert pull(registry, ref, tmp_path / "out.wasm", cosign_key.public) == 0
        assert f"signed by {cosign_key.public}" in capsys.readouterr().err
        assert (tmp_path / "out.wasm").read_bytes() == module("signed")

    @pytest.mark.parametrize("case", ["unsigned", "wrong key", "tampered blob",
                                      "unreachable registry", "wrong credentials"])
    def test_pull_refuses_with_its_reason_and_writes_nothing(
        self, registry: Registry, cosign: Path, cosign_key: CosignKey, tmp_path: Path,
        capsys: Any, case: str
    ) -> None:
        name = case.replace(" ", "-")
        signer = None if case == "unsigned" else (cosign, cosign_key)
        ref = pushed(registry, tmp_path, capsys, f"pull-{name}", signer)
        key = cosign_key.public
        if case == "wrong key":
            key = cosign_key_pair(cosign, tmp_path / "other", "other").public
        elif case == "tampered blob":
            tamper(registry, ref)
        elif case == "unreachable registry":
            ref = ref.replace(registry.host, f"127.0.0.1:{free_port()}")
        elif case == "wrong credentials":
            creds = tmp_path / "creds.json"
            creds.write_text(json.dumps({"auths": {registry.host: {
                "username": registry.username, "password": "wrong"}}}))
            registry = Registry(registry.host, registry.ca_file, creds, registry.data,
                                registry.username, "wrong")
        out = tmp_path / "out.wasm"
        assert pull(registry, ref, out, key) == 1
        expected = {"unsigned": "is not signed", "wrong key": "none valid for key",
                    "tampered blob": "(tampered or corrupt)",
                    "unreachable registry": "Connection refused",
                    "wrong credentials": f"refused as {registry.username} (HTTP 401)"}[case]
        assert expected in capsys.readouterr().err
        assert not out.exists()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(built_tool("registry"), tmp_path_factory.mktemp("token-registry"),
                          auth="token") as reg:
        yield reg


def test_a_registry_with_token_auth_hands_out_bearer_tokens_for_push_and_pull(
    token_registry: Registry, tmp_path: Path, capsys: Any
) -> None:
    src = tmp_path / "shm.wasm"
    src.write_bytes(module("bearer"))
    ref = push(token_registry, src, "team-a/shm:0.1.0", capsys)
    assert pull(token_registry, ref, tmp_path / "out.wasm") == 0
    assert (tmp_path / "out.wasm").read_bytes() == src.read_bytes()
    assert token_registry.tokens is not None and token_registry.tokens.issued >= 2
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"auths": {token_registry.host: {
        "username": token_registry.username, "password": "wrong"}}}))
    wrong = Registry(token_registry.host, token_registry.ca_file, creds, token_registry.data,
                     token_registry.username, "wrong")
    capsys.readouterr()
    assert pull(wrong, ref, tmp_path / "nope.wasm") == 1
    assert "token service refused (HTTP 401)" in capsys.readouterr().err


# -- the operator

GOOD_LABEL = "good"


@pytest.fixture
def oci_operator(cluster: Any, namespace: str, registry: Registry, cosign_key: CosignKey,
                 tmp_path: Path) -> Any:
    """`podplug operator` with a policy allowing team-a's repositories on the test
    registry (signed by team-a's key) and a fresh cache directory."""
    started: list[Operator] = []

    def start(extra_registries: tuple[str, ...] = ()) -> Operator:
        policy = {"oci": {
            "registries": [{"prefix": f"{p}/team-a/", "keys": ["team-a"]}
                           for p in (registry.host, *extra_registries)],
            "keys": {"team-a": cosign_key.public.read_text()},
            "caFile": str(registry.ca_file), "credentials": str(registry.docker_config)}}
        policy_file = tmp_path / "policy.yaml"
        policy_file.write_text(json.dumps(policy))
        plugins = tmp_path / "plugins"
        plugins.mkdir(exist_ok=True)
        op = Operator(cluster, namespace, plugins, policy_file, tmp_path / "operator.log")
        op.env["PODPLUG_CACHE_DIR"] = str(tmp_path / "cache")
        op.start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
    log = tmp_path / "operator.log"
    if log.exists():
        print(log.read_text()[-6000:])


def small(ref: str) -> dict[str, Any]:
    """One role, one replica, one worker: two Pods, with the registry's plugin."""
    ms = model_serving(plugins=[{"name": "team", "type": "Wasm", "module": {"oci": ref}}])
    ms["spec"]["template"]["roles"] = ms["spec"]["template"]["roles"][:1]
    return ms


def labelled(core: client.CoreV1Api, namespace: str, value: str) -> dict[str, dict[str, Any]]:
    p = pods(core, namespace)
    ok = len(p) == 2 and all(x["metadata"]["labels"].get("from-registry") == value
                             for x in p.values())
    return p if ok else {}


class TestOperatorWithRegistry:
    def test_a_model_serving_whose_plugin_comes_from_the_registry_signed_gets_its_pods(
        self, oci_operator: Callable[..., Operator], registry: Registry, cosign: Path,
        cosign_key: CosignKey, core: client.CoreV1Api, custom: client.CustomObjectsApi,
        namespace: str, tmp_path: Path, capsys: Any
    ) -> None:
        ref = pushed(registry, tmp_path, capsys, GOOD_LABEL, (cosign, cosign_key))
        op = oci_operator()
        create(custom, namespace, small(ref))
        got = eventually(lambda: labelled(core, namespace, GOOD_LABEL), what="two labelled Pods")
        audit = json.loads(next(iter(got.values()))["metadata"]["annotations"][
            "podplug.io/plugins"])
        assert audit[0]["plugin"] == "team"
        eventually(lambda: condition(ms_status(custom, namespace, "llm"), "PluginsReady").get(
            "status") == "True", what="PluginsReady=True")
        # Pulled once, then kept: a restarted operator loads it from its disk cache.
        log = tmp_path / "operator.log"

        def pulls() -> list[str]:
            return [line for line in log.read_text().splitlines() if f"pulled {ref}" in line]

        assert len(pulls()) == 1 and "from the cache" not in pulls()[0]
        op.stop()
        core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
        oci_operator()
        eventually(lambda: labelled(core, namespace, GOOD_LABEL), what="Pods after a restart")
        assert len(pulls()) == 2 and pulls()[1].endswith("from the cache")

    @pytest.mark.parametrize(("case", "reason", "text"), [
        ("unsigned", "SignatureMissing", "is not signed"),
        ("wrong key", "SignatureInvalid", "none valid for key team-a"),
        ("tampered blob", "DigestMismatch", "(tampered or corrupt)"),
        ("unreachable registry", "RegistryUnreachable", "Connection refused"),
        ("registry not allowed", "RegistryNotAllowed", "allows no such registry"),
    ])
    def test_a_refused_module_creates_no_pod_keeps_the_existing_ones_and_says_why(
        self, oci_operator: Callable[..., Operator], registry: Registry, cosign: Path,
        cosign_key: CosignKey, core: client.CoreV1Api, custom: client.CustomObjectsApi,
        namespace: str, tmp_path: Path, capsys: Any, case: str, reason: str, text: str
    ) -> None:
        good = pushed(registry, tmp_path, capsys, GOOD_LABEL, (cosign, cosign_key))
        name = f"op-{case.replace(' ', '-')}"
        dead = f"127.0.0.1:{free_port()}"
        if case == "unsigned":
            bad = pushed(registry, tmp_path, capsys, name)
        elif case == "wrong key":
            other = cosign_key_pair(cosign, tmp_path / "other", "other")
            bad = pushed(registry, tmp_path, capsys, name, (cosign, other))
        elif case == "tampered blob":
            bad = pushed(registry, tmp_path, capsys, name, (cosign, cosign_key))
            tamper(registry, bad)
        elif case == "unreachable registry":  # a digest this operator never pulled
            bad = f"{dead}/team-a/{name}@sha256:{'ab' * 32}"
        else:
            bad = good.replace("/team-a/", "/team-b/")
        oci_operator(extra_registries=(dead,))
        create(custom, namespace, small(good))
        before = eventually(lambda: labelled(core, namespace, GOOD_LABEL), what="two Pods")
        patch_spec(custom, namespace, "llm", {"plugins": [
            {"name": "team", "type": "Wasm", "module": {"oci": bad}}]})
        status = eventually(lambda: (c := condition(ms_status(custom, namespace, "llm"),
                                                    "PluginsReady")).get("status") == "False"
                            and c, what="PluginsReady=False")
        assert status["reason"] == reason and text in status["message"]
        warning = eventually(lambda: [e for e in events_for(core, namespace, "llm")
                                      if e["type"] == "Warning" and e["reason"] == reason],
                             what=f"a {reason} Warning Event")
        assert "plugin team" in warning[0]["message"] and text in warning[0]["message"]
        time.sleep(2)  # a pass or two more: still the same Pods, none new, none deleted
        after = pods(core, namespace)
        assert {n: p["metadata"]["uid"] for n, p in after.items()} == {
            n: p["metadata"]["uid"] for n, p in before.items()}


def test_the_operator_refuses_to_start_with_an_unreadable_registry_ca_file(
    tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(json.dumps({"oci": {"caFile": str(tmp_path / "missing.crt")}}))
    done = subprocess.run([sys.executable, "-m", "podplug.cli.main", "operator", "--policy",
                           str(policy)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBECONFIG": str(tmp_path / "none")})
    assert done.returncode == 2
    assert "oci.caFile" in done.stderr and "is not a readable file" in done.stderr
