"""Follow a tag znode (``.../tags/<tag>`` holding ``"v0000000007"``) and hear when it moves.

Built on kazoo's ``DataWatch``, which re-arms its watch after every event and re-reads the node
whenever the client (re)connects. The callback does the slow part (loading a table) on a thread of
its own, never on kazoo's event thread, and only ever sees the newest value: moves that happen while
a load is running collapse into one.

Connection states:

* ``SUSPENDED`` — nothing is delivered; whoever follows keeps what it has (the last good version).
* ``LOST`` — the watch died with the session; once kazoo has a new session, ``DataWatch`` reads the
  node again, so a move that happened in between is delivered then.

Starting a watch never blocks: the first read happens on the watch's own thread, so a tag followed
while ZooKeeper is unreachable is read (and followed) once it answers again.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from kazoo.client import KazooClient
from kazoo.recipe.watchers import DataWatch

from . import paths

log = logging.getLogger("nlpzk.zk.tagwatch")


class TagWatch:
    """Call ``on_move(version)`` (an int, or ``None`` while the tag does not exist) on every move.

    >>> watch = TagWatch(zk, paths.vocab_tag("wiki", "stable"), lambda n: print("now", n))  # doctest: +SKIP
    >>> watch.stop()                                                                       # doctest: +SKIP
    """

    def __init__(self, client: KazooClient, path: str, on_move: Callable[[int | None], None]) -> None:
        self.client = client
        self.path = path
        self._on_move = on_move
        self._lock = threading.Lock()
        self._pending: list[int | None] = []  # at most one element: the newest value not yet delivered
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._deliver, name=f"tagwatch{path}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        # DataWatch reads the node once before it returns, retrying for ever while ZooKeeper is away:
        # on this thread, so that following never blocks its caller (it starts once ZooKeeper answers)
        try:
            DataWatch(self.client, self.path, self._on_data)
        except Exception:  # e.g. an ACL refusing the read: nothing is delivered, the follower keeps its version
            log.exception("cannot watch tag %s", self.path)

    def _on_data(self, data: bytes | None, stat) -> bool | None:
        # Runs on kazoo's event thread: record and return at once.
        if self._stopped.is_set():
            return False  # tells DataWatch to drop its watch
        try:
            value = paths.parse_version(data.decode()) if data else None
        except Exception:  # a garbled tag is reported as "no tag", never breaks the watch
            log.warning("tag %s holds %r, not a version", self.path, data)
            value = None
        with self._lock:
            self._pending[:] = [value]
        self._wake.set()
        return None

    def _deliver(self) -> None:
        self._watch()
        while not self._stopped.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                if not self._pending:
                    continue
                value = self._pending.pop()
            if self._stopped.is_set():
                return
            try:
                self._on_move(value)
            except Exception:  # the follower decides what a failed reload means; the watch goes on
                log.exception("tag watch callback for %s failed", self.path)

    def stop(self) -> None:
        """Stop delivering; the underlying watch is dropped at its next event."""
        self._stopped.set()
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
