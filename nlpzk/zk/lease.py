"""Ephemeral, fenced leases: who is working on a unit of work right now, and proof of it at commit.

A lease is an ephemeral znode (``.../leases/<unit>``); it vanishes with its holder's session, so a
dead holder frees its unit for others. Checking the lease node's version alone is not a fence: a
re-created ephemeral node starts at version 0 again (ABA), so a holder whose session expired and
whose unit was re-leased would pass ``check(lease, 0)``. Each unit therefore also has a persistent
*fence* node whose version is bumped in the same transaction that creates the lease. The holder
remembers that version; its commit transaction ``check``s it and deletes its lease, so a commit
from anyone but the current holder fails as a whole.

Connection states: on SUSPENDED a holder keeps computing but must not assume it still holds the
lease; on LOST its leases are gone, and any later commit is rejected by the fence (nothing to do
but drop the work). Acquire and commit are single transactions, so a retried call never leaves a
half-made lease.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable, Iterable, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, RolledBackError

from ..errors import FencedError
from . import registry

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Lease:
    """A held lease: the lease node, its fence node and the fence version that proves ownership."""

    unit: str
    path: str
    fence_path: str
    fence_version: int
    owner: str


def ensure_fences(zk: KazooClient, fence_dir: str, units: Iterable[str]) -> None:
    """Create the persistent fence node of every unit (idempotent)."""
    # never makepath: that would bring back a job deleted meanwhile (`train delete --force`), empty;
    # the folder itself is created if missing, but only under a parent that still exists
    for unit in units:
        try:
            zk.create(f"{fence_dir}/{unit}", b"")
        except NodeExistsError:
            pass
        except NoNodeError:
            if not registry.create_below(zk, [fence_dir]):
                raise
            try:
                zk.create(f"{fence_dir}/{unit}", b"")
            except NodeExistsError:
                pass


def acquire(
    zk: KazooClient, lease_dir: str, fence_dir: str, unit: str, owner: str, *, absent: str | None = None, guard: tuple[str, int] | None = None
) -> Lease | None:
    """Try to lease ``unit`` for ``owner``; ``None`` if someone else holds it (or ``absent`` exists).

    One transaction creates the ephemeral lease and bumps the unit's fence, so the returned
    ``fence_version`` is unique to this acquisition. ``absent`` (e.g. the unit's done marker) must
    not exist: ZooKeeper has no "check absent", so the transaction creates and deletes it.
    ``guard`` ``(path, version)`` must still be at that version (e.g. the round node while the round
    is open): a caller that is a round behind must not bump a fence that the current round's
    holders rely on (the previous round's nodes are pruned one by one, not atomically).
    """
    got = acquire_many(zk, lease_dir, fence_dir, [unit], owner, absent=None if absent is None else (lambda _u: absent), guard=guard)
    return got[0] if got else None


def acquire_many(
    zk: KazooClient, lease_dir: str, fence_dir: str, units: list[str], owner: str, *, absent: Callable[[str], str] | None = None, guard: tuple[str, int] | None = None
) -> list[Lease]:
    """Lease all of ``units`` in ONE transaction (as :func:`acquire` does each), or none: ``[]`` if
    any of them is held or done (the caller reads the state again and picks others)."""
    if not units:
        return []
    data = json.dumps({"owner": owner, "since": round(time.time(), 3)}).encode()
    tx = zk.transaction()
    if guard is not None:
        tx.check(guard[0], guard[1])
    for unit in units:
        tx.create(f"{lease_dir}/{unit}", data, ephemeral=True)
        tx.set_data(f"{fence_dir}/{unit}", owner.encode())
        if absent is not None:
            tx.create(absent(unit), b"")
            tx.delete(absent(unit))
    results = tx.commit()
    real = [r for r in results if isinstance(r, Exception) and not isinstance(r, RolledBackError)]
    if any(isinstance(r, (NodeExistsError, NoNodeError, BadVersionError)) for r in real):
        return []
    if real:
        raise real[0]
    per = 2 + (2 if absent is not None else 0)
    first = 1 if guard is not None else 0
    return [
        Lease(unit=u, path=f"{lease_dir}/{u}", fence_path=f"{fence_dir}/{u}", fence_version=results[first + i * per + 1].version, owner=owner)
        for i, u in enumerate(units)
    ]


def add_commit_ops(tx, leases: Iterable[Lease]) -> None:
    """Add the fencing operations of ``leases`` to a transaction: check each fence, release each lease."""
    for lease in leases:
        tx.check(lease.fence_path, lease.fence_version)
        tx.delete(lease.path)


def commit(zk: KazooClient, leases: list[Lease], build: Callable[[object], None], what: str, then: Callable[[], T] | None = None) -> T | None:
    """Commit work done under ``leases``: ``build(tx)`` adds the payload operations.

    Raises :class:`FencedError` if any lease was lost (its session expired, or it was revoked and
    perhaps re-leased): the whole transaction, payload included, is then rejected.

    ``then``: sends requests right behind the transaction, without waiting for its answer (reads
    that see its effect: ZooKeeper answers one session's requests in order); returned as it
    returns them, once the commit went through.
    """
    tx = zk.transaction()
    add_commit_ops(tx, leases)
    build(tx)
    pending = tx.commit_async()
    follow = then() if then is not None else None
    results = pending.get()
    real = [r for r in results if isinstance(r, Exception) and not isinstance(r, RolledBackError)]
    if real:
        ops = list(zip(results[0::2], results[1::2]))[: len(leases)]
        lost = [l.unit for l, pair in zip(leases, ops) if any(isinstance(r, Exception) and not isinstance(r, RolledBackError) for r in pair)]
        if not lost:  # the payload failed, not the fence: that is not a lost lease
            raise real[0]
        raise FencedError(
            f"{what} rejected: lease(s) on {', '.join(lost)} no longer held",
            hint="its session expired or the lease was revoked; the work is dropped and the unit re-leased",
        )
    return follow


def release(zk: KazooClient, leases: Iterable[Lease]) -> None:
    """Drop leases this session still holds (after a rejected commit), so others can take the units."""
    session = zk.client_id[0] if zk.client_id else None
    for lease in leases:
        try:
            stat = zk.exists(lease.path)
            if stat is not None and stat.ephemeralOwner == session:
                zk.delete(lease.path, version=stat.version)
        except (NoNodeError, BadVersionError):
            pass


def revoke(zk: KazooClient, lease_dir: str, fence_dir: str, unit: str, seen_czxid: int) -> bool:
    """Take a lease away from a holder that stopped making progress (it is alive but stuck).

    Deletes the lease only if it is still the one first seen (``seen_czxid``) and bumps the fence in
    the same transaction, so the old holder's commit fails. Returns True if revoked.
    """
    path = f"{lease_dir}/{unit}"
    try:
        _, stat = zk.get(path)
    except NoNodeError:
        return False
    if stat.czxid != seen_czxid:
        return False
    tx = zk.transaction()
    tx.delete(path, version=stat.version)
    tx.set_data(f"{fence_dir}/{unit}", b"revoked")
    results = tx.commit()
    return not any(isinstance(r, Exception) for r in results)


def holder(zk: KazooClient, lease_dir: str, unit: str) -> tuple[str | None, int | None]:
    """``(owner, czxid)`` of the lease on ``unit``, or ``(None, None)``."""
    try:
        data, stat = zk.get(f"{lease_dir}/{unit}")
    except NoNodeError:
        return None, None
    return owner_of(data), stat.czxid


def owner_of(data: bytes) -> str | None:
    """The owner named in a lease node's data (None if unreadable)."""
    try:
        return json.loads(data.decode()).get("owner")
    except ValueError:
        return None
