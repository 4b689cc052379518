"""The OCI pieces that need no registry: references, the artifact layout,
simple-signing verification, the on-disk cache, and the policy's oci section.
(tests/integration/test_oci.py runs them against a real registry and cosign.)"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pydantic import ValidationError

from podplug.oci import (
    ArtifactInvalid,
    ModuleStore,
    PublicKey,
    Reference,
    Signature,
    SignatureInvalid,
    SignatureMissing,
    verify_signatures,
)
from podplug.oci.artifact import manifest_for, wasm_layer
from podplug.oci.cosign import signatures_in
from podplug.operator.policy import Policy, PolicyError
from podplug.operator.sources import OciModules, SourceError
from podplug.operator.spec import PluginModule

DIGEST = "sha256:" + "ab" * 32
WASM = b"\0asm\1\0\0\0"


class TestReferences:
    @pytest.mark.parametrize(("text", "parts"), [
        ("registry.example.com/team-a/shm:0.1.0",
         ("registry.example.com", "team-a/shm", "0.1.0", None)),
        (f"127.0.0.1:5000/shm@{DIGEST}", ("127.0.0.1:5000", "shm", None, DIGEST)),
        (f"localhost/a/b/c:v1@{DIGEST}", ("localhost", "a/b/c", "v1", DIGEST)),
    ])
    def test_a_reference_parses_into_registry_repository_tag_and_digest(
        self, text: str, parts: tuple[Any, ...]
    ) -> None:
        ref = Reference.parse(text)
        assert (ref.registry, ref.repository, ref.tag, ref.digest) == parts
        assert str(ref) == text

    @pytest.mark.parametrize(("text", "why"), [
        ("team-a/shm:0.1.0", "name the registry"),
        ("shm", "name the registry"),
        ("registry.example.com/Team/shm", "is not an OCI reference"),
        ("registry.example.com/shm@sha256:abc", "is not an OCI reference"),
        ("registry.example.com/shm@md5:" + "a" * 32, "is not an OCI reference"),
    ])
    def test_a_bad_reference_is_refused_with_the_form_expected(self, text: str, why: str) -> None:
        with pytest.raises(ValueError, match=why):
            Reference.parse(text)

    def test_module_oci_must_be_pinned_by_digest_and_is_the_only_source(self) -> None:
        assert PluginModule.model_validate({"oci": f"r.io/team/shm@{DIGEST}"}).oci
        with pytest.raises(ValidationError, match="must be pinned by digest"):
            PluginModule.model_validate({"oci": "r.io/team/shm:0.1.0"})
        with pytest.raises(ValidationError, match="exactly one of plugin, configMapRef or oci"):
            PluginModule.model_validate({"oci": f"r.io/t/s@{DIGEST}", "plugin": "gpu"})


class TestArtifact:
    def test_the_manifest_is_canonical_so_a_re_push_keeps_its_digest(self) -> None:
        a = manifest_for(WASM, {"org.opencontainers.image.title": "x.wasm"})
        assert a == manifest_for(WASM, {"org.opencontainers.image.title": "x.wasm"})
        layer = wasm_layer(a, "x")
        assert (layer.digest, layer.size) == ("sha256:" + hashlib.sha256(WASM).hexdigest(), 8)

    @pytest.mark.parametrize("media_type", [
        "application/vnd.wasm.content.layer.v1+wasm", "application/wasm",
        "application/vnd.module.wasm.content.layer.v1+wasm"])
    def test_the_wasm_layer_is_found_in_each_layout_the_ecosystem_uses(self, media_type: str
                                                                       ) -> None:
        manifest = json.dumps({"layers": [
            {"mediaType": "text/plain", "digest": DIGEST, "size": 1},
            {"mediaType": media_type, "digest": DIGEST, "size": 8}]}).encode()
        assert wasm_layer(manifest, "x").media_type == media_type

    @pytest.mark.parametrize(("manifest", "why"), [
        (b"not json", "not an image manifest"),
        (json.dumps({"mediaType": "application/vnd.oci.image.index.v1+json",
                     "manifests": []}).encode(), "not an image manifest"),
        (json.dumps({"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                 "digest": DIGEST, "size": 1}]}).encode(),
         "found 0 among application/vnd.oci.image.layer.v1.tar+gzip"),
        (json.dumps({"layers": [{"mediaType": "application/wasm", "digest": DIGEST, "size": 1},
                                {"mediaType": "application/wasm", "digest": DIGEST,
                                 "size": 1}]}).encode(), "found 2"),
        (json.dumps({"layers": [{"mediaType": "application/wasm", "digest": "sha256:x",
                                 "size": 1}]}).encode(), "no sha256 digest"),
    ])
    def test_anything_but_one_wasm_layer_is_refused_saying_what_was_found(
        self, manifest: bytes, why: str
    ) -> None:
        with pytest.raises(ArtifactInvalid, match=re.escape(why)):
            wasm_layer(manifest, "x")


def payload(digest: str = DIGEST, kind: str = "cosign container image signature") -> bytes:
    return json.dumps({"critical": {"identity": {"docker-reference": "r.io/team/shm"},
                                    "image": {"docker-manifest-digest": digest}, "type": kind},
                       "optional": None}).encode()


def pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def ecdsa_signed(data: bytes) -> tuple[PublicKey, Signature]:
    key = ec.generate_private_key(ec.SECP256R1())
    return PublicKey("ec", pem(key)), Signature(data, key.sign(data, ec.ECDSA(hashes.SHA256())))


class TestSignatures:
    def test_an_ecdsa_rsa_or_ed25519_signature_over_the_payload_verifies(self) -> None:
        data = payload()
        ec_key = ec.generate_private_key(ec.SECP256R1())
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ed_key = ed25519.Ed25519PrivateKey.generate()
        for name, key, sig in [
            ("ec", ec_key, ec_key.sign(data, ec.ECDSA(hashes.SHA256()))),
            ("rsa", rsa_key, rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())),
            ("ed", ed_key, ed_key.sign(data)),
        ]:
            trusted = PublicKey(name, pem(key))
            assert verify_signatures([Signature(data, sig)], DIGEST, [trusted], "x") is trusted

    def test_no_signature_is_signature_missing(self) -> None:
        key, _ = ecdsa_signed(payload())
        with pytest.raises(SignatureMissing, match="is not signed"):
            verify_signatures([], DIGEST, [key], "x")

    def test_another_keys_signature_is_signature_invalid_naming_the_trusted_key(self) -> None:
        _, sig = ecdsa_signed(payload())
        other, _ = ecdsa_signed(payload())
        with pytest.raises(SignatureInvalid, match="none valid for key ec"):
            verify_signatures([sig], DIGEST, [other], "x")

    def test_a_valid_signature_over_another_digest_does_not_count(self) -> None:
        key, sig = ecdsa_signed(payload("sha256:" + "cd" * 32))
        with pytest.raises(SignatureInvalid, match="for another digest"):
            verify_signatures([sig], DIGEST, [key], "x")

    def test_a_payload_of_another_type_does_not_count(self) -> None:
        key, sig = ecdsa_signed(payload(kind="something else"))
        with pytest.raises(SignatureInvalid):
            verify_signatures([sig], DIGEST, [key], "x")

    def test_a_tampered_payload_does_not_verify(self) -> None:
        key, sig = ecdsa_signed(payload())
        forged = Signature(sig.payload.replace(b"r.io", b"x.io"), sig.signature)
        with pytest.raises(SignatureInvalid):
            verify_signatures([forged], DIGEST, [key], "x")

    def test_the_signature_manifest_yields_each_simple_signing_layer(self) -> None:
        manifest = json.dumps({"layers": [
            {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": DIGEST,
             "annotations": {"dev.cosignproject.cosign/signature":
                             base64.b64encode(b"sig").decode()}},
            {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": DIGEST},
            {"mediaType": "application/json", "digest": DIGEST}]}).encode()
        assert signatures_in(manifest) == [(DIGEST, b"sig")]

    def test_a_key_that_is_not_a_pem_public_key_is_refused(self) -> None:
        with pytest.raises(ValueError, match="key team: not a PEM public key"):
            PublicKey("team", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


class TestStore:
    def test_a_blob_reads_back_and_a_corrupted_one_is_dropped(self, tmp_path: Path) -> None:
        store = ModuleStore(tmp_path)
        digest = store.put_blob(WASM)
        assert store.blob(digest) == WASM
        (tmp_path / "blobs" / "sha256" / digest[7:]).write_bytes(WASM + b"x")
        assert store.blob(digest) is None
        assert not (tmp_path / "blobs" / "sha256" / digest[7:]).exists()

    def test_signatures_read_back(self, tmp_path: Path) -> None:
        store = ModuleStore(tmp_path)
        sigs = [Signature(b"payload", b"sig")]
        store.put_signatures(DIGEST, sigs)
        assert store.signatures(DIGEST) == sigs
        assert store.signatures("sha256:" + "00" * 32) == []

    def test_an_unwritable_cache_costs_a_refetch_not_an_error(self, tmp_path: Path) -> None:
        (tmp_path / "blobs").write_text("a file where a folder should be")
        store = ModuleStore(tmp_path)
        digest = store.put_blob(WASM)
        assert store.blob(digest) is None


KEY = pem(ec.generate_private_key(ec.SECP256R1())).decode()


class TestPolicy:
    def test_the_oci_section_parses(self, tmp_path: Path) -> None:
        ca = tmp_path / "ca.crt"
        ca.write_text("x")
        policy = Policy.from_dict({"oci": {
            "registries": [{"prefix": "r.io/team-a/", "keys": ["team-a"]},
                           {"prefix": "r.io", "keys": ["team-a"]}],
            "keys": {"team-a": KEY}, "caFile": str(ca)}})
        rule = policy.oci.registry_for(Reference.parse(f"r.io/team-a/shm@{DIGEST}"))
        assert rule is not None and rule.prefix == "r.io/team-a/"
        assert [k.name for k in rule.keys] == ["team-a"]
        assert policy.oci.registry_for(Reference.parse("r.io/team-b/shm")).prefix == "r.io"
        assert policy.oci.registry_for(Reference.parse("r.io.evil.com/team-a/shm")) is None
        assert policy.oci.registry_for(Reference.parse("r.io/team-ab/shm")).prefix == "r.io"

    def test_no_oci_section_allows_no_registry(self) -> None:
        assert Policy.from_dict({}).oci.registry_for(Reference.parse("r.io/x")) is None

    @pytest.mark.parametrize(("oci", "why"), [
        ({"registries": [{"prefix": "r.io/t/"}]}, "requireSignature is on, so the entry needs"),
        ({"registries": [{"prefix": "r.io/t/", "keys": ["nope"]}]}, "no key named 'nope'"),
        ({"registries": [{"prefix": "team-a/"}]}, "registries[0].prefix"),
        ({"registries": [{"prefix": "r.io/t/", "key": "x"}]}, "unknown field 'key'"),
        ({"keys": {"team": "not a key"}}, "oci.keys.team"),
        ({"requireSignature": "yes"}, "requireSignature must be true or false"),
        ({"credentials": "/nonexistent/config.json"}, "oci.credentials"),
        ({"registry": []}, "unknown field 'registry'"),
    ])
    def test_a_bad_oci_section_is_refused_naming_the_field(self, oci: dict[str, Any],
                                                           why: str) -> None:
        with pytest.raises(PolicyError) as e:
            Policy.from_dict({"oci": oci})
        assert why in str(e.value)

    def test_without_require_signature_an_entry_needs_no_keys(self) -> None:
        policy = Policy.from_dict({"oci": {"requireSignature": False,
                                           "registries": [{"prefix": "r.io/t/"}]}})
        assert policy.oci.registry_for(Reference.parse("r.io/t/x")).keys == ()


class TestOciSource:
    def test_a_registry_outside_the_allow_list_is_refused_before_any_network(
        self, tmp_path: Path
    ) -> None:
        policy = Policy.from_dict({"oci": {"registries": [{"prefix": "r.io/team-a/",
                                                           "keys": ["a"]}], "keys": {"a": KEY}}})
        source = OciModules(policy.oci, ModuleStore(tmp_path))
        with pytest.raises(SourceError) as e:
            source.find(f"r.io/team-b/shm@{DIGEST}", "team")
        assert e.value.condition == "RegistryNotAllowed"
        assert "(allowed: r.io/team-a/)" in e.value.reason
        with pytest.raises(SourceError) as e:
            source.find("r.io/team-a/shm:0.1.0", "team")
        assert e.value.condition == "DigestRequired"
