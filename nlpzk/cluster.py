"""The handle every operation takes: a ZooKeeper client (coordination) and a store (bulk bytes)."""

from __future__ import annotations

import errno
from typing import Any

from kazoo.client import KazooClient

from .config import Config
from .errors import NlpzkError, StoreError
from .store import Store
from .zk import client as _client
from .zk.errors import translate as _translate_zk


class Cluster:
    """Connected ZooKeeper + store.

    >>> with Cluster.connect(zk="127.0.0.1:2181/nlpzk", store="/data/nlpzk") as cluster:  # doctest: +SKIP
    ...     Corpus.open("wiki", cluster=cluster).shards
    """

    def __init__(self, config: Config, zk: KazooClient, watch: _client.ConnectionWatch, store: Store, started_server: bool = False) -> None:
        self.config = config
        self.zk = zk
        self.watch = watch
        self.store = store
        #: True when connecting started the embedded ZooKeeper server (the CLI says so once).
        self.started_server = started_server
        #: True once :meth:`close` was called (watches such as a followed tag stop with it).
        self.closed = False

    @classmethod
    def connect(cls, config: Config | None = None, **overrides: Any) -> "Cluster":
        """Connect using ``config`` (default: flags-free resolution of env and nlpzk.toml) plus overrides."""
        config = config or Config.resolve()
        if overrides:
            config = config.with_overrides(**overrides)
        store = Store(config.store_uri)
        zk, watch, started = _client.connect(config)
        return cls(config, zk, watch, store, started)

    def close(self) -> None:
        self.closed = True
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:  # closing is best effort; the session times out anyway
            pass

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: Cluster | None = None


def default_cluster() -> Cluster:
    """A process-wide cluster from the environment, for the convenience APIs (``Corpus.open(name)``)."""
    global _default
    if _default is None or not _default.zk.connected:
        _default = Cluster.connect()
    return _default


def as_nlpzk_error(exc: BaseException) -> NlpzkError | None:
    """Map any exception to the NlpzkError a user should see, or ``None`` for a genuine bug."""
    if isinstance(exc, NlpzkError):
        return exc
    zk = _translate_zk(exc)
    if zk is not None:
        return zk
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return StoreError("no space left on device", hint="free space and run again; nothing half-written was registered")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreError(f"permission denied: {exc.filename or exc}", hint="check the permissions of that path")
    return None
