"""Changing numbered versions after publication: update a version's document, delete a version, read tags.

Works on any ``base`` laid out by :func:`nlpzk.zk.registry.publish_version`
(``base/versions/vN``, ``base/tags/<tag>``); models use it, vocabularies may.

Every call is a short read-then-transaction retried on kazoo's command retry. On SUSPENDED a call
blocks inside that retry and either succeeds or raises (translated to ``ZkUnavailableError`` at the
edge); on LOST nothing is half-changed, because each change is one conditional transaction.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError, NotEmptyError

from ..errors import ConflictError, NotFoundError
from . import paths, registry


def tags(zk: KazooClient, base: str) -> dict[str, int]:
    """``{tag: version number}`` for every tag under ``base``."""
    out: dict[str, int] = {}
    for tag in registry.children(zk, f"{base}/tags"):
        try:
            data, _ = zk.get(f"{base}/tags/{tag}")
        except NoNodeError:
            continue  # removed while we listed: not a tag any more
        out[tag] = paths.stored_version(data, registry.full_path(zk, f"{base}/tags/{tag}"))
    return out


def versions(zk: KazooClient, base: str) -> list[int]:
    """Existing version numbers under ``base``, ascending."""
    return sorted(paths.parse_version(v) for v in registry.children(zk, f"{base}/versions"))


def update_doc(zk: KazooClient, path: str, change: Callable[[dict[str, Any]], dict[str, Any]], attempts: int = 20) -> dict[str, Any]:
    """Read-modify-write a JSON document, conditional on its znode version (retried on a race).

    ``change`` gets a copy of the current document and returns the new one. Returns what was written.
    """
    for _ in range(attempts):
        doc, stat = registry.get_json(zk, path)
        new = change(dict(doc))
        try:
            zk.retry(zk.set, path, registry.dumps(new), version=stat.version)
            return new
        except BadVersionError:
            continue  # someone else wrote in between: read their document and apply our change again
        except NoNodeError:
            raise NotFoundError(f"{path} was deleted while being updated") from None
    raise ConflictError(f"{path} kept changing while being updated; try again")


def delete_version(zk: KazooClient, base: str, version: int, attempts: int = 20, guard: tuple[str, int] | None = None, hold: GuardHold | None = None) -> list[str]:
    """Delete ``base/versions/vN`` and every tag pointing at it, in one transaction.

    ``latest`` is not dropped but moved back to the highest remaining version (if any), so readers
    following it keep working. Returns the tags that were removed or moved. ``guard``: ``(path,
    znode version)`` set in the same transaction, read while ``hold`` held it (see :class:`GuardHold`);
    GuardChanged if it moved or the hold is gone.
    """
    vname = paths.version_name(version)
    vpath = f"{base}/versions/{vname}"
    for _ in range(attempts):
        try:
            data, stat = zk.get(vpath)
        except NoNodeError:
            raise NotFoundError(f"{base} has no version {vname}") from None
        vdoc = registry.loads(data)
        once = vdoc.get("once") if isinstance(vdoc, dict) else None
        tx = zk.transaction()
        if guard is not None:  # result index 0
            tx.set_data(guard[0], b"", version=guard[1])
        if hold is not None:  # result index 1 (with a guard)
            tx.check(*hold.check)
        touched: list[str] = []
        remaining = [v for v in versions(zk, base) if v != version]
        for tag in registry.children(zk, f"{base}/tags"):
            tpath = f"{base}/tags/{tag}"
            try:
                data, tstat = zk.get(tpath)
            except NoNodeError:
                continue
            if data.decode() != vname:
                tx.check(tpath, tstat.version)  # a tag moving onto this version now would dangle
                continue
            touched.append(tag)
            if tag == "latest" and remaining:
                target = paths.version_name(remaining[-1])
                tx.check(f"{base}/versions/{target}", -1)  # deleted meanwhile by another delete: look again
                tx.set_data(tpath, target.encode(), version=tstat.version)
            else:
                tx.delete(tpath, version=tstat.version)
        if once and zk.exists(f"{base}/once/{once}"):  # publish_version(once=...): free the key with its version
            tx.delete(f"{base}/once/{once}")
        tx.delete(vpath, version=stat.version)
        results = tx.commit()
        if not any(isinstance(r, Exception) for r in results):
            return touched
        registry.raise_if_refused(results)
        if guard is not None and isinstance(results[0], (BadVersionError, NoNodeError)):
            raise GuardChanged(guard[0])
        if hold is not None and isinstance(results[1 if guard is not None else 0], NoNodeError):
            raise GuardChanged(hold.guard)
        # a tag moved or the document changed between our reads and the commit: look again
    raise ConflictError(f"deleting {vpath} kept racing with other changes; try again")


GUARD_PATIENCE = 120.0  # seconds a guarded step goes on retrying while others keep going first


def guard_attempts(what: str):
    """Attempt numbers for a guarded step, until :data:`GUARD_PATIENCE` has passed (with a short
    random pause after each lost race); ConflictError then. Every lost race means another guarded
    transaction committed, so this cannot livelock: it only waits out a burst (a sweep of job
    creations on one corpus)."""
    import random
    import time

    deadline = time.monotonic() + GUARD_PATIENCE
    attempt = 0
    while True:
        yield attempt
        attempt += 1
        if time.monotonic() > deadline:
            raise ConflictError(f"{what} kept losing races with other jobs and deletes for {GUARD_PATIENCE:g} s", hint="try again")
        time.sleep(random.uniform(0.0, 0.02))


GuardChanged = registry.GuardChanged  # the guard moved: look again


class GuardHold:
    """Holds a guard node (``/guards/...``) for one "look, then commit" step: a delete's look for
    users and its mark, a job's creation, a model's registration.

    A guard serialises "look for users, then delete" against "create a user": the delete's
    transaction and each creation's transaction both set the guard at the znode version they read,
    so whichever commits second fails and looks again. The hold is an ephemeral child
    ``<guard>/hold-<uuid>``; a guard is deleted (:func:`drop_guard`, when its corpus or vocabulary
    is) only while nobody holds it, so the version a holder read is always that of the node its
    transaction sets, never of a guard deleted and created anew (whose version starts again at 0).
    Transactions also check the hold itself (:attr:`check`, among their guards): after a session
    expiry it is gone with the session, the transaction fails, and the next look holds it again.

    >>> with GuardHold(zk, paths.corpus_users("wiki"), paths.corpus("wiki")) as hold:   # doctest: +SKIP
    ...     version = hold.version()   # then look, then commit setting (guard, version) and hold.check
    """

    def __init__(self, zk: KazooClient, guard: str, base: str) -> None:
        self.zk = zk
        self.guard = guard
        self.base = base  # the corpus or vocabulary node: gone when the holder leaves -> drop the guard
        self.path = f"{guard}/hold-{uuid.uuid4().hex}"

    @property
    def check(self) -> tuple[str, int]:
        """``(path, -1)`` for a transaction's guards: set at any version, i.e. "our hold still exists"."""
        return (self.path, -1)

    def version(self) -> int:
        """The guard's znode version, read while holding it (the guard and the hold are created if
        missing: on first use, or after a session expiry took the hold)."""
        while True:
            try:
                self.zk.retry(self.zk.create, self.path, b"", ephemeral=True, makepath=True)
            except NodeExistsError:
                pass  # ours (a uuid): a retried create that had landed, or an earlier look
            stat = self.zk.retry(self.zk.exists, self.guard)
            if stat is not None:
                return stat.version

    def release(self) -> None:
        """Drop the hold (best effort: it vanishes with the session anyway), and the guard too if its
        corpus or vocabulary no longer exists and nobody else holds it. While disconnected, this is
        done when the client reconnects (the session, and the hold, may live as long as the process)."""
        if not self.zk.connected:  # (after a step that gave up on a lost connection: do not wait for it again)
            self._release_when_connected()
            return
        try:
            try:
                self.zk.retry(self.zk.delete, self.path)
            except NoNodeError:
                pass
            if self.zk.retry(self.zk.exists, self.base) is None:
                drop_guard(self.zk, self.guard)
        except KazooException:
            pass

    def _release_when_connected(self) -> None:
        def listener(state: str) -> bool:
            if state != KazooState.CONNECTED:
                return False
            # not on kazoo's event thread, which must not wait for a reply
            threading.Thread(target=self.release, name="nlpzk-guard-release", daemon=True).start()
            return True  # (kazoo removes a listener that returns True)

        self.zk.add_listener(listener)
        if self.zk.connected and listener in self.zk.state_listeners:  # back before the listener was added
            self.zk.remove_listener(listener)
            self.release()

    def __enter__(self) -> "GuardHold":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def drop_guard(zk: KazooClient, guard: str) -> bool:
    """Delete ``guard`` (its corpus or vocabulary was deleted) unless someone holds it: a holder's
    :meth:`GuardHold.release` tries again. Safe whenever it succeeds: nobody holding it, nobody has a
    version of it to set. True if deleted."""
    try:
        zk.retry(zk.delete, guard)
        return True
    except (NoNodeError, NotEmptyError):
        return False


