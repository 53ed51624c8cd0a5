"""The handle every operation takes: a ZooKeeper client (coordination) and a store (bulk bytes)."""

from __future__ import annotations

import errno
import functools
import inspect
import sys
from typing import Any, Callable, Iterator, TypeVar

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
        """Close the ZooKeeper session. Objects opened from this cluster then raise ZkUnavailableError
        where they need ZooKeeper; what they already loaded (a view's table, a model's vectors) still answers."""
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


# -- the library's edge -----------------------------------------------------------------------------
#
# Inside nlpzk, kazoo's exceptions are control flow (a ConnectionLoss means "unknown outcome: read
# back", a worker waits out CONNECTION_ERRORS), so they cannot be translated where they are raised.
# They are translated where they leave the package instead: a public function or method called from
# outside nlpzk (a user's script, the CLI, a test) raises the NlpzkError as_nlpzk_error gives, with the
# original as its __cause__; the same call made from nlpzk's own code gets the raw exception.

F = TypeVar("F", bound=Callable[..., Any])


def _from_outside(frame) -> bool:
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return not (name == "nlpzk" or name.startswith("nlpzk."))


def _translated(exc: Exception) -> NlpzkError | None:
    """What to raise instead of ``exc`` at the edge, or None to let it through as it is."""
    mapped = as_nlpzk_error(exc)
    return None if mapped is exc else mapped


def _iterate_translated(it: Iterator[Any]) -> Iterator[Any]:
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as exc:
            mapped = _translated(exc)
            if mapped is None:
                raise
            raise mapped from exc
        yield item


def public(obj: F) -> F:
    """Make a function, or every public method and property of a class, raise only NlpzkError (and
    genuine bugs) to callers outside nlpzk. Generator functions are translated item by item.

    >>> @public                                                   # doctest: +SKIP
    ... class Corpus: ...
    """
    if isinstance(obj, type):
        for name, attr in list(vars(obj).items()):
            if name.startswith("_"):
                continue
            if isinstance(attr, (staticmethod, classmethod)):
                setattr(obj, name, type(attr)(_edge(attr.__func__)))
            elif isinstance(attr, property):
                setattr(obj, name, property(_edge(attr.fget), attr.fset, attr.fdel, attr.__doc__))
            elif inspect.isfunction(attr):
                setattr(obj, name, _edge(attr))
        return obj
    return _edge(obj)  # type: ignore[return-value]


def public_functions(namespace: dict[str, Any], names: list[str]) -> None:
    """Apply :func:`public` to the functions among ``names`` in a module's ``namespace`` (its
    ``globals()``): a package's exports are translated where users call them."""
    for name in names:
        value = namespace.get(name)
        if inspect.isfunction(value):
            namespace[name] = _edge(value)


def _edge(fn: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(fn, "__nlpzk_edge__", False):
        return fn
    generator = inspect.isgeneratorfunction(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not _from_outside(sys._getframe(1)):
            return fn(*args, **kwargs)
        if generator:
            return _iterate_translated(fn(*args, **kwargs))
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            mapped = _translated(exc)
            if mapped is None:
                raise
            raise mapped from exc

    call.__nlpzk_edge__ = True  # type: ignore[attr-defined]
    return call


public(Cluster)
