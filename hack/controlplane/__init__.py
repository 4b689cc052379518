"""The control plane's build files as package data, so `podplug dev-cluster build`
works from a wheel (importlib.resources: podplug.controlplane)."""
