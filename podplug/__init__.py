"""podplug: sandboxed WebAssembly plugins for Kthena ModelServing Pods."""

__version__ = "0.1.0"