def mark_deleting_guarded(zk: KazooClient, base: str, guard: str, guard_ver: int, hold: GuardHold | None = None) -> None:
    """:func:`mark_deleting` in one transaction with setting ``guard`` at ``guard_ver``: the mark
    lands only if no user was created since the caller looked (and ``hold`` still holds the guard).
    GuardChanged otherwise."""
    for _ in range(20):
        try:
            doc, stat = registry.get_json(zk, base)
        except NotFoundError:
            raise
        doc = doc if isinstance(doc, dict) else {}
        tx = zk.transaction()
        tx.set_data(guard, b"", version=guard_ver)
        tx.set_data(base, registry.dumps(dict(doc, deleting=doc.get("deleting") or registry.now())), version=stat.version)
        if hold is not None:  # result index 2
            tx.check(*hold.check)
        results = tx.commit()
        if not any(isinstance(r, Exception) for r in results):
            return
        registry.raise_if_refused(results)
        if isinstance(results[0], (BadVersionError, NoNodeError)) or (hold is not None and isinstance(results[2], NoNodeError)):
            raise GuardChanged(guard)
        # the base document changed meanwhile (another delete marked it): read it again
    raise ConflictError(f"{base} kept changing while being marked for deletion; try again")


def mark_deleting(zk: KazooClient, base: str) -> None:
    """The first step of deleting a corpus, a whole vocabulary or a whole model: mark its base node (conditional write;
    NotFoundError if it is gone), so that every other command refuses it from then on
    (:func:`registry.is_deleting`) and a delete stopped half-way can be told and finished."""
    update_doc(zk, base, lambda doc: dict(doc, deleting=doc.get("deleting") or registry.now()))


def delete_tree(zk: KazooClient, base: str) -> None:
    """Remove ``base`` and everything below it (tags first, so no reader follows a tag to nothing).

    A node created below while we delete (kazoo lists, then deletes) is listed and deleted on the
    next attempt, as for a corpus (:func:`nlpzk.zk.registry.delete_tree`)."""
    for path in (f"{base}/tags", base):
        registry.delete_tree(zk, path)


def delete_tag(zk: KazooClient, base: str, tag: str) -> bool:
    """Remove one tag. Returns False when it did not exist."""
    try:
        zk.delete(f"{base}/tags/{paths.check_name('tag', tag)}")
        return True
    except NoNodeError:
        return False
