"""Running the dataset-scale jobs on a Ray cluster: ``with fw.cluster(): ...`` (see :mod:`.session`)."""
from .session import Cluster, ClusterError, cluster, current
from .worker import WorkerMismatch

__all__ = ["Cluster", "ClusterError", "WorkerMismatch", "cluster", "current"]
