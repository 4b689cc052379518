"""What can go wrong between a registry and a verified module. Each error's
``reason`` is a CamelCase condition reason the operator reports as is."""

from __future__ import annotations

from podplug.runtime.errors import PodplugError


class OciError(PodplugError):
    reason = "PullFailed"

    def __init__(self, message: str) -> None:
        self.message = " ".join(message.split())  # one line: it goes into Events
        super().__init__(self.message)


class RegistryUnreachable(OciError):
    """Connection refused, TLS failure, timeout, or a 5xx answer."""

    reason = "RegistryUnreachable"


class RegistryAuthFailed(OciError):
    """401/403: no credentials for the registry, or the wrong ones."""

    reason = "RegistryAuthFailed"


class NotFound(OciError):
    """The registry has no such repository, tag, manifest or blob."""

    reason = "ArtifactNotFound"


class DigestMismatch(OciError):
    """Bytes that do not hash to the digest that named them (a tampered blob or
    manifest, or a registry serving the wrong content)."""

    reason = "DigestMismatch"


class ArtifactInvalid(OciError):
    """A manifest that is not a single-module Wasm artifact."""

    reason = "ArtifactInvalid"


class TooLarge(OciError):
    reason = "ArtifactTooLarge"


class SignatureMissing(OciError):
    """No cosign signature for the digest, and the policy requires one."""

    reason = "SignatureMissing"


class SignatureInvalid(OciError):
    """Signatures exist, but none verifies with the trusted keys for this digest."""

    reason = "SignatureInvalid"
