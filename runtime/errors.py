"""One error hierarchy for everything a plugin can do wrong.

Every plugin error carries the plugin's name, the hook and a one-line reason, so
the operator can put it in an Event and the CLI can print it as is. The runtime
raises these; what to retry is the operator's business.
"""

from __future__ import annotations

#: characters of plugin-supplied text one message may carry to a status
#: condition, an Event or a log line (Events stop at 1024; a status condition's
#: message at 32768, but nobody reads that much)
MAX_MESSAGE = 1024
#: a plugin error's reason: short enough that "plugin NAME (hook): kind: reason"
#: fits MAX_MESSAGE
MAX_REASON = 768


def truncate(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to at most ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    tail = f"... [{len(text)} characters, truncated]"
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
        # Exactly one line, of bounded length: a plugin chooses this text.
        self.reason = truncate(" ".join(reason.split()), MAX_REASON)
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


class ConfigTooLarge(PluginError):
    """A plugin entry's config is over the policy's size cap (refused before any call)."""

    kind = "config_too_large"

    def describe(self) -> str:
        return f"config too large: {self.reason}"


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
