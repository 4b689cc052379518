"""The shipped plugins as package data (NAME/NAME.wasm): the modules behind Kthena's
BuiltIn names and the accelerator defaults (importlib.resources: podplug.plugins)."""
