"""A membership-aware round barrier with timeouts, and the atomic publish of a round's result.

Layout for job ``j`` (paths from :mod:`nlpzk.zk.paths`)::

    /jobs/j                      {..., "round": r, "state": "running"|"done"}   advanced by publish
    /jobs/j/fences/<unit>        persistent fence counters (see nlpzk.zk.lease)
    /jobs/j/rounds/<r>           {params, words_before, ...}; after the merge also the round's summary
    /jobs/j/rounds/<r>/leases/<unit>   ephemeral lease
    /jobs/j/rounds/<r>/done/<unit>     {worker, contrib}
    /jobs/j/rounds/<r>/contribs/<name> {worker, units, words, loss, timings}: one per commit
    /jobs/j/rounds/<r>/mleases/<part>  ephemeral lease of a merge part (a row range)
    /jobs/j/rounds/<r>/mdone/<part>    {worker, path, rows, seconds}
    /jobs/j/rounds/<r>/merge     ephemeral: who publishes this round

The barrier of round ``r`` opens when every unit has a ``done`` node. It never waits on a member:
a dead worker's leases vanish with its session and its units can be leased again in the same
round; a worker that is alive but stuck loses a lease it held longer than ``lease_timeout`` on the
waiter's own (injected) clock, measured from when the waiter first saw that very lease node (czxid),
so machines' clocks never need to agree.

The merge is reduce-scattered: each worker leases row ranges ("parts") of the merge the same
fenced way as shards, and one worker then publishes the list of parts. Publishing is one transaction: the job node moves to the next round with a version check (so two
mergers can never both advance a round), the round gets its summary, and the next round node is
created with its parameters' store path.

Connection states: on SUSPENDED, waits just time out and are retried; every write is a transaction
that either happens whole or not at all, so on LOST nothing is half-done (leases are gone, commits
fenced) and the caller re-reads the job node to find where things stand.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any, Callable, Iterable

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ConnectionClosedError, ConnectionLoss, NodeExistsError, NoNodeError, NotEmptyError, OperationTimeoutError, SessionExpiredError
from kazoo.retry import RetryFailedError

from ..errors import FencedError
from . import lease as _lease
from . import paths, registry


#: The folders of a round, created with it and pruned after its merge. ``contribs`` came later: a
#: round created before it has none, and its round document no ``"contribs"`` flag.
ROUND_FOLDERS = (paths.round_leases, paths.round_done, paths.round_merge_leases, paths.round_merge_done, paths.round_contribs)

#: What an open round's document holds (a merged round's adds its summary to them):
#: :meth:`RoundBarrier.reopen` keeps these.
OPEN_ROUND_KEYS = ("round", "params", "sums", "words_before", "opened", "contribs")

#: Keys every job document has from its creation (:func:`create_job`): one without them was
#: changed outside nlpzk, and reading it as round 0 / no words would train or report the wrong thing.
JOB_KEYS = ("spec", "state", "round", "words")


def check_job(doc: Any, where: str) -> Any:
    """``doc`` (a job node's document, or None) if it has :data:`JOB_KEYS` and its ``spec`` is an
    object; CorruptDocumentError naming the znode ``where`` otherwise (every reader of a spec calls
    ``spec.get``: one of another type was a traceback)."""
    if doc is None:
        return None
    registry.require(doc, JOB_KEYS, where)
    if not isinstance(doc["spec"], dict):
        raise registry.CorruptDocumentError(
            f"znode {where} holds {json.dumps(doc['spec'])[:40]} as 'spec', not an object", hint="it was changed outside nlpzk; restore it from a ZooKeeper backup"
        )
    return doc

#: What a caller of this recipe catches to ride out SUSPENDED/LOST (then re-read the job node).
#: RetryFailedError: kazoo's command retry (which retries connection errors only) gave up.
CONNECTION_ERRORS = (ConnectionLoss, SessionExpiredError, OperationTimeoutError, ConnectionClosedError, RetryFailedError)


@dataclasses.dataclass
class RoundState:
    """One look at a round: which units are done and which are leased (owner, czxid)."""

    round: int
    done: dict[str, dict[str, Any]]
    leased: dict[str, tuple[str | None, int | None]]
    units: list[str]

    @property
    def complete(self) -> bool:
        return all(u in self.done for u in self.units)

    @property
    def free(self) -> list[str]:
        return [u for u in self.units if u not in self.done and u not in self.leased]


@dataclasses.dataclass(frozen=True)
class RoundOverview:
    state: RoundState
    contribs: list[str]
    merge_lists: tuple[list[str], list[str]]


class RoundBarrier:
    """Coordinates the rounds of one job over a fixed list of units (shard ids)."""

    def __init__(
        self,
        zk: KazooClient,
        job: str,
        units: Iterable[str],
        *,
        lease_timeout: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.zk = zk
        self.job = job
        self.units = list(units)
        self.lease_timeout = lease_timeout
        self.clock = clock
        self._changed = threading.Event()
        self._first_seen: dict[tuple[str, int], float] = {}
        self._merge_fences = 0
        # what this barrier last read of each folder a round waits on (its children) and of the
        # job node (its version): wait() returns at once if they differ from what it reads
        self._seen: dict[str, Any] = {}
        self._fresh_job: tuple[bytes, Any] | None = None  # see fresh_job_doc

    # -- reading --------------------------------------------------------------------------------

    def job_doc(self) -> tuple[dict[str, Any], int]:
        doc, stat = registry.get_json(self.zk, paths.job(self.job), what=f"job {self.job!r}")
        self._seen[paths.job(self.job)] = stat.version
        return check_job(doc, registry.full_path(self.zk, paths.job(self.job))), stat.version

    def round_doc(self, r: int) -> dict[str, Any] | None:
        return registry.maybe_json(self.zk, paths.job_round(self.job, r))

    def state(self, r: int, docs: bool = True) -> RoundState:
        """Who holds and who finished which unit of round ``r``.

        ``docs=False`` reads the two lists only (one round trip, no per-unit reads): the lease
        owners and done documents are left empty. Enough to pick a free unit or to see whether the
        round is complete; the merge and lease revocation read the full state.

        The reads are pipelined (one round trip per list, not one per unit: a worker calls this
        before every lease). Leases are read before done markers: a commit turns a lease into a
        done marker atomically, so a unit committed between the two reads shows up as done, never
        as free (ZooKeeper answers one session's requests in order).
        """
        lease_dir, done_dir = paths.round_leases(self.job, r), paths.round_done(self.job, r)
        if not docs:
            leased_names, done_names = _lists(self.zk, lease_dir, done_dir)
            self._seen.update({lease_dir: set(leased_names), done_dir: set(done_names)})
            return RoundState(r, {u: {} for u in done_names}, {u: (None, None) for u in leased_names}, self.units)
        names = registry.children(self.zk, lease_dir)
        leased = {}
        for unit, got in zip(names, registry.get_many(self.zk, [f"{lease_dir}/{n}" for n in names])):
            if got is not None:
                leased[unit] = (_lease.owner_of(got[0]), got[1].czxid)
        done = _docs(self.zk, done_dir)
        self._seen.update({lease_dir: set(names), done_dir: set(done)})
        return RoundState(r, done, leased, self.units)

    # -- working --------------------------------------------------------------------------------

    def _open(self, r: int) -> tuple[str, int]:
        # a round node keeps version 0 while the round is open; publishing sets its summary
        return paths.job_round(self.job, r), 0

    def lease_next(self, r: int, owner: str, prefer: Iterable[str] = (), st: RoundState | None = None) -> tuple[_lease.Lease | None, RoundState]:
        """Lease a unit of round ``r`` that is neither done nor leased (``prefer``'s order first).

        Returns the lease (None if no unit was free) and the round state seen just before: ``st``
        if the caller has just read it (a unit taken since is skipped: the acquire is atomic).
        """
        st = self.state(r, docs=False) if st is None else st
        free = st.free
        prefer = [u for u in prefer if u in free]
        order = prefer + [u for u in free if u not in set(prefer)]
        for unit in order:
            got = _lease.acquire(
                self.zk, paths.round_leases(self.job, r), paths.job_fences(self.job), unit, owner,
                absent=paths.round_done_shard(self.job, r, unit), guard=self._open(r),
            )
            if got is not None:
                return got, st
        return None, st

    def lease_many(self, r: int, owner: str, units: list[str]) -> list[_lease.Lease]:
        """Lease all of ``units`` of round ``r`` in one transaction, or none (``[]``) if any is taken."""
        return _lease.acquire_many(
            self.zk, paths.round_leases(self.job, r), paths.job_fences(self.job), units, owner,
            absent=lambda u: paths.round_done_shard(self.job, r, u), guard=self._open(r),
        )

    def commit(self, r: int, leases: list[_lease.Lease], doc: dict[str, Any], *, separate: bool = False) -> None:
        """Mark the leased units done with ``doc`` (the contribution), fenced; FencedError if not held.

        ``separate`` (rounds with a ``contribs`` folder): ``doc`` goes to ONE node
        ``contribs/<doc["contrib"]>`` and each done marker carries only ``{worker, contrib}``, so
        the merge reads one node per commit instead of one per unit (64 reads cost ~25 ms of the
        critical path here). Otherwise every done marker carries ``doc``.

        Retried across connection loss. A retry after a commit that did succeed (the reply was lost)
        finds its leases released; it is told apart from a real fence by reading back the done
        markers, which carry the contribution's unique name.
        """
        data = registry.dumps(doc)
        marker = registry.dumps({"worker": doc.get("worker"), "contrib": doc.get("contrib")}) if separate else data

        def build(tx) -> None:
            tx.check(*self._open(r))
            for l in leases:
                tx.create(paths.round_done_shard(self.job, r, l.unit), marker)
            if separate:
                tx.create(f"{paths.round_contribs(self.job, r)}/{doc['contrib']}", data)

        try:
            self.zk.retry(_lease.commit, self.zk, leases, build, f"commit of round {r}")
        except FencedError:
            mine = [registry.maybe_json(self.zk, paths.round_done_shard(self.job, r, l.unit)) for l in leases]
            if doc.get("contrib") is None or any(m is None or m.get("contrib") != doc["contrib"] for m in mine):
                _lease.release(self.zk, leases)
                raise

    def drop_contributions(self, r: int, units: dict[str, list[str]], *, separate: bool) -> bool:
        """Un-commit contributions (``{name: units}``) whose files cannot be read: one transaction,
        only while round ``r`` is open, deletes their done markers (and contribution nodes), so
        their units are leased and trained again in this round. It also deletes the round's merged
        parts and bumps every merge-part fence: a part reduced from the old contributions, or being
        reduced now, can never be published. False if the round changed meanwhile (look again)."""
        mdone = paths.round_merge_done(self.job, r)
        done_parts, fences = _lists(self.zk, mdone, paths.job_merge_fences(self.job))
        tx = self.zk.transaction()
        tx.check(*self._open(r))
        for name, names in units.items():
            if separate:
                tx.delete(f"{paths.round_contribs(self.job, r)}/{name}")
            for unit in names:
                tx.delete(paths.round_done_shard(self.job, r, unit))
        for part in done_parts:
            tx.delete(f"{mdone}/{part}")
        for part in fences:
            tx.set_data(f"{paths.job_merge_fences(self.job)}/{part}", b"dropped")
        return not any(isinstance(x, Exception) for x in tx.commit())

    def contributions(self, r: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Round ``r``'s committed contributions ``{name: doc}`` (rounds with a ``contribs`` folder);
        ``names``: their names as just listed (:meth:`overview`), saving that read."""
        if names is None:
            return _docs(self.zk, paths.round_contribs(self.job, r))
        folder = paths.round_contribs(self.job, r)
        return {n: doc for n, doc in zip(names, registry.many_json(self.zk, [f"{folder}/{n}" for n in names])) if doc is not None}

    def overview(self, r: int) -> RoundOverview:
        """Round ``r``'s lists, in one round trip: :meth:`state` ``(docs=False)``, the contributions'
        names, and the merge parts leased and done (the lists :meth:`merge_state` starts from).

        What a worker reads when its commit may have completed the round, before it merges
        (three reads otherwise). Leases before done markers before contributions, as in
        :meth:`state`: a commit seen in the done list is in the contributions listed after it."""
        dirs = [paths.round_leases(self.job, r), paths.round_done(self.job, r), paths.round_contribs(self.job, r), paths.round_merge_leases(self.job, r), paths.round_merge_done(self.job, r)]
        lists = _lists(self.zk, *dirs)
        self._seen.update({d: set(names) for d, names in zip(dirs, lists) if d != dirs[2]})
        leased, done, contribs, mleased, mdone = lists
        st = RoundState(r, {u: {} for u in done}, {u: (None, None) for u in leased}, self.units)
        return RoundOverview(st, contribs, (mleased, mdone))

    def revoke_stale(self, r: int) -> list[str]:
        """Revoke leases held longer than ``lease_timeout`` (as seen from here). Returns the units.

        Reads the lease nodes (for their czxid) and the done list, not the done documents."""
        st = self.state(r, docs=False)
        lease_dir, leased_names, done = paths.round_leases(self.job, r), sorted(st.leased), set(st.done)
        now = self.clock()
        live = set()
        revoked = []
        for unit, got in zip(leased_names, registry.get_many(self.zk, [f"{lease_dir}/{n}" for n in leased_names])):
            if got is None:
                continue
            czxid = got[1].czxid
            key = (unit, czxid)
            live.add(key)
            first = self._first_seen.setdefault(key, now)
            if now - first >= self.lease_timeout and unit not in done:
                if _lease.revoke(self.zk, paths.round_leases(self.job, r), paths.job_fences(self.job), unit, czxid):
                    revoked.append(unit)
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in live}
        return revoked

    def wait(self, r: int, timeout: float) -> bool:
        """Block until round ``r``'s leases, done units, merge parts, merge node or the job node change, or ``timeout``.

        Returns True on a change, at once if what the watches are set with differs from what this
        barrier last read of it (:meth:`state`, :meth:`overview`, :meth:`merge_state`, :meth:`job_doc`): a caller
        decides to wait on what it read before, and a change between that read and the watch
        would otherwise be missed (another worker's commit completing the round, seen only at the
        next change or the timeout: ~10 ms per round in bench/trace_train_round.py, up to the
        poll interval when nothing else changes). Watches are one-shot and deduplicated (same
        callback), so waiting in a loop does not pile them up.
        """
        self._changed.clear()
        self._fresh_job = None
        folders = [paths.round_done(self.job, r), paths.round_leases(self.job, r), paths.round_merge_done(self.job, r), paths.round_merge_leases(self.job, r)]
        pending = [self.zk.get_children_async(f, watch=self._poke) for f in folders] + [
            self.zk.get_async(paths.job(self.job), watch=self._poke),
            self.zk.exists_async(paths.round_merge(self.job, r), watch=self._poke),
        ]
        got: list[Any] = []
        pruned = False
        for req in pending:  # all sent at once (one round trip), each answer checked
            try:
                got.append(req.get())
            except NoNodeError:
                pruned = True
        if pruned:
            return True  # the round was pruned: it has been merged, so things did change
        now = {f: set(names) for f, names in zip(folders, got)}
        now[paths.job(self.job)] = got[4][1].version
        moved = any(key in self._seen and self._seen[key] != value for key, value in now.items())
        self._seen = now  # a caller that waits again without reading waits for the next change
        if moved:
            self._fresh_job = got[4]
            return True
        return self._changed.wait(timeout)

    def fresh_job_doc(self) -> tuple[dict[str, Any], int] | None:
        """The job node as :meth:`wait` read it when it returned at once (a change it saw), once; else
        None. A caller that loops on wait() saves reading it again (another round trip)."""
        got, self._fresh_job = self._fresh_job, None
        if got is None:
            return None
        where = registry.full_path(self.zk, paths.job(self.job))
        return check_job(registry.loads(got[0], where), where), got[1].version

    def _poke(self, _event: Any) -> None:
        self._changed.set()

    # -- merging --------------------------------------------------------------------------------

    @staticmethod
    def part_name(i: int) -> str:
        return f"p{i:04d}"

    def merge_state(self, r: int, parts: int, lists: tuple[list[str], list[str]] | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Round ``r``'s merged parts ``{part: doc}`` and the parts neither merged nor leased.

        Two round trips: both lists (leases first, as in :meth:`state`), then the done documents;
        one with ``lists`` (leased, done) as :meth:`overview` just read them."""
        mdone = paths.round_merge_done(self.job, r)
        if lists is None:
            lists = _lists(self.zk, paths.round_merge_leases(self.job, r), mdone)
            self._seen.update({paths.round_merge_leases(self.job, r): set(lists[0]), mdone: set(lists[1])})
        leased_names, done_names = lists
        leased = set(leased_names)
        done = {n: doc for n, doc in zip(done_names, registry.many_json(self.zk, [f"{mdone}/{n}" for n in done_names])) if doc is not None}
        free = [self.part_name(i) for i in range(parts) if self.part_name(i) not in done and self.part_name(i) not in leased]
        return done, free

    def merged_parts(self, r: int) -> dict[str, dict[str, Any]]:
        """Round ``r``'s merged parts ``{part: doc}`` as they are now (two round trips; unlike
        :meth:`merge_state`, not remembered for :meth:`wait`: for the tidy and recovery)."""
        return _docs(self.zk, paths.round_merge_done(self.job, r))

    def lease_merge_part(self, r: int, owner: str, parts: int, free: list[str] | None = None) -> _lease.Lease | None:
        """Lease a row range of round ``r``'s merge (reduce-scatter: every worker reduces some rows).

        ``free``: the free parts as the caller just read them (:meth:`merge_state`), saving the
        reads; a part taken since then is simply skipped (the acquire is atomic)."""
        if free is None:
            _done, free = self.merge_state(r, parts)
        if free and self._merge_fences < parts:
            _lease.ensure_fences(self.zk, paths.job_merge_fences(self.job), [self.part_name(i) for i in range(parts)])
            self._merge_fences = max(self._merge_fences, parts)
        for part in free:
            got = _lease.acquire(
                self.zk, paths.round_merge_leases(self.job, r), paths.job_merge_fences(self.job), part, owner,
                absent=f"{paths.round_merge_done(self.job, r)}/{part}", guard=self._open(r),
            )
            if got is not None:
                return got
        return None

    def commit_merge_part(self, r: int, held: _lease.Lease, doc: dict[str, Any], parts: int | None = None) -> dict[str, dict[str, Any]] | None:
        """Record a reduced part (fenced, like a shard commit).

        With ``parts``, the merged parts ``{part: doc}`` (of the round's ``parts``) as they stand
        right after this commit, read in the same round trip (the merge parts' documents are sent
        behind the transaction): whoever sees every part in is the first that can publish. None
        without ``parts``, or when the commit's reply was lost and a retry found it done.

        As in :meth:`commit`, a retry after a commit whose reply was lost finds the lease released;
        the part's node, naming ``doc["path"]`` (unique per attempt), tells it from a real fence."""
        data = registry.dumps(doc)
        mdone = paths.round_merge_done(self.job, r)
        done = f"{mdone}/{held.unit}"
        names = [self.part_name(i) for i in range(parts or 0)]
        part_paths = [f"{mdone}/{n}" for n in names]

        def build(tx) -> None:
            tx.check(*self._open(r))
            tx.create(done, data)

        def then() -> list[Any]:
            return [self.zk.get_async(p) for p in part_paths]

        try:
            pending = self.zk.retry(_lease.commit, self.zk, [held], build, f"merge part {held.unit} of round {r}", **({"then": then} if names else {}))
        except FencedError:
            mine = self.zk.retry(registry.maybe_json, self.zk, done)
            if mine is None or doc.get("path") is None or mine.get("path") != doc["path"]:
                _lease.release(self.zk, [held])
                raise
            return None
        if not names:
            return None
        merged = {n: d for n, d in zip(names, registry.many_json(self.zk, part_paths, pending)) if d is not None}
        self._seen[mdone] = set(merged)
        return merged

    def try_merge(self, r: int, owner: str) -> bool:
        """Become the merger of round ``r`` (ephemeral node); False if another worker is merging."""
        try:
            self.zk.create(paths.round_merge(self.job, r), owner.encode(), ephemeral=True)
            return True
        except NodeExistsError:
            return False
        except NoNodeError:
            return False  # round already pruned

    def release_own(self, r: int, owner: str) -> list[str]:
        """Give up every lease (shard or merge part) and the merge node ``owner`` holds in round ``r``.

        For a worker that dropped its in-flight work after a connection loss its session survived:
        an acquire or commit whose reply was lost may have left leases that nobody works on, and
        that would otherwise stay until ``lease_timeout`` (found by tests/faults with a stopped
        ZooKeeper leader). Deleting them is safe: a re-acquire bumps the fence, so the dropped work
        can never commit. Returns the released names.
        """
        released = []
        for lease_dir in (paths.round_leases(self.job, r), paths.round_merge_leases(self.job, r)):
            for unit in registry.children(self.zk, lease_dir):
                held_by, _czxid = _lease.holder(self.zk, lease_dir, unit)
                if held_by == owner:
                    try:
                        self.zk.delete(f"{lease_dir}/{unit}")
                        released.append(unit)
                    except NoNodeError:
                        pass
        try:
            data, _ = self.zk.get(paths.round_merge(self.job, r))
            if data.decode("utf-8", "replace") == owner:
                self.release_merge(r)
                released.append("merge")
        except NoNodeError:
            pass
        return released

    def release_merge(self, r: int) -> None:
        try:
            self.zk.delete(paths.round_merge(self.job, r))
        except NoNodeError:
            pass

    def publish(
        self,
        r: int,
        job_version: int,
        job_doc: dict[str, Any],
        round_summary: dict[str, Any],
        next_round: dict[str, Any] | None,
        *,
        unclaimed: bool = False,
    ) -> int | None:
        """Atomically: job node -> ``job_doc`` (if still at ``job_version``), round ``r`` -> its summary,
        and (unless the job ends) round ``r + 1`` created with ``next_round``. Returns the job node's
        new version (>= 1); None if someone else won.

        ``unclaimed``: for a caller that did not take the round's merge node (:meth:`try_merge`):
        the transaction also checks that nobody holds it (creating and deleting it: ZooKeeper has
        no "check absent"), so a worker that holds it is never published over (None then)."""
        tx = self.zk.transaction()
        if unclaimed:
            tx.create(paths.round_merge(self.job, r), b"")
            tx.delete(paths.round_merge(self.job, r))
        tx.set_data(paths.job(self.job), registry.dumps(job_doc), version=job_version)
        tx.set_data(paths.job_round(self.job, r), registry.dumps(round_summary))
        if next_round is not None:
            nxt = r + 1
            tx.create(paths.job_round(self.job, nxt), registry.dumps(dict(next_round, contribs=True)))
            for sub in ROUND_FOLDERS:
                tx.create(sub(self.job, nxt), b"")
        results = tx.commit()
        bad = [x for x in results if isinstance(x, Exception)]
        if not bad:
            return int(results[2 if unclaimed else 0].version)
        if any(isinstance(x, (BadVersionError, NodeExistsError)) for x in bad):
            return None
        registry.raise_if_refused(results)
        raise registry.first_error(results)

    def reopen(self, k: int, job_version: int, job_doc: dict[str, Any], round_doc: dict[str, Any]) -> bool:
        """Atomically take the job back to merged round ``k`` (see ``nlpzk.train.recover``): the job
        node -> ``job_doc`` (if still at ``job_version``), round ``k`` open again with ``round_doc``
        and its done markers and contributions (its merge parts, leases and merge node dropped),
        and every later round's nodes deleted. False if the job node moved meanwhile (or a node
        appeared under what is deleted: a worker still at work; the caller reads the job again).

        Round ``k``'s node is deleted and created again with the children it keeps: an open
        round's node is at version 0, which every commit checks (:meth:`_open`)."""
        rounds = [k]
        while self.zk.exists(paths.job_round(self.job, rounds[-1] + 1)) is not None:
            rounds.append(rounds[-1] + 1)
        # only the folders there: a round created by an older nlpzk has no contribs folder, and a
        # delete of it would fail this transaction every time
        subs = [sub for sub in (f(self.job, j) for j in rounds for f in ROUND_FOLDERS) if self.zk.exists(sub) is not None]
        lists = _lists(self.zk, *subs)
        kept_dirs = (paths.round_done(self.job, k), paths.round_contribs(self.job, k))
        kept = {d: dict(zip(names, registry.get_many(self.zk, [f"{d}/{n}" for n in names]))) for d, names in zip(subs, lists) if d in kept_dirs}
        tx = self.zk.transaction()
        tx.set_data(paths.job(self.job), registry.dumps(job_doc), version=job_version)
        for sub, names in zip(subs, lists):
            for c in names:
                tx.delete(f"{sub}/{c}")
            tx.delete(sub)
        for j in rounds:
            if self.zk.exists(paths.round_merge(self.job, j)) is not None:
                tx.delete(paths.round_merge(self.job, j))
            tx.delete(paths.job_round(self.job, j))
        tx.create(paths.job_round(self.job, k), registry.dumps(round_doc))
        for sub in ROUND_FOLDERS:
            tx.create(sub(self.job, k), b"")
        for d, children in kept.items():
            for name, got in children.items():
                if got is not None:
                    tx.create(f"{d}/{name}", got[0])
        results = tx.commit()
        bad = [x for x in results if isinstance(x, Exception)]
        if not bad:
            return True
        if any(isinstance(x, (BadVersionError, NoNodeError, NotEmptyError, NodeExistsError)) for x in bad):
            return False
        registry.raise_if_refused(results)
        raise registry.first_error(results)

    def prune(self, r: int) -> None:
        """Drop round ``r``'s per-unit nodes once it is merged (its summary stays on the round node).

        Pipelined: one round trip lists the folders, one deletes every node in them, one the
        folders (this runs between two rounds, on the path every worker waits on)."""
        subs = [sub(self.job, r) for sub in ROUND_FOLDERS]
        leaves = [f"{sub}/{c}" for sub, names in zip(subs, _lists(self.zk, *subs)) for c in names]
        for batch in (leaves, subs):
            for req in [self.zk.delete_async(p) for p in batch]:
                try:
                    req.get()
                except (NoNodeError, NotEmptyError):
                    pass  # gone already / a late node: the recursive delete below catches it
        for sub in subs:
            if self.zk.exists(sub):
                try:
                    self.zk.delete(sub, recursive=True)
                except NoNodeError:
                    pass
        self.release_merge(r)


def _docs(zk: KazooClient, folder: str) -> dict[str, Any]:
    """The documents of ``folder``'s children by name (pipelined reads; a child gone meanwhile is left out)."""
    names = registry.children(zk, folder)
    return {n: doc for n, doc in zip(names, registry.many_json(zk, [f"{folder}/{n}" for n in names])) if doc is not None}


def _lists(zk: KazooClient, *folders: str) -> list[list[str]]:
    """The sorted children of each folder, in one round trip (requests pipelined and answered in
    order); [] for a folder that is gone."""
    out = []
    for req in [zk.get_children_async(f) for f in folders]:
        try:
            out.append(sorted(req.get()))
        except NoNodeError:
            out.append([])
    return out


def create_job(
    zk: KazooClient, job: str, job_doc: dict[str, Any], round0: dict[str, Any], units: Iterable[str], guards: Iterable[tuple[str, int]] = ()
) -> bool:
    """Create the job node and its first round in one transaction; False if the job already exists.

    ``guards``: ``(path, znode version)`` of guard nodes set in the same transaction (the corpus's
    and the vocabulary's, and the holds of both, see ``versioned.GuardHold``); if one moved or is gone
    meanwhile, ``StaleCheck``."""
    units = list(units)
    checks = list(guards)
    tx = zk.transaction()
    zk.ensure_path(paths.JOBS)
    for path, version in checks:
        tx.set_data(path, b"", version=version)
    tx.create(paths.job(job), registry.dumps(job_doc))
    tx.create(paths.job_workers(job), b"")
    tx.create(paths.job_fences(job), b"")
    tx.create(paths.job_merge_fences(job), b"")
    for u in units:
        tx.create(f"{paths.job_fences(job)}/{u}", b"")
    tx.create(paths.job_rounds(job), b"")
    tx.create(paths.job_round(job, 0), registry.dumps(dict(round0, contribs=True)))
    for sub in ROUND_FOLDERS:
        tx.create(sub(job, 0), b"")
    results = tx.commit()
    bad = [x for x in results if isinstance(x, Exception)]
    if not bad:
        return True
    registry.raise_if_refused(results)
    failed = [path for (path, _), r in zip(checks, results) if isinstance(r, (BadVersionError, NoNodeError))]
    if failed:
        raise StaleCheck(failed[0])
    if isinstance(results[len(checks)], NodeExistsError):
        return False
    raise registry.first_error(results)


class StaleCheck(Exception):
    """A guard node :func:`create_job` was to set changed or vanished meanwhile (``args[0]``: its path)."""
