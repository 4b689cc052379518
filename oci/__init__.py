"""Plugin modules as OCI artifacts: push, pull, verify, cache.

A module travels as a one-layer OCI artifact in the layout Kubewarden and
wasm-to-oci use (config ``application/vnd.wasm.config.v1+json``, layer
``application/vnd.wasm.content.layer.v1+wasm``); pulls also accept the CNCF
Wasm OCI artifact layout (``application/wasm``). Signatures are cosign's
"simple signing" payloads, verified offline against public keys. Imports
nothing from the operator or the CLI, and never the Kubernetes client.
"""

from .cosign import PublicKey, Signature, verify_signatures
from .errors import (
    ArtifactInvalid,
    DigestMismatch,
    NotFound,
    OciError,
    RegistryAuthFailed,
    RegistryUnreachable,
    SignatureInvalid,
    SignatureMissing,
    TooLarge,
)
from .reference import Reference
from .registry import Credentials, Registry, load_docker_config
from .store import ModuleStore
from .transfer import Pulled, pull, push

__all__ = [
    "ArtifactInvalid",
    "Credentials",
    "DigestMismatch",
    "ModuleStore",
    "NotFound",
    "OciError",
    "PublicKey",
    "Pulled",
    "Reference",
    "Registry",
    "RegistryAuthFailed",
    "RegistryUnreachable",
    "Signature",
    "SignatureInvalid",
    "SignatureMissing",
    "TooLarge",
    "load_docker_config",
    "pull",
    "push",
    "verify_signatures",
]
