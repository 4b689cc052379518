"""ABI constants: the names and signatures of docs/abi.md, in one place."""

from __future__ import annotations

#: the version this host's SDKs build and its requests default to
ABI_VERSION = 2
#: every version the host still runs. A v1 module (built with an SDK before
#: the v2 request) gets the v1 request: the whole ModelServing, no ``role``.
SUPPORTED_VERSIONS = (1, 2)

ABI_VERSION_EXPORT = "podplug_abi_version"
ALLOC_EXPORT = "podplug_alloc"

#: hook name (as in requests) -> export name
HOOK_EXPORTS: dict[str, str] = {
    "create": "podplug_on_pod_create",
    "ready": "podplug_on_pod_ready",
    "validate_config": "podplug_validate_config",
}
HOOKS = tuple(HOOK_EXPORTS)

#: (params, results) of each required export
REQUIRED_EXPORTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ABI_VERSION_EXPORT: ((), ("i32",)),
    ALLOC_EXPORT: (("i32",), ("i32",)),
}
HOOK_SIGNATURE: tuple[tuple[str, ...], tuple[str, ...]] = (("i32", "i32"), ("i64",))

#: the only imports a plugin may have: (module, name) -> (params, results)
ALLOWED_IMPORTS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("podplug", "log"): (("i32", "i32", "i32"), ()),
    ("env", "abort"): (("i32", "i32", "i32", "i32"), ()),
}

LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_PANIC = range(5)
LOG_LEVEL_NAMES = ("debug", "info", "warn", "error", "panic")

METADATA_SECTION = "podplug.metadata"


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated LEB128")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def custom_section(wasm: bytes, name: str) -> bytes | None:
    """The payload of the first custom section called ``name``, or None.
    (wasmtime-py does not expose custom sections; the format is simple.)"""
    want = name.encode()
    pos = 8  # magic + version
    while pos < len(wasm):
        section_id = wasm[pos]
        size, pos = _leb128(wasm, pos + 1)
        end = pos + size
        if section_id == 0:
            name_len, p = _leb128(wasm, pos)
            if wasm[p:p + name_len] == want:
                return wasm[p + name_len:end]
        pos = end
    return None
