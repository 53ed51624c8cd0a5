"""The one place a kazoo client is built: hosts, chroot, retries, timeouts, auth/ACL, TLS, listener.

Connection states, as the rest of nlpzk treats them:

* ``SUSPENDED`` — the connection dropped but the session may still live: pause anything that needs
  agreement (committing, merging), keep local computation going.
* ``LOST`` — the session expired: every ephemeral node (leases, membership, claims) is gone. Drop
  in-flight work and rejoin with a new session.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Callable

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NodeExistsError, OperationTimeoutError
from kazoo.handlers.threading import AsyncResult, KazooTimeoutError, SequentialThreadingHandler
from kazoo.protocol.serialization import Create
from kazoo.retry import KazooRetry
from kazoo.security import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, make_digest_acl

from ..config import Config
from ..errors import ConfigError, ZkUnavailableError
from . import server as _server

log = logging.getLogger("nlpzk.zk")

StateListener = Callable[[str], None]


def acl_for(config: Config) -> list | None:
    """Digest ACL for ``config.auth``: the creator may do everything, others may read (or nothing)."""
    if not config.auth:
        return None
    user, _, password = config.auth.partition(":")
    acl = [make_digest_acl(user, password, all=True)]
    if config.acl_others == "read":
        acl.extend(READ_ACL_UNSAFE)
    return acl


class ConnectionWatch:
    """Tracks connection state without blocking kazoo's event thread.

    ``connected`` is set while the client can talk to ZooKeeper; ``lost`` is set once the session has
    expired and stays set (ephemeral nodes are gone; whoever owns work built on them must rejoin).
    """

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.lost = threading.Event()
        self.state = "CONNECTED"
        self._down_since: float | None = None  # monotonic time the connection dropped; None while up
        self._callbacks: list[StateListener] = []

    def down_for(self) -> float:
        """Seconds since the connection dropped (0 while connected)."""
        since = self._down_since
        return 0.0 if since is None or self.connected.is_set() else time.monotonic() - since

    def add(self, callback: StateListener) -> None:
        self._callbacks.append(callback)

    def remove(self, callback: StateListener) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def __call__(self, state: str) -> None:
        self.state = state
        if state == KazooState.CONNECTED:
            self._down_since = None
            self.connected.set()
        else:
            if self._down_since is None:
                self._down_since = time.monotonic()
            self.connected.clear()
            if state == KazooState.LOST:
                self.lost.set()
        for cb in list(self._callbacks):
            try:
                cb(state)
            except Exception:  # a listener must never break kazoo's event thread
                log.exception("connection-state callback failed")


#: The longest any ZooKeeper request waits for its reply. kazoo queues a request made while the
#: connection is down and waits for ever: without a quorum (two of three servers down) a worker's
#: commit blocked for good. This bound turns that into OperationTimeoutError, a connection error
#: every caller already handles (the worker's 120 s reconnect limit, the CLI's exit 3).
REQUEST_TIMEOUT = 120.0

#: How long a running command waits for a lost connection to come back before it gives up (a
#: training worker's default reconnect limit, ``train run``'s and ``status --watch``'s).
RECONNECT_LIMIT = 120.0


class _BoundedResult(AsyncResult):
    def get(self, block: bool = True, timeout: float | None = None):
        if not block or timeout is not None:
            return super().get(block, timeout)
        try:
            return super().get(True, self._handler.request_timeout)
        except KazooTimeoutError:
            raise OperationTimeoutError(f"no reply from ZooKeeper within {self._handler.request_timeout:g}s (no quorum, or unreachable)") from None


class _BoundedHandler(SequentialThreadingHandler):
    """kazoo's threading handler whose results wait at most ``request_timeout`` when no timeout is given."""

    def __init__(self, request_timeout: float) -> None:
        super().__init__()
        self.request_timeout = request_timeout

    def async_result(self) -> AsyncResult:
        return _BoundedResult(self)


