"""The plugin SDKs as package data: `podplug new` copies a template from here and
the scaffold builds against the SDK it names (importlib.resources: podplug.sdk)."""
