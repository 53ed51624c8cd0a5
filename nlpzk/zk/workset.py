"""A one-shot set of work units shared by several processes through fenced leases (see :mod:`.lease`).

Layout under ``base``::

    base                 {anything small the creator wants to say about the work}
    base/fences/<unit>   persistent fence counter per unit (the unit list itself)
    base/leases/<unit>   ephemeral: who works on the unit now
    base/done/<unit>     the unit's result, created only by a fenced commit

Unlike a training round there is no barrier to pass and no next round: the set is finished when
every unit has a ``done`` node, and the creator then reads the results and deletes the tree.

Connection states: on SUSPENDED a worker keeps computing; on LOST its leases vanish with the session,
its later commit is rejected by the fence (``FencedError``) and another worker does the unit again.
Creation and every commit are single transactions, so nothing is ever half-written.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from ..errors import NotFoundError
from . import lease as _lease
from . import registry


def create(zk: KazooClient, base: str, doc: dict[str, Any], units: Iterable[str]) -> None:
    """Create ``base`` with its units in one transaction (raises NodeExistsError if it exists).

    ``base/owner`` is an ephemeral node of the creating session, created in the same transaction:
    a work set without it was left by a creator that died (``nlpzk gc`` removes it once old)."""
    units = list(units)
    parent = base.rsplit("/", 1)[0]
    # not ensure_path: a model deleted while its evaluation starts would come back as an empty node
    if not registry.create_below(zk, [parent]):
        raise NotFoundError(f"{parent.rsplit('/', 1)[0]} does not exist (deleted meanwhile?)", hint="check that it still exists, then run it again")
    tx = zk.transaction()
    tx.create(base, registry.dumps(doc))
    tx.create(f"{base}/owner", b"", ephemeral=True)
    for sub in ("fences", "leases", "done"):
        tx.create(f"{base}/{sub}", b"")
    for unit in units:
        tx.create(f"{base}/fences/{unit}", b"")
    registry.commit(tx, f"creating {base}")


def units(zk: KazooClient, base: str) -> list[str]:
    if not zk.exists(base):
        raise NotFoundError(f"{base} does not exist (finished and cleaned up, or never started)")
    return registry.children(zk, f"{base}/fences")


def done(zk: KazooClient, base: str) -> dict[str, dict[str, Any]]:
    """Results of the finished units."""
    out = {}
    for unit in registry.children(zk, f"{base}/done"):
        doc = registry.maybe_json(zk, f"{base}/done/{unit}")
        if doc is not None:
            out[unit] = doc
    return out


def lease_next(zk: KazooClient, base: str, owner: str) -> tuple[_lease.Lease | None, bool]:
    """Lease a unit that is neither done nor leased. Returns ``(lease or None, all units done)``."""
    all_units = units(zk, base)
    finished = set(registry.children(zk, f"{base}/done"))
    leased = set(registry.children(zk, f"{base}/leases"))
    for unit in all_units:
        if unit in finished or unit in leased:
            continue
        got = _lease.acquire(zk, f"{base}/leases", f"{base}/fences", unit, owner, absent=f"{base}/done/{unit}")
        if got is not None:
            return got, False
    return None, len(finished) >= len(all_units)


def commit(zk: KazooClient, base: str, held: _lease.Lease, result: dict[str, Any]) -> None:
    """Record ``result`` for the leased unit; FencedError if the lease was lost meanwhile."""
    data = registry.dumps(result)
    _lease.commit(zk, [held], lambda tx: tx.create(f"{base}/done/{held.unit}", data), f"result of {held.unit}")


class Waiter:
    """Blocks until leases or results under ``base`` change (a holder died, a unit finished).

    One instance per waiting process: kazoo keeps watchers in a set, so re-arming the same bound
    method on every wait does not pile up callbacks while nothing happens.
    """

    def __init__(self, zk: KazooClient, base: str) -> None:
        self.zk = zk
        self.base = base
        self._changed = threading.Event()

    def _poke(self, _event: Any) -> None:
        self._changed.set()

    def wait(self, timeout: float) -> bool:
        self._changed.clear()
        try:
            self.zk.get_children(f"{self.base}/done", watch=self._poke)
            self.zk.get_children(f"{self.base}/leases", watch=self._poke)
        except NoNodeError:
            return True  # deleted: the creator has what it needs
        return self._changed.wait(timeout)


def delete(zk: KazooClient, base: str) -> None:
    try:
        zk.delete(base, recursive=True)
    except NoNodeError:
        pass
