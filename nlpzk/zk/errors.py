"""Turn kazoo's exceptions into nlpzk's, so callers above this package never see kazoo types."""

from __future__ import annotations

from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import RetryFailedError

from ..errors import NlpzkError, NotAuthorizedError, NotFoundError, ZkUnavailableError


def translate(exc: BaseException) -> NlpzkError | None:
    if isinstance(exc, NoAuthError):
        return NotAuthorizedError(
            "ZooKeeper refused: not authorized for this node",
            hint="pass the credentials that created it with --auth user:password (or NLPZK_AUTH)",
        )
    if isinstance(exc, AuthFailedError):
        return NotAuthorizedError("ZooKeeper rejected the credentials", hint="check --auth / NLPZK_AUTH")
    if isinstance(exc, ConnectionClosedError):  # kazoo raises it only once its client was stopped: by Cluster.close()
        return ZkUnavailableError(
            "this cluster is closed (Cluster.close(), or the end of its with block)",
            hint="connect again with nlpzk.Cluster.connect(), and use what you open from a cluster before closing it",
        )
    if isinstance(exc, (ConnectionLoss, SessionExpiredError, OperationTimeoutError, KazooTimeoutError, RetryFailedError)):
        return ZkUnavailableError(
            f"lost the connection to ZooKeeper ({type(exc).__name__})",
            hint="check the servers (nlpzk zk status) and run the command again; nothing half-done was registered",
        )
    if isinstance(exc, NoNodeError):
        return NotFoundError(f"a registry node vanished while in use ({exc})", hint="another process deleted it; run again")
    if isinstance(exc, KazooException):
        return NlpzkError(f"ZooKeeper error: {type(exc).__name__} {exc}")
    return None
