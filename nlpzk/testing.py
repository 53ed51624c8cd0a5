"""Real ZooKeeper for tests and benchmarks: servers, per-test chroots, session expiry, member stops.

Modelled on ``kazoo/testing``: a real ``java ... QuorumPeerMain`` per server. Nothing here fakes
ZooKeeper; if Java or ZooKeeper is missing, :func:`find_install` raises and the tests fail loudly.
The servers, and every process started after them, die with the process that started them
(:func:`reap_at_exit`), even when it is killed: a timed-out test run leaks no Java.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

from kazoo.client import KazooClient, KazooState

from ._children import reap_at_exit
from .cluster import Cluster
from .config import Config
from .zk.server import Ensemble, LocalServer, find_install, free_port

__all__ = ["start_standalone", "start_ensemble", "expire_session", "cluster_for", "config_for", "reap_at_exit", "LocalServer", "Ensemble"]


def start_standalone(base_dir: str | os.PathLike[str], tick_ms: int = 200) -> LocalServer:
    """A fast standalone server (no fsync, short ticks so sessions can expire in about a second),
    killed when this process ends (:func:`reap_at_exit`)."""
    reap_at_exit()
    server = LocalServer(Path(base_dir), free_port(), tick_ms=tick_ms, fsync=False, install=find_install())
    server.start()
    return server


def start_ensemble(base_dir: str | os.PathLike[str], servers: int = 3, tick_ms: int = 200) -> Ensemble:
    """Like :func:`start_standalone`, ``servers`` of them in one ensemble, once it has a leader."""
    reap_at_exit()
    ens = Ensemble(Path(base_dir), servers, tick_ms=tick_ms, fsync=False, install=find_install())
    ens.start()
    ens.wait_for_leader()
    return ens


def config_for(hosts: str, store: str | os.PathLike[str], chroot: str | None = None, **kwargs) -> Config:
    """A config pointing at ``hosts`` under a fresh chroot (one per test) and a store directory."""
    chroot = chroot or f"/test-{uuid.uuid4().hex[:12]}"
    flags = dict(zk=f"{hosts}{chroot}", store=str(store), connect_timeout=10.0, session_timeout=kwargs.pop("session_timeout", 4.0))
    flags.update(kwargs)
    return Config.resolve(flags=flags, environ={}, toml_path=None)


def cluster_for(hosts: str, store: str | os.PathLike[str], chroot: str | None = None, **kwargs) -> Cluster:
    return Cluster.connect(config_for(hosts, store, chroot, **kwargs))


def env_for(config: Config, state_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Environment variables that make a child ``nlpzk`` process use ``config`` (and ``state_dir``).

    ``COLUMNS`` is set wide so rich does not wrap the lines tests read.
    """
    env = dict(os.environ)
    env.update(NLPZK_ZK=config.zk or "", NLPZK_STORE=config.store_uri, NLPZK_SESSION_TIMEOUT=str(config.session_timeout))
    if config.auth:
        env["NLPZK_AUTH"] = config.auth
    if state_dir is not None:
        env.update(NLPZK_STATE_DIR=str(state_dir), COLUMNS="200")
    return env


def expire_session(client: KazooClient, hosts: str, timeout: float = 15.0) -> None:
    """Make ZooKeeper expire ``client``'s session (as after a long pause), and wait until it sees LOST.

    A second connection takes over the session id and password and closes it: the server then ends
    the session, removing its ephemeral nodes, exactly as on a real expiry.
    """
    lost = threading.Event()

    def on_state(state: str) -> None:
        if state == KazooState.LOST:
            lost.set()

    client.add_listener(on_state)
    session_id, password = client.client_id
    other = KazooClient(hosts=hosts, client_id=(session_id, password))
    other.start(timeout=10)
    other.stop()
    other.close()
    if not lost.wait(timeout):
        raise TimeoutError("the client did not notice its session expiring")
    client.remove_listener(on_state)