class _LazyChrootClient(KazooClient):
    """A client whose chroot node is created by its first write, not on connect.

    Commands that only read (``status``, ``corpus list``, lookups) then write nothing: under a chroot
    that does not exist yet every read finds no node, i.e. an empty registry. kazoo cannot create its
    own chroot (its paths are all below it), so the first ``create``, ``ensure_path`` or transaction
    creates the chroot's nodes with absolute paths first. The ``create``s of a ``makepath`` or an
    ``ensure_path`` that kazoo chains from its callback thread come after that first call, so the
    blocking create below only ever runs on the caller's thread.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._chroot_made = False
        self._chroot_lock = threading.Lock()

    def ensure_chroot(self) -> None:
        """Create the chroot's nodes (once per client; existing ones are fine)."""
        if self._chroot_made or not self.chroot:
            return
        with self._chroot_lock:
            if self._chroot_made:
                return
            parts = self.chroot.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                self.retry(self._create_absolute, "/" + "/".join(parts[:i]))
            self._chroot_made = True

    def _create_absolute(self, path: str) -> None:
        result = self.handler.async_result()
        self._call(Create(path, b"", self.default_acl or OPEN_ACL_UNSAFE, 0), result)
        try:
            result.get()
        except NodeExistsError:
            pass

    def create_async(self, path, *args, **kwargs):
        self.ensure_chroot()
        return super().create_async(path, *args, **kwargs)

    def ensure_path_async(self, path, acl=None):
        self.ensure_chroot()
        return super().ensure_path_async(path, acl)

    def transaction(self):
        self.ensure_chroot()
        return super().transaction()


def connect(config: Config, *, request_timeout: float | None = None) -> tuple[KazooClient, ConnectionWatch, bool]:
    """Connect to ZooKeeper as configured. Returns ``(client, watch, started_embedded_server)``.

    With no ``zk`` configured, the embedded standalone server is started (or reused) first.
    Raises :class:`ZkUnavailableError` within ``config.connect_timeout`` when nothing answers.
    """
    hosts, chroot = config.hosts_and_chroot()
    started = False
    if config.embedded:
        started = _server.ensure_embedded(config.state_path, config.zk_port)

    tls = tls_options(config)
    auth_data = [("digest", config.auth)] if config.auth else None
    client = _LazyChrootClient(
        hosts=hosts,
        timeout=config.session_timeout,
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0),
        command_retry=KazooRetry(max_tries=8, delay=0.1, backoff=2, max_delay=2.0, deadline=max(config.session_timeout, 10.0)),
        default_acl=acl_for(config),
        auth_data=auth_data,
        handler=_BoundedHandler(request_timeout or REQUEST_TIMEOUT),
        **tls,
    )
    watch = ConnectionWatch()
    client.add_listener(watch)
    try:
        client.start(timeout=config.connect_timeout)
    except KazooTimeoutError:
        client.stop()
        client.close()
        raise ZkUnavailableError(
            f"cannot reach ZooKeeper at {hosts} within {config.connect_timeout:g}s",
            hint="check --zk / NLPZK_ZK and that the server runs (nlpzk zk status)"
            + ("; with --zk-tls also that the port is the server's secureClientPort and that it trusts your certificate and you its (--zk-ca)" if config.zk_tls else ""),
        ) from None
    watch.connected.set()
    client.chroot = chroot if chroot != "/" else ""  # created by the first write (_LazyChrootClient)
    return client, watch, started


def tls_options(config: Config) -> dict:
    """kazoo's TLS arguments for ``config`` (empty without ``zk_tls``).

    The server's certificate is always verified: against ``zk_ca`` if given, else the system's CAs
    (kazoo loads them). Host names are not checked (ZooKeeper ensembles are usually addressed by
    IP or by names their certificates do not carry). A client certificate needs its key: kazoo
    sends it only with both.
    """
    if not config.zk_tls:
        if config.zk_ca or config.zk_cert or config.zk_key:
            raise ConfigError("zk_ca/zk_cert/zk_key are set but zk_tls is off", hint="add --zk-tls")
        return {}
    if bool(config.zk_cert) != bool(config.zk_key):
        raise ConfigError("--zk-cert and --zk-key go together (a client certificate and its private key)", hint="give both, or neither")
    return dict(use_ssl=True, ca=config.zk_ca, certfile=config.zk_cert, keyfile=config.zk_key, verify_certs=True)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """An SSL context with :func:`tls_options`' settings, for the ``srvr`` probes of ``zk status``
    and ``status`` (``None`` without ``zk_tls``: they then speak plain TCP)."""
    options = tls_options(config)
    if not options:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if options["ca"]:
        ctx.load_verify_locations(options["ca"])
    if options["certfile"]:
        ctx.load_cert_chain(options["certfile"], options["keyfile"])
    return ctx


def open_acl() -> list:
    return list(OPEN_ACL_UNSAFE)
