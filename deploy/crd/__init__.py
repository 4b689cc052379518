"""podplug's CRDs as package data, for `podplug dev-cluster up` from a wheel
(importlib.resources: podplug.crds)."""
