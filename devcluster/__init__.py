"""podplug.devcluster: a real kube-apiserver + etcd on loopback for tests and demos."""

from .binaries import BinariesMissing
from .cluster import ClusterError, LocalCluster, project_crds
from .pods import events_for, mark_ready

__all__ = ["BinariesMissing", "ClusterError", "LocalCluster", "events_for", "mark_ready",
           "project_crds"]
