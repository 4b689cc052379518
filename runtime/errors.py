"""One error hierarchy for everything a plugin can do wrong.

Every plugin error carries the plugin's name, the hook and a one-line reason, so
the operator can put it in an Event and the CLI can print it as is. The runtime
raises these; what to retry is the operator's business.
"""

from __future__ import annotations

#: the most of a plugin's or the API server's text that reaches a status,
#: an Event or a log line (a condition message may hold 32768 bytes)
MESSAGE_LIMIT = 1024


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    tail = f"... ({len(text) - limit} more characters)"
    return text[: max(0, limit - len(tail))] + tail


class PodplugError(Exception):
    """Root of podplug's errors."""


class PluginError(PodplugError):
    """A plugin failed. ``reason`` is one line for humans; ``kind`` is a stable
    machine-readable label (metrics use it as the failure reason) and
    :attr:`condition` the same in the CamelCase of a Kubernetes condition
    reason (``out_of_fuel`` -> ``OutOfFuel``)."""

    kind = "error"

    def __init__(self, plugin: str, hook: str, reason: str) -> None:
        self.plugin = plugin
        self.hook = hook
        self.reason = " ".join(reason.split())  # exactly one line
        super().__init__(str(self))

    @property
    def condition(self) -> str:
        return "".join(part.capitalize() for part in self.kind.split("_")) or "PluginFailed"

    def __str__(self) -> str:
        where = f"plugin {self.plugin}" + (f" ({self.hook})" if self.hook else "")
        return f"{where}: {self.describe()}"

    def describe(self) -> str:
        return self.reason


class LoadError(PluginError):
    """The module is not valid WebAssembly or cannot be compiled."""

    kind = "load"

    def describe(self) -> str:
        return f"cannot load module: {self.reason}"


class ForbiddenImport(LoadError):
    kind = "forbidden_import"

    def describe(self) -> str:
        return f"forbidden import {self.reason}"


class MissingExport(LoadError):
    kind = "missing_export"

    def describe(self) -> str:
        return f"missing export {self.reason}"


class AbiMismatch(LoadError):
    kind = "abi_mismatch"

    def describe(self) -> str:
        return f"ABI mismatch: {self.reason}"


class OutOfFuel(PluginError):
    kind = "out_of_fuel"

    def describe(self) -> str:
        return f"out of fuel: {self.reason}"


class MemoryLimit(PluginError):
    kind = "memory_limit"

    def describe(self) -> str:
        return f"memory limit: {self.reason}"


class DeadlineExceeded(PluginError):
    kind = "deadline_exceeded"

    def describe(self) -> str:
        return f"deadline exceeded: {self.reason}"


class Trap(PluginError):
    """The guest trapped. ``trap_code`` is wasmtime's code name when it gave one
    (UNREACHABLE, STACK_OVERFLOW, ...); the reason includes the guest's panic or
    abort text when it left one."""

    kind = "trap"

    def __init__(self, plugin: str, hook: str, reason: str, trap_code: str | None = None) -> None:
        self.trap_code = trap_code
        super().__init__(plugin, hook, reason)

    def describe(self) -> str:
        return f"trap: {self.reason}"


class InvalidOutput(PluginError):
    """The response is not MessagePack, has the wrong shape, or is too large."""

    kind = "invalid_output"

    def describe(self) -> str:
        return f"invalid output: {self.reason}"


class InvalidInput(PluginError):
    """The host refused to send a request (too large, not encodable)."""

    kind = "invalid_input"

    def describe(self) -> str:
        return f"invalid input: {self.reason}"


class PluginReportedError(PluginError):
    """The plugin answered ``{error: ...}``."""

    kind = "plugin_error"

    def describe(self) -> str:
        return f"plugin error: {self.reason}"


class InvalidConfig(PluginError):
    """``validate_config`` answered ``{valid: false}``, or the config is not a map."""

    kind = "invalid_config"

    def describe(self) -> str:
        return f"invalid config: {self.reason}"


class MutationDenied(PluginError):
    """An operation broke the allow-list or the policy. Names the op's index
    in the plugin's list, the op, and the rule that denied it."""

    kind = "mutation_denied"

    def __init__(self, plugin: str, hook: str, index: int, op: str, rule: str) -> None:
        self.index = index
        self.op = op
        self.rule = rule
        super().__init__(plugin, hook, f"op #{index} {op}: {rule}")

    def describe(self) -> str:
        return f"mutation denied: {self.reason}"


class ChainConfigError(PodplugError):
    """The chain itself is misconfigured (unknown scope target, duplicate names)."""
