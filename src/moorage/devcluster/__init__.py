"""A real local Kubernetes as plain child processes: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes), for the demo and the tests. Standard library only."""

from moorage.devcluster.cluster import ClusterStatus, DevCluster, Ports, down, find, list_clusters, status, up
from moorage.devcluster.errors import ComponentFailed, DevclusterError

__all__ = [
    "ClusterStatus",
    "ComponentFailed",
    "DevCluster",
    "DevclusterError",
    "Ports",
    "down",
    "find",
    "list_clusters",
    "status",
    "up",
]
