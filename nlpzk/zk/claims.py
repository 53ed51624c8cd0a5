"""Input claims for corpus ingest: who is ingesting which file, and the all-or-nothing commit.

Nodes (under ``/corpora/<corpus>``)::

    ingesters/<member>    ephemeral, one per running ingest; its existence fences commits
    claims/<input-key>    ephemeral, {member, host, pid, source}: this input is being ingested
    inputs                data {"commits": n}: bumped by every commit (the optimistic ordering point)
    inputs/<input-key>    done-marker {source, sha256, shards, counts, hashes sidecar}
    shards/<shard-id>     one per shard file

A finished input is committed in ONE transaction: check our member node, bump ``inputs`` at the
version we last read, create every shard node and the done-marker, delete the claim. Either all of
it happens or none: a crashed ingester leaves at most unregistered files (overwritten by the re-run,
which uses the same names) and no nodes.

Connection states: on SUSPENDED the recipe does nothing: its reads are retried once the connection
is back, and a commit whose reply was lost is looked up and, if it did not land, tried again. On
LOST our member node and claims are gone, possibly claimed again by another ingester:
:meth:`InputClaims.commit` then fails its member check and raises :class:`FencedError`, so a stale
ingester can never register an input. The caller stops; a re-run resumes.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from typing import Any, Iterable

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, NotEmptyError

from ..errors import ConflictError, FencedError, NotFoundError
from . import paths, registry

#: One transaction carries every shard node of an input; ZooKeeper limits a request to ~1 MB.
MAX_SHARDS_PER_INPUT = 2000


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rpartition(")")[2].split()[19] if stat else None


_identity: dict[str, Any] = {}


def process_identity() -> dict[str, Any]:
    """What tells this process apart on this machine, for :func:`process_is_dead` (Linux; elsewhere
    only host and pid, and nothing is ever taken for dead)."""
    if not _identity or _identity.get("pid") != os.getpid():
        try:
            pidns = os.readlink("/proc/self/ns/pid")
        except OSError:
            pidns = None
        _identity.clear()
        _identity.update(host=socket.gethostname(), pid=os.getpid(), boot=_read("/proc/sys/kernel/random/boot_id"), pidns=pidns, start=_start_time(os.getpid()))
    return dict(_identity)


def process_is_dead(doc: dict[str, Any]) -> bool:
    """True only if ``doc`` (a :func:`process_identity`) names a process of this machine, boot and pid
    namespace that no longer runs."""
    me = process_identity()
    if not (me["boot"] and me["pidns"] and me["start"] and doc.get("start")):
        return False
    if any(doc.get(k) != me[k] for k in ("host", "boot", "pidns")) or not isinstance(doc.get("pid"), int):
        return False
    start = _start_time(doc["pid"])
    if start is not None:
        return start != doc["start"]  # another process now has that pid
    try:  # no readable /proc entry (gone, or hidden: hidepid): ask the kernel
        os.kill(doc["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # EPERM: it exists
    return False


class InputClaims:
    """Claims and commits for the inputs of one corpus, on behalf of one ingest run (a member).

    >>> claims = InputClaims(zk, "wiki"); claims.join()            # doctest: +SKIP
    >>> if claims.try_claim(key, {"source": "a.txt"}): ...         # doctest: +SKIP
    """

    def __init__(self, client: KazooClient, corpus: str) -> None:
        self.client = client
        self.corpus = corpus
        self.member = uuid.uuid4().hex[:16]
        self._member_path = paths.ingester(corpus, self.member)
        self._corpus_version = -1  # read by join()
        self._changed = threading.Event()

    # -- membership --------------------------------------------------------------------------------

    def join(self) -> None:
        subs = (paths.ingesters(self.corpus), paths.claims(self.corpus), paths.inputs(self.corpus), paths.shards(self.corpus))
        if not registry.create_below(self.client, subs):
            raise NotFoundError(f"corpus {self.corpus!r} was deleted while this ingest started", hint="run the ingest again to create it anew")
        doc = {"started": registry.now()}  # _create_own adds host, pid and the rest of process_identity()
        self.client.retry(self._create_own, self._member_path, doc)
        # a delete marks the corpus node (its only write after creation): every commit checks that
        # version, so none lands once a delete has begun, whenever this ingest joined
        try:
            data, stat = self.client.retry(self.client.get, paths.corpus(self.corpus))
        except NoNodeError:
            self.leave()
            raise NotFoundError(f"corpus {self.corpus!r} was deleted while this ingest started", hint="run the ingest again to create it anew") from None
        if (registry.loads(data) or {}).get("deleting"):
            self.leave()
            raise registry.being_deleted(paths.corpus(self.corpus))
        self._corpus_version = stat.version

    def leave(self) -> None:
        try:
            self.client.retry(self.client.delete, self._member_path)
        except NoNodeError:
            pass

    def alive(self) -> bool:
        """True while our session (and so every claim we hold) is intact. One read."""
        return self.client.retry(self.client.exists, self._member_path) is not None

    def _create_own(self, path: str, doc: dict[str, Any]) -> None:
        while True:
            try:
                self.client.create(path, registry.dumps(dict(doc, **process_identity(), member=self.member)), ephemeral=True)
                return
            except NodeExistsError:
                # a retried create that had in fact succeeded: ours if it carries our member id
                holder = registry.maybe_json(self.client, path)
                if holder is None:
                    continue  # released between our create and our look: try again
                if holder.get("member") != self.member:
                    raise
                return

    # -- claims ------------------------------------------------------------------------------------

    # Reads are retried through a dropped connection (an election takes a second or two; kazoo's
    # command retry waits for the reconnect while the session lives): they change nothing.

    def done(self, key: str) -> dict[str, Any] | None:
        return self.client.retry(registry.maybe_json, self.client, paths.input_done(self.corpus, key))

    def done_keys(self) -> list[str]:
        return self.client.retry(registry.children, self.client, paths.inputs(self.corpus))

    def try_claim(self, key: str, doc: dict[str, Any]) -> bool:
        """Claim input ``key``; False if another ingester holds it (or it is done)."""
        if self.done(key) is not None:
            return False
        path = paths.claim(self.corpus, key)
        try:
            self.client.retry(self._create_own, path, doc)
        except NodeExistsError:
            if not self._free_if_dead(path):
                return False
            try:
                self.client.retry(self._create_own, path, doc)
            except NodeExistsError:
                return False
        # A commit may have landed between our look and our claim: then the claim is pointless.
        if self.done(key) is not None:
            self.release(key)
            return False
        return True

    def _free_if_dead(self, path: str) -> bool:
        """If the claim at ``path`` belongs to an ingester on this machine that has died (killed, its
        session not yet expired), delete its member node and the claim; True if freed.

        Without this a re-run started within the session timeout of a killed run skips the inputs
        the dead run held and commits them last, so duplicates land in other inputs than in an
        uninterrupted run. Deleting the member node fences the dead run (its commit checks it).
        Only a process provably dead is taken over: same host, boot and pid namespace, and its pid
        is gone or now belongs to a process started at another time. Elsewhere the claim simply
        vanishes with its session.
        """
        try:
            data, stat = self.client.retry(self.client.get, path)
        except NoNodeError:
            return True
        holder = registry.loads(data)
        if not isinstance(holder, dict) or not process_is_dead(holder):
            return False
        for node, version in ((paths.ingester(self.corpus, str(holder.get("member"))), -1), (path, stat.version)):
            try:
                self.client.retry(self.client.delete, node, version=version)
            except (NoNodeError, BadVersionError):
                pass
        return True

    def release(self, key: str) -> None:
        path = paths.claim(self.corpus, key)
        holder = self.client.retry(registry.maybe_json, self.client, path)
        if holder is not None and holder.get("member") == self.member:
            try:
                self.client.retry(self.client.delete, path)
            except NoNodeError:
                pass

    def holder(self, key: str) -> dict[str, Any] | None:
        return self.client.retry(registry.maybe_json, self.client, paths.claim(self.corpus, key))

    def wait_for_change(self, timeout: float) -> None:
        """Block until a claim or done-marker of this corpus changes (or ``timeout`` seconds pass)."""
        self._changed.clear()
        # one watcher object for every call: kazoo keeps watchers in a set, so repeated waits do not pile up
        self.client.retry(self.client.get_children, paths.claims(self.corpus), watch=self._fire)
        self.client.retry(self.client.get_children, paths.inputs(self.corpus), watch=self._fire)
        self._changed.wait(timeout)

    def _fire(self, _event) -> None:
        self._changed.set()

    # -- commit ------------------------------------------------------------------------------------

    def commit_point(self) -> tuple[int, list[str]]:
        """``(version, done keys)``: read the ordering counter first, then the done set it guards."""
        _, stat = self.client.retry(self.client.get, paths.inputs(self.corpus))
        return stat.version, self.done_keys()

    def commit(self, key: str, shards: Iterable[tuple[str, dict[str, Any]]], done_doc: dict[str, Any], version: int) -> bool:
        """Register ``shards`` and the done-marker of ``key`` atomically, if nothing committed since ``version``.

        Returns False when another input was committed first (read :meth:`commit_point` again,
        re-check duplicates, retry). Raises FencedError when our session was lost.
        """
        shards = list(shards)
        if len(shards) > MAX_SHARDS_PER_INPUT:
            raise ConflictError(f"one input produced {len(shards)} shards; at most {MAX_SHARDS_PER_INPUT} fit one commit", hint="raise --shard-tokens")
        done_doc = dict(done_doc, member=self.member)
        tx = self.client.transaction()
        tx.check(self._member_path, -1)
        tx.check(paths.corpus(self.corpus), self._corpus_version)  # result index 1: not being deleted
        tx.set_data(paths.inputs(self.corpus), registry.dumps({"last": key}), version=version)
        for shard_id, doc in shards:
            tx.create(paths.shard(self.corpus, shard_id), registry.dumps(doc))
        tx.create(paths.input_done(self.corpus, key), registry.dumps(done_doc))
        tx.delete(paths.claim(self.corpus, key))
        try:
            results = tx.commit()
        except Exception:
            # The connection dropped around the commit: it may or may not have been applied.
            results = None
        if results is not None and not any(isinstance(r, Exception) for r in results):
            return True
        landed = self.done(key)
        if landed is not None and landed.get("member") == self.member:
            return True  # applied before the connection dropped
        if results is None:
            # not applied, and the connection is back (reading the done marker needed it): try
            # again from a fresh commit point; if the session was lost meanwhile, the member
            # check of the next attempt fails and says so
            return False
        first = registry.first_error(results)
        if results[1] is first:
            raise registry.being_deleted(paths.corpus(self.corpus))
        if isinstance(first, NoNodeError) and results[0] is first:
            raise FencedError(
                "this ingest lost its ZooKeeper session; its claims may now belong to another ingester",
                hint="run the same command again; nothing half-done was registered",
            )
        if isinstance(first, BadVersionError):
            return False
        if isinstance(first, NodeExistsError):
            raise ConflictError(f"input {key} or one of its shards is already registered by another ingester", hint=f"run: nlpzk corpus verify {self.corpus}")
        raise ConflictError(f"registering input {key} failed: {type(first).__name__}")

    # -- removal -----------------------------------------------------------------------------------

    def remove_if_empty(self) -> bool:
        """Delete the whole corpus node if nothing was ever registered in it (used after a failed first run)."""
        base = paths.corpus(self.corpus)
        tx = self.client.transaction()
        for sub in (paths.shards(self.corpus), paths.inputs(self.corpus), paths.claims(self.corpus), paths.ingesters(self.corpus)):
            tx.delete(sub)
        tx.delete(base)
        try:
            results = tx.commit()
        except (NotEmptyError, NoNodeError):
            return False
        return not any(isinstance(r, Exception) for r in results)
