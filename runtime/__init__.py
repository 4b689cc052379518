"""podplug's sandbox: load WebAssembly plugins, run their hooks under limits,
validate and merge what they return. Never talks to Kubernetes."""

from .chain import (
    AUDIT_ANNOTATION,
    CallRecord,
    Chain,
    ChainEntry,
    ChainError,
    ChainResult,
    FailurePolicy,
    PodContext,
    Scope,
    Target,
)
from .engine import CompiledModule, Engine, ModuleInfo, RawCall
from .errors import (
    AbiMismatch,
    ChainConfigError,
    ConfigInvalid,
    ConfigTooLarge,
    DeadlineExceeded,
    ForbiddenImport,
    InvalidInput,
    InvalidOutput,
    LoadError,
    MemoryLimit,
    MissingExport,
    MutationDenied,
    OutOfFuel,
    PluginError,
    PluginReportedError,
    PodplugError,
    Trap,
    truncate,
)
from .limits import Limits, parse_duration, parse_size

__all__ = [
    "AUDIT_ANNOTATION", "AbiMismatch", "CallRecord", "Chain", "ChainConfigError", "ChainEntry",
    "ChainError", "ChainResult", "CompiledModule", "ConfigInvalid", "ConfigTooLarge",
    "DeadlineExceeded", "Engine",
    "FailurePolicy", "ForbiddenImport", "InvalidInput", "InvalidOutput", "Limits", "LoadError",
    "MemoryLimit", "MissingExport", "ModuleInfo", "MutationDenied", "OutOfFuel", "PluginError",
    "PluginReportedError", "PodContext", "PodplugError", "RawCall", "Scope", "Target", "Trap",
    "parse_duration", "parse_size", "truncate",
]
