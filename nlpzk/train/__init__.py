"""Distributed word2vec: jobs of rounds, workers leasing shards through ZooKeeper, merged parameters.

>>> doc, warnings = create_job(cluster, "w2v", corpus="wiki", vocab="wiki@v3", epochs=5)   # doctest: +SKIP
>>> procs = start_local_workers(cluster.config, "w2v", workers=2)                        # doctest: +SKIP
>>> st = wait(cluster, "w2v", workers=procs)   # done; st["model"], st["model_version"]   # doctest: +SKIP
>>> kv, doc = final_vectors(cluster, "w2v")   # once doc["state"] == "done"               # doctest: +SKIP
"""

from ..cluster import public_functions
from ._model import KERNELS, kernel_of
from .job import HYPER, check_hyper, create_job, delete_job, final_vectors, list_jobs, status, wait
from .local import start_local_workers, stop_local_workers
from .merge import DEFAULT_RULE, RULES
from .worker import Worker, WorkerReport, tidy_finished

__all__ = [
    "HYPER",
    "RULES",
    "DEFAULT_RULE",
    "KERNELS",
    "kernel_of",
    "check_hyper",
    "create_job",
    "delete_job",
    "final_vectors",
    "list_jobs",
    "status",
    "wait",
    "Worker",
    "WorkerReport",
    "start_local_workers",
    "stop_local_workers",
    "tidy_finished",
]

public_functions(globals(), __all__)  # called from outside nlpzk, they raise only NlpzkError
