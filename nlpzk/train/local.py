"""Start and stop worker processes on this machine (``nlpzk train run``'s ``--workers K``).

Each worker is a plain ``python -m nlpzk train worker JOB`` child with the same ZooKeeper and
store settings, exactly what a remote machine would run; nlpzk coordinates, it does not schedule.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..config import _FIELDS, Config
from ..errors import InvalidInputError, TrainingError

_ROOT = Path(__file__).resolve().parents[2]

# Each worker is a process holding its own copy of the model and training on one core (per thread):
# a few per core still fill the cores while others wait at a barrier; more only compete for them
# (and for memory), and a typo (--workers 100000) would fork that many processes.
WORKERS_PER_CORE = 4


def check_local_workers(workers: int, threads: int = 1) -> None:
    """Refuse more local worker processes, or training threads (``workers x threads``; a worker has at
    least one), than :data:`WORKERS_PER_CORE` per core of this machine."""
    cores = os.cpu_count() or 1
    limit = WORKERS_PER_CORE * cores
    if workers > limit:
        raise InvalidInputError(
            f"--workers {workers} is more local worker processes than this machine runs: at most {limit} ({WORKERS_PER_CORE} per core, {cores} cores)",
            hint="each worker holds its own copy of the model; to run more, start nlpzk train worker JOB on other machines",
        )
    if max(workers, 1) * threads > limit:
        # each thread trains on its own core's worth of time: more only wait for the cores (and --threads 100000 would start that many)
        given = f"--threads {threads}" if workers <= 1 else f"--threads {threads} x {workers} local workers"
        raise InvalidInputError(
            f"{given} is {max(workers, 1) * threads} training threads, more than this machine runs: at most {limit} ({WORKERS_PER_CORE} per core, {cores} cores)",
            hint=f"give fewer --threads{'' if workers <= 1 else ' or --workers'}; to train faster, start nlpzk train worker JOB on other machines",
        )


def worker_env(config: Config) -> dict[str, str]:
    """The environment of a local worker: every setting of ``config``, however it was given (flags
    are not inherited; a setting left out here, e.g. ``--acl-others none`` or ``--zk-tls``, would
    silently be the default in the worker)."""
    env = dict(os.environ)
    for name, (env_name, _typ, _secret) in _FIELDS.items():
        value = getattr(config, name)
        if name == "store":
            value = config.store_uri
        if value is None:
            continue
        env[env_name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    # the package may run from a checkout rather than an install
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def start_local_workers(
    config: Config, job: str, workers: int, threads: int = 1, log_dir: str | None = None, cache_mb: int | None = None
) -> list[subprocess.Popen]:
    """Start ``workers`` worker processes; their output goes to ``log_dir/worker-N.log`` (or is dropped).

    ``cache_mb``: each worker's shard cache budget (``nlpzk train worker --cache-mb``; None: its default).
    At most :data:`WORKERS_PER_CORE` per core, threads included (InvalidInputError).
    """
    check_local_workers(workers, threads)
    procs = []
    env = worker_env(config)
    for i in range(workers):
        out = subprocess.DEVNULL
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            out = open(os.path.join(log_dir, f"worker-{i}.log"), "ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "nlpzk", "train", "worker", job, "--threads", str(threads)]
                + ([] if cache_mb is None else ["--cache-mb", str(cache_mb)]),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
    return procs


def check_workers_left(job: str, procs: list[subprocess.Popen], members: dict) -> None:
    """TrainingError when every local worker in ``procs`` has exited and no worker (``members``: the
    job's live workers, as ``train status`` gives them) is in the job, before it finished."""
    if procs and all(p.poll() is not None for p in procs) and not members:
        codes = [p.returncode for p in procs]
        raise TrainingError(f"all local workers exited (codes {codes}) before job {job!r} finished", hint=f"see the worker logs, then: nlpzk train resume {job}")


def stop_local_workers(procs: list[subprocess.Popen], timeout: float = 20.0) -> None:
    """SIGTERM each worker (they leave cleanly), then SIGKILL any that outlive ``timeout``."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
