"""The worker loop: join a job, lease work units round by round, train, commit under fencing, merge.

In round ``r`` a worker starts from the round's global parameters, leases work units (shards, or
pieces of big ones) in batches until none is free, trains each unit's ``r``-th slice on its local
model (learning rate from the global schedule: words of the round already claimed by anyone), then
writes ONE contribution (the delta, plus per-word counts for the rules that use them) to the store
and commits it for all the units it leased in one fenced transaction. It then waits at the barrier:
units freed by a dead or revoked worker are leased again; when every unit is done, the workers
reduce row ranges of the merge, and one of them publishes the next round (or the final vectors)
atomically.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import os
import posixpath
import socket
import threading
import time
import uuid
import zlib
from typing import Any, Callable

import numpy as np
import pyarrow as pa
from kazoo.exceptions import ConnectionLoss, NoNodeError

from ..cluster import Cluster, public
from ..corpus import ShardInfo, read_shard
from ..errors import ConflictError, FencedError, IntegrityError, StoreError, TrainingError, WrongStoreError, ZkUnavailableError
from ..store import is_tmp, naming
from ..zk import paths, registry
from ..zk.client import RECONNECT_LIMIT
from ..zk import members as _members
from ..zk.members import Member
from ..zk.rounds import CONNECTION_ERRORS, RoundBarrier, RoundOverview, RoundState
from . import _model, job as _job, merge as _merge, recover, spares

log = logging.getLogger("nlpzk.train")

Event = Callable[[str, dict[str, Any]], None]

#: Seconds a worker that finds every merge part of a round in leaves its publish to the worker
#: whose part landed last (which publishes in the same breath, normally within milliseconds)
#: before publishing it itself: what a publisher that died between the two costs the round.
PUBLISH_GRACE = 0.5

#: Tidied round files kept as spares for the next rounds' writes (spares.py); tests turn it off
#: to compare.
RECYCLE = True


@dataclasses.dataclass
class _Shard:
    """A shard as a worker trains it (kept in memory across rounds).

    For the batched kernel only ``ids`` is kept (4 bytes a token). For gensim's,
    ``tokens`` holds the shard's in-vocabulary tokens in one flat list, as the vocabulary's own
    ``str`` objects (the model's ``index_to_key``), not one new object per token: gensim skips
    out-of-vocabulary tokens without counting them in the window, so dropping them first trains the
    same; 8 bytes a token instead of a string object each (~60), and gensim's per-token dictionary
    lookups hit the same few objects (~3 % faster training here). The per-sentence lists gensim
    takes are sliced from it for the round's slice only (:meth:`sentences`): a list per sentence
    kept for the whole job cost 64 bytes a sentence more, and hundreds of thousands of long-lived
    lists made each of Python's full garbage collections scan them all (~0.1 s each, ~1 s per
    worker while the shards were first read).
    """

    tokens: list[str] | None  # for gensim's kernel only
    offsets: np.ndarray  # cumulative tokens (all of them) before each sentence: len = sentences + 1
    kept: np.ndarray  # cumulative in-vocabulary tokens before each sentence
    ids: np.ndarray | None  # vocab ids (int32) of the kept tokens: for the batched kernel and rules that count words (*wmean)

    def id_slice(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Sentences ``a:b`` for the batched kernel: their ids end to end (a view) and where each starts."""
        assert self.ids is not None, "the shard was read without ids"
        lo = int(self.kept[a])
        return self.ids[lo : int(self.kept[b])], self.kept[a : b + 1] - lo

    def sentences(self, a: int, b: int) -> list[list[str]]:
        """Sentences ``a:b`` as lists of their in-vocabulary tokens (for gensim's kernel)."""
        assert self.tokens is not None, "the shard was read for the batched kernel"
        bounds = self.kept[a : b + 1].tolist()
        # map over slice objects: half the time of a list comprehension over zip (47 vs 96-126 ms
        # for a round's 62k sentences), time in which this worker trains nothing
        return list(map(self.tokens.__getitem__, map(slice, bounds[:-1], bounds[1:])))

    @property
    def nbytes(self) -> int:
        """Memory held: a pointer per kept token, the list object, and the arrays."""
        return (0 if self.tokens is None else 56 + 8 * len(self.tokens)) + self.offsets.nbytes + self.kept.nbytes + (0 if self.ids is None else self.ids.nbytes)

    def counts(self, a: int, b: int, out: np.ndarray) -> None:
        """Add the vocabulary ids' occurrences in sentences ``a:b`` to ``out`` (needs ``ids``)."""
        assert self.ids is not None, "the shard was read without ids"
        out += np.bincount(self.ids[self.kept[a] : self.kept[b]], minlength=len(out))


def default_cache_bytes() -> int:
    """The shard cache's default budget per worker: a quarter of the machine's memory shared by
    its cores (``train run`` starts a worker per core by default), at least 256 MiB, at most 4 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(max(256 << 20, min(4 << 30, total // (4 * (os.cpu_count() or 1)))))


@dataclasses.dataclass
class WorkerReport:
    worker: str
    rounds: int = 0
    commits: int = 0
    fenced: int = 0
    merges: int = 0
    words: int = 0
    state: str = ""


@public
class Worker:
    """One training process. ``run()`` returns when the job is done or ``stop`` is set.

    ``clock``/``sleep``-free: every timeout is decided by :class:`RoundBarrier` with ``clock``; the
    loop only waits on ZooKeeper watches with ``poll`` seconds as an upper bound.
    """

    def __init__(
        self,
        cluster: Cluster,
        job: str,
        *,
        threads: int = 1,
        stop: threading.Event | None = None,
        on_event: Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll: float = 2.0,
        worker_id: str | None = None,
        reconnect_timeout: float = RECONNECT_LIMIT,
        cache_bytes: int | None = None,
    ) -> None:
        self.cluster = cluster
        self.job = job
        self.threads = max(1, threads)
        self.stop = stop or threading.Event()
        self.on_event = on_event or (lambda kind, info: None)
        self.clock = clock
        self.poll = poll
        self.reconnect_timeout = reconnect_timeout
        self.id = worker_id or f"{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.report = WorkerReport(self.id)
        # shards in memory, least recently used first, within a budget (see _shard)
        self._cache: collections.OrderedDict[str, _Shard] = collections.OrderedDict()
        self._cache_bytes = 0
        self.cache_budget = default_cache_bytes() if cache_bytes is None else max(0, int(cache_bytes))
        self._tidier = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlpzk-tidy")
        self._glob: tuple[int, list[np.ndarray]] | None = None  # a round's global parameters (see _global)
        self._rd: tuple[int, dict[str, Any]] | None = None  # see _open_round_doc
        self._contribs: tuple[int, Any] | None = None  # see _round_contributions
        self._validated: int | None = None  # the round whose contribution files were found readable
        self._dropped = False
        self._delta: np.ndarray | None = None  # the delta's buffer (bfloat16 bits or float32), kept across rounds
        self._committed: int | None = None  # the round of this worker's last accepted commit
        self._next: tuple[dict[str, Any], int] | None = None  # the job node as this worker just published it, and its version
        self._all_merged: tuple[int, float] | None = None  # (round, when this worker first saw all its merge parts in)
        self._written: tuple[int, set[str]] = (-1, set())  # (round, the contributions this process committed in it)
        self._checked = False  # whether the parameters this process started from were checked (see _rolled_back)

    # -- setup ----------------------------------------------------------------------------------

    def _setup(self) -> None:
        doc = _job.job_doc(self.cluster, self.job)
        self.spec = doc["spec"]
        try:
            frozen = _job.frozen_shards(self.cluster, self.spec)
        except (IntegrityError, WrongStoreError):
            if self.cluster.store.exists(self.spec["shards"]["path"]):
                raise  # there but damaged: frozen_shards said so
            _job.job_doc(self.cluster, self.job)  # deleted meanwhile (train delete): say that instead
            # the first file every worker reads: missing, this is most likely not the job's store
            # (exit 10 with a line like Store.missing's, as every other command says it)
            raise WrongStoreError(
                f"store {self.cluster.store.uri} has none of job {self.job}'s files ({self.spec['shards']['path']} is missing), so it is not the store the job was created in",
                hint="is --store / NLPZK_STORE the store this cluster uses? (see: nlpzk config show); every worker of a job needs that one store",
            ) from None
        self.shards = {s.id: s for s in frozen}
        self.units = {u.name: u for u in _job.work_units(self.spec, list(self.shards.values()))}
        self.needs_counts = _merge.needs_counts(self.spec["merge"])  # whether contributions carry per-word counts
        self.kernel = _model.kernel_of(self.spec)
        if self.kernel not in _model.KERNELS:  # a job created by a newer nlpzk
            raise TrainingError(f"job {self.job} trains with kernel {self.kernel!r}, which this nlpzk does not have (it has {', '.join(_model.KERNELS)})", hint="upgrade nlpzk where this worker runs")
        self.delta_dtype = _merge.delta_dtype_of(self.spec)
        if self.delta_dtype not in _merge.DELTA_DTYPES:
            raise TrainingError(f"job {self.job} stores its deltas as {self.delta_dtype!r}, which this nlpzk does not know (it knows {', '.join(_merge.DELTA_DTYPES)})", hint="upgrade nlpzk where this worker runs")
        self.vocab = _job.load_vocab(self.cluster, self.spec["vocab"], self.spec["vocab_version"])
        want = self.spec.get("vocab_sha256")
        if want and (self.vocab.view.doc or {}).get("sha256") != want:
            raise TrainingError(
                f"vocabulary {self.vocab.ref} is not the table job {self.job} was created on (it was deleted and built again)",
                hint="this job cannot go on; train a new job on the current version",
            )
        seed = int(self.spec["seed"]) + zlib.crc32(self.id.encode()) % 100000
        self.model = _model.build_model(self.spec, self.vocab, threads=self.threads, seed=seed)
        self._keys = np.empty(len(self.model.wv.index_to_key), dtype=object)
        self._keys[:] = self.model.wv.index_to_key  # the very objects gensim's lookups hash and compare
        self.barrier = RoundBarrier(self.cluster.zk, self.job, sorted(self.units), lease_timeout=float(self.spec["lease_timeout"]), clock=self.clock)
        # written before the membership node that names it exists: a member's probe is always there,
        # in its own store
        self.probe = naming.job_probe(self.job, self.id)
        self.cluster.store.write_bytes(self.probe, f"{self.id}\n".encode())
        self.member = Member(self.cluster.zk, self.job, self.id, {"host": socket.gethostname(), "pid": os.getpid(), "threads": self.threads, "cache_mb": self.cache_budget >> 20, "joined": registry.now(), "probe": self.probe})
        for wid, info in _members.members(self.cluster.zk, self.job).items():
            self._check_same_store(wid, info)

    def _check_same_store(self, wid: str, info: dict[str, Any]) -> None:
        """StoreError if live worker ``wid``'s probe file is not in this worker's store: the two
        write to different stores (a copy of it, another mount), and each would take the other's
        contributions for lost files and drop them."""
        probe = info.get("probe")
        if wid != self.id and probe and not self.cluster.store.exists(probe):
            raise StoreError(
                f"worker {wid} of job {self.job} writes to another store than this worker's {self.cluster.store.uri} (its file {probe} is not here)",
                hint="every worker of a job needs the one store the job was created in (a shared filesystem or object store, not a copy): fix --store / NLPZK_STORE",
            )

    # -- main loop ------------------------------------------------------------------------------

    def run(self) -> WorkerReport:
        joined = False
        try:
            while not self.stop.is_set():
                try:
                    if not joined:  # inside the loop: a worker started during an election waits it out
                        self._setup()
                        self.member.ensure()
                        joined = True
                        self.on_event("joined", {"worker": self.id, "cache_mb": self.cache_budget >> 20})
                    if self._step():
                        self.report.state = "done"
                        break
                except CONNECTION_ERRORS as exc:
                    # SUSPENDED/LOST: in-flight work is dropped (its leases are gone or will be fenced);
                    # wait for the connection and carry on from whatever the job node says
                    self.on_event("disconnected", {"error": type(exc).__name__})
                    self._dropped = True
                    # the limit counts from the drop: a request may already have waited out most of it
                    if not self._wait_connected(max(0.0, self.reconnect_timeout - self.cluster.watch.down_for())):
                        if self.stop.is_set():
                            break  # SIGTERM while ZooKeeper is away: leave now, the session's leases expire
                        raise ZkUnavailableError(
                            f"worker {self.id} lost ZooKeeper for more than {self.reconnect_timeout:g}s",
                            hint=f"nothing was corrupted; start the worker again when ZooKeeper is back (nlpzk train worker {self.job})",
                        ) from None
            if self.stop.is_set():
                self.report.state = "stopped"
        finally:
            # a finished job leaves no round debris behind; a worker that stops or fails does not
            # wait on ZooKeeper for it (the next publisher, a rejoin or nlpzk gc tidies up)
            done = self.report.state == "done"
            self._tidier.shutdown(wait=done, cancel_futures=not done)
            try:
                # not while disconnected: the delete would wait another REQUEST_TIMEOUT (120 s) for a
                # reply, doubling the reconnect limit; the node is ephemeral and goes with the session
                gone = not joined  # no membership node names the probe yet
                if joined and self.cluster.watch.connected.is_set():
                    self.member.leave()
                    gone = True
                # the probe goes only with the node that names it: a member still listed (it left
                # while ZooKeeper was away) must not look like a worker on another store
                if gone and getattr(self, "probe", None):
                    self.cluster.store.delete(self.probe)
            except Exception:  # leaving is best effort: the node is ephemeral anyway
                pass
        return self.report

    def _past(self, r: int) -> None:
        """After a missing file of round ``r``: return if the job has moved past ``r`` (this worker
        slept through the round: its files were tidied, which is not damage; its leases went with
        its session, and the loop carries on from the job node); re-raise if ``r`` is still open."""
        now, _ = self.barrier.job_doc()
        if int(now.get("round", r)) == r and now.get("state") != "done":
            raise  # the open round's own files are missing: that is damage
        self.on_event("stale", {"round": r, "now": now.get("round")})

    def _wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the connection; False on the timeout, or at once when
        ``stop`` is set (a worker told to leave does not wait out ZooKeeper's absence first)."""
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if self.cluster.watch.connected.wait(max(0.0, min(1.0, left))):
                return True
            if left <= 0:
                return False
        return self.cluster.watch.connected.is_set()

    def _offline(self) -> bool:
        """Before a commit: wait for a dropped connection (up to the reconnect limit, counted from
        the drop, or until ``stop``); True if ZooKeeper is still away. The caller then drops its
        work rather than make a request that would wait for ZooKeeper, deaf to stop: the units
        are trained again once this session's leases expire."""
        if not self.cluster.watch.connected.is_set():
            self._wait_connected(max(0.0, self.reconnect_timeout - self.cluster.watch.down_for()))
        return not self.cluster.watch.connected.is_set()

    def _drop_offline(self, *rels: str) -> None:
        """Delete the files of work that :meth:`_offline` says cannot be committed; then return
        if the worker is leaving, else raise the connection error (run() gives up at its limit)."""
        for rel in rels:
            self.cluster.store.delete(rel)
        if not self.stop.is_set():
            raise ConnectionLoss("ZooKeeper unreachable for the reconnect limit")

    def _step(self) -> bool:
        """One pass of the loop; True when the job is done."""
        if not self.cluster.watch.connected.is_set():
            # a request made now would wait for the connection, deaf to stop: wait in run() instead
            raise ConnectionLoss("not connected")
        # right after its publish, a worker goes on from the job node it wrote (and the next round
        # it created, see _publish): reading them back costs three round trips between two rounds
        # (or from the job node wait() read when it returned at once on a change; taken either way,
        # so it never outlives the step after that wait)
        published, self._next = self._next, None
        fresh = self.barrier.fresh_job_doc()
        doc, version = published or fresh or self.barrier.job_doc()
        if doc.get("deleting"):  # nlpzk train delete (with --force, or this worker joined after it looked)
            raise ConflictError(f"job {self.job!r} is being deleted", hint="nothing to do: its files are going; train again under a new name")
        r = int(doc["round"])
        if self._dropped:
            self._after_connection_loss(r)
        if doc.get("state") == "done":
            self._tidy_after_done()
            return True
        if not self._checked and self._rolled_back(r):
            return False
        if self.member.ensure():
            self.on_event("rejoined", {"worker": self.id, "round": r})
        # a round just published has nothing leased or done yet; else one read says what is left
        # to train, and what a merge starts from (the contributions, the merge parts)
        ahead = self._read_ahead(r)  # sent before the overview: its answers come in the same round trip
        seen = None if published else self.barrier.overview(r)
        if seen is None or not seen.state.complete:
            if not self._work_round(r, doc, RoundState(r, {}, {}, self.barrier.units) if seen is None else seen.state, ahead):
                self.barrier.revoke_stale(r)
                self.barrier.wait(r, self.poll)
                return False
            if self._committed != r or self.stop.is_set():
                return False  # fenced, dropped or slept through (read everything again), or leaving
            # this worker's commit went through, so round r is still open and the job node unchanged
            # (only r's publish moves it on): whether the commit completed the round, and what the
            # merge starts from, is one read
            seen = self.barrier.overview(r)
            if not seen.state.complete:
                return False
        try:
            self._merge_step(r, doc, version, seen)
        except IntegrityError:
            self._past(r)  # a merge slept through: its round was published and tidied by others
        return False

    def _rolled_back(self, r: int) -> bool:
        """Once per process, before its first work: check the parameters round ``r`` starts from
        (an OS crash may have cost them, see recover.py); if they are damaged, take the job back
        to the newest round still whole. True if the job moved (the caller reads it again)."""
        bad = recover.damaged(self.cluster, self._open_round_doc(r))
        if not bad:
            self._checked = True
            return False
        to = recover.roll_back(self.cluster, self.barrier, r, bad)
        self._rd = self._glob = self._contribs = None
        self._validated = None
        if to is not None:
            self.on_event("rolled_back", {"round": r, "to": to, "damaged": bad})
        return True

    def _after_connection_loss(self, r: int) -> None:
        """Undo what a call whose reply was lost may have left behind (the session survived).

        Leases acquired or kept for dropped work are freed for anyone (else they stay until
        ``lease_timeout``), and the previous round is tidied as its publisher does: if this worker
        published it and the reply was lost, its nodes were never pruned and would keep naming
        parameter files deleted later (found by tests/faults with a stopped ZooKeeper leader).
        Both are idempotent.
        """
        released = self.barrier.release_own(r, self.id)
        if released:
            self.on_event("released", {"round": r, "units": released})
        if r > 0:
            self._tidy(r - 1)
        self._dropped = False

    def _tidy_after_done(self) -> None:
        try:
            tidy_finished(self.cluster, self.job)
        except Exception as exc:  # idempotent: whoever finds the job done next finishes it
            log.warning("tidying finished job %s failed: %r", self.job, exc)

    def _tidy_quietly(self, r: int) -> None:
        try:
            self._tidy(r)
        except Exception as exc:  # idempotent: the next publisher's or a reconnect's tidy, or nlpzk gc, finishes it
            log.warning("tidying round %d of %s failed: %r", r, self.job, exc)

    def _write_quietly(self, rel: str, data: bytes) -> None:
        try:
            self.cluster.store.write_bytes(rel, data)
        except Exception as exc:  # the round's tidy writes it again before pruning what it is made from
            log.warning("writing %s of %s failed: %r", rel, self.job, exc)

    def _tidy(self, r: int) -> None:
        tidy_round(self.cluster, self.barrier, r, recycle=RECYCLE)

    def _spares(self, nbytes: int) -> list[str]:
        """Spare files to write a round file of ``nbytes`` (plus its header) over (spares.py)."""
        return spares.candidates(self.cluster.store, self.job, nbytes + 128) if RECYCLE else []

    def _read_ahead(self, r: int) -> tuple[Any, Any]:
        """Send the reads of round ``r``'s document (unless known) and of the job's members without
        waiting for them (:meth:`_round_doc_and_members` takes the answers)."""
        zk = self.cluster.zk
        known = self._rd is not None and self._rd[0] == r
        return (None if known else zk.get_async(paths.job_round(self.job, r))), zk.get_children_async(paths.job_workers(self.job))

    def _round_doc_and_members(self, r: int, ahead: tuple[Any, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        """Round ``r``'s document (:meth:`_open_round_doc`) and the job's members, in one round trip
        (none when ``ahead``, :meth:`_read_ahead`'s requests, went out with an earlier read)."""
        rd_req, members = ahead or self._read_ahead(r)
        if rd_req is not None:
            try:
                data, _stat = rd_req.get()
                self._rd = (r, registry.loads(data, registry.full_path(self.cluster.zk, paths.job_round(self.job, r))))
            except NoNodeError:
                pass
        rd = self._open_round_doc(r)
        try:
            return rd, sorted(members.get())
        except NoNodeError:
            return rd, []

    def _open_round_doc(self, r: int) -> dict[str, Any]:
        """Round ``r``'s document while it is open, read once: it does not change until the
        transaction that publishes the round (and that one checks its version)."""
        if self._rd is None or self._rd[0] != r:
            rd = self.barrier.round_doc(r)
            if rd is None:
                return {}
            self._rd = (r, rd)
        return self._rd[1]

    def _global(self, r: int, round_doc: dict[str, Any] | None = None) -> list[np.ndarray]:
        """Round ``r``'s global parameters: its parameter files' row-range parts, memory-mapped on a
        local store (read into memory on others), kept for the round.

        The model is loaded straight from them and the delta computed against them: no model-sized
        buffer in between (a copy of 34 MB each way per round here, ~5-10 ms of the round's sync).
        A mapped file deleted meanwhile (the round tidied) stays readable while it is mapped."""
        if self._glob is None or self._glob[0] != r:
            rd = round_doc if round_doc is not None else (self.barrier.round_doc(r) or {})
            self._glob = None  # a failed load leaves no stale round behind
            self._glob = (r, _merge.param_parts(self.cluster.store, _params_list(rd), len(self.vocab.tokens), int(self.spec["dim"])))
        return self._glob[1]

    def _shard(self, shard: str) -> _Shard:
        """A shard's tokens, from memory or read from the store into memory.

        The cache keeps shards across rounds (each round trains another slice of them) within
        ``cache_budget`` bytes, evicting the least recently used: a worker whose share of the corpus
        does not fit reads shards again in later rounds instead of running out of memory. A shard
        bigger than the whole budget is still read for the batch that needs it.
        """
        got = self._cache.get(shard)
        if got is not None:
            self._cache.move_to_end(shard)
            return got
        info: ShardInfo = self.shards[shard]
        # checked against the sha256 frozen in the job's shard list: a shard changed since the job was
        # created (bit rot, a hand edit that still parses) fails the worker instead of being trained on
        col = read_shard(self.cluster.store, info, columns=["tokens"], tokens_as_dictionary=True, verify=True).column("tokens")
        offsets, ids = token_ids(col, lambda words: self.vocab.view.encode(words, oov=-1))
        keep = ids >= 0
        kept = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept[1:])
        kept = kept[offsets]
        # the batched kernel trains from the ids (4 bytes a token); gensim's from the tokens (8), and
        # the ids are then kept only for the merge rules that read per-word counts
        ids = ids[keep].astype(np.int32, copy=False)
        tokens = self._keys[ids].tolist() if self.kernel == "gensim" else None
        got = _Shard(tokens, offsets, kept, ids if self.needs_counts or tokens is None else None)
        if got.nbytes <= self.cache_budget:
            while self._cache and self._cache_bytes + got.nbytes > self.cache_budget:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.nbytes
            self._cache[shard] = got
            self._cache_bytes += got.nbytes
        return got

    def _slice_bounds(self, unit: str, r: int) -> tuple[int, int]:
        """Round ``r``'s slice of a unit: a contiguous run of its shard's sentences.

        (Every S-th sentence instead scored the same in bench/sim_train_merge.py and trained ~20 %
        slower: consecutive sentences share words, so their rows are still in the CPU's caches.)
        """
        u = self.units[unit]
        lo, hi = u.sentences(self.shards[u.shard])
        s = int(self.spec["syncs_per_epoch"])
        _epoch, k = _job.round_slice(self.spec, r)
        return lo + k * (hi - lo) // s, lo + (k + 1) * (hi - lo) // s

    def _estimate(self, unit: str) -> float:
        return self.units[unit].tokens / int(self.spec["syncs_per_epoch"])

    def _work_round(self, r: int, doc: dict[str, Any], st: RoundState | None = None, ahead: Any = None) -> bool:
        """Lease and train shards of round ``r`` until none is free, then commit. False if none was free.

        Shards are leased in batches trained by one gensim ``train()`` call each (a call costs
        thread start-up and a final flush, too much per small slice). A batch is about half of
        this worker's fair share of what is still free (guided self-scheduling): big batches
        first, single shards at the end, so workers still finish the round together.
        """
        # every ZooKeeper read comes before the first lease: once shards are held, only leasing
        # more and the commit talk to ZooKeeper, so a connection error never strands held work
        rd, members = self._round_doc_and_members(r, ahead)
        words_before = int(rd.get("words_before", doc.get("words", 0)))
        prefer = self._preference(r, members)
        lease, st = self.barrier.lease_next(r, self.id, prefer, st)
        if lease is None:
            return False
        start = self.clock()
        started_at = registry.now()
        try:
            params = self._global(r, rd)
        except IntegrityError:
            # paused between the lease and this load (SIGSTOP, a long GC) past the session timeout:
            # the round was trained by others, merged and its parameters tidied meanwhile
            self._past(r)
            return True
        _model.set_params(self.model, params)
        load_s = self.clock() - start
        counts = np.zeros(len(self.vocab.tokens), dtype=np.int64)
        held, raw_total, eff_total, loss_total = [], 0, 0, 0.0
        # several threads train from a pool kept for the round: they go on training a batch while
        # this thread leases and slices the next (one thread trains each batch here, inline)
        pool = _model.KernelPool(self.model, self.threads) if self.threads > 1 else None
        try:
            while lease is not None:
                lease, st, trained = self._train_batch(r, lease, st, prefer, members, words_before, counts, pool)
                held.extend(trained[0])
                raw_total += trained[1]
                eff_total += trained[2]
                loss_total += trained[3]
            if pool is not None:
                eff_total, _pushed, loss_total = pool.finish()
        finally:
            if pool is not None:
                pool.close()
        seconds = self.clock() - start
        self._commit(r, held, params, counts, raw_total, eff_total, loss_total, seconds, {"started_at": started_at, "load_s": round(load_s, 3)})
        return True

    def _train_batch(self, r, lease, st, prefer, members, words_before, counts, pool):
        """Lease the rest of a batch that starts with ``lease``, train it (or queue it in ``pool``),
        lease the first unit of the next. Returns (next lease, state, (leases, words, effective, loss))."""
        claimed = sum(self._estimate(u) for u in (set(st.done) | set(st.leased)) if u != lease.unit)
        free = set(st.free)
        target = sum(self._estimate(u) for u in free) / (2 * max(1, len(members)))
        batch = [lease]
        # the rest of the batch in one transaction, picked from the state read with the lease;
        # if someone took one of them, one more lease reads the state afresh and the rest is
        # picked again from that (not one lease, and one state read, per unit)
        while not self.stop.is_set():
            size, want, mine = sum(self._estimate(l.unit) for l in batch), [], {l.unit for l in batch}
            for u in prefer:
                if size >= target:
                    break
                if u in free and u not in mine:
                    want.append(u)
                    size += self._estimate(u)
            if not want:
                break
            got = self._lease_batch(r, want)
            if got:
                batch += got
                break
            more, fresh = self._lease_more(r, prefer)
            if more is None:
                break
            batch.append(more)
            free = set(fresh.free)
        # nothing else was free when this batch was leased: no lease after it (a round trip between
        # the round's last training and its commit). Units free only again when a lease is lost
        # (expired, revoked, released), and the loop leases those after the commit
        rest = free - {l.unit for l in batch}
        sentences: list[list[str]] = []
        flats, starts = [], [np.zeros(1, np.int64)]  # the batched kernel's: ids, and sentence ends
        words = known = 0  # all tokens (the global schedule counts these), in-vocabulary ones
        for l in batch:
            data = self._shard(self.units[l.unit].shard)
            a, b = self._slice_bounds(l.unit, r)
            if self.kernel == "gensim":
                sentences.extend(data.sentences(a, b))
            else:
                flat, ends = data.id_slice(a, b)
                flats.append(flat)
                starts.append(ends[1:] + known)
            words += int(data.offsets[b] - data.offsets[a])
            known += int(data.kept[b] - data.kept[a])
            if self.needs_counts:
                data.counts(a, b, counts)
        a0 = _job.alpha_at(self.spec, words_before + claimed)
        a1 = _job.alpha_at(self.spec, words_before + claimed + words)
        eff, loss = 0, 0.0  # a pool's are tallied when the round's training is finished
        gensim = self.kernel == "gensim"
        data = (sentences,) if gensim else (np.concatenate(flats or [np.zeros(0, np.int32)]), np.concatenate(starts))
        if pool is None:
            eff, _known, loss = (_model.train_slice if gensim else _model.train_ids)(self.model, *data, known, a0, a1)
            self.on_event("trained", {"round": r, "shards": [l.unit for l in batch], "words": words, "alpha": (a0, a1)})
        else:
            (pool.submit if gensim else pool.submit_ids)(*data, known, a0, a1)
            self.on_event("queued", {"round": r, "shards": [l.unit for l in batch], "words": words, "alpha": (a0, a1)})
            # lease the next batch only when the threads are about to run out of work: leasing
            # far ahead would take units that another worker could train sooner
            pool.wait_below(self.threads + 1)
        trained = (batch, words, eff, loss)
        if self.stop.is_set() or not rest:
            return None, st, trained
        lease, st = self._lease_more(r, prefer)
        return lease, st, trained

    def _own_shards(self, r: int, members: list[str]) -> set[str]:
        """This worker's part of round ``r``'s shards when they are dealt out among ``members``.

        Every worker computes the same deal (a permutation seeded by the job and the round) from the
        sorted member ids, so the parts are disjoint and cover every shard; the deal changes every
        round. A worker that is not among ``members`` gets no part.
        """
        shards = sorted({u.shard for u in self.units.values()})
        deal = np.random.default_rng([zlib.crc32(self.job.encode()), r]).permutation(len(shards))
        slot = members.index(self.id) if self.id in members else -1
        return {shards[j] for p, j in enumerate(deal) if p % max(1, len(members)) == slot}

    def _preference(self, r: int, members: list[str]) -> list[str]:
        """The order in which this worker tries to lease round ``r``'s units.

        The units of its own shards (:meth:`_own_shards`) first: workers that start a round
        together then do not race for the same units (each lost race cost a failed transaction,
        then a lease and a state read per unit: ~50 ms at the start of every round with two
        workers), and in round 0 each reads only its own shards. As the deal changes every round,
        a worker's data is still a new mix of shards each round. Within the two groups, shards
        already in memory first, in an order of this worker's own.
        """
        own = self._own_shards(r, members)
        rng = np.random.default_rng([zlib.crc32(self.id.encode()), r])
        groups: list[list[str]] = [[], [], [], []]  # own cached, own, other cached, other
        for u in sorted(self.units):
            shard = self.units[u].shard
            groups[(0 if shard in own else 2) + (0 if shard in self._cache else 1)].append(u)
        return [g[i] for g in groups for i in rng.permutation(len(g))]

    def _lease_batch(self, r: int, units: list[str]) -> list:
        """Lease ``units`` of a round already started in one transaction; [] if any was taken."""
        return self._leasing(lambda: self.barrier.lease_many(r, self.id, units), [])

    def _lease_more(self, r: int, prefer: list[str]):
        """Lease the next unit of a round already started."""
        return self._leasing(lambda: self.barrier.lease_next(r, self.id, prefer), (None, None))

    def _leasing(self, call, on_error):
        """Leasing more in a round already started: on a connection error, stop leasing and let the
        commit try what was trained (the fence rejects it if the session did not survive, and it is
        saved work if it did)."""
        try:
            if not self.cluster.watch.connected.is_set():
                # a request made now would wait for the connection, deaf to stop
                raise ConnectionLoss("not connected")
            return call()
        except CONNECTION_ERRORS as exc:
            self.on_event("disconnected", {"error": type(exc).__name__})
            self._dropped = True  # a lease whose reply was lost is freed at the next step (release_own)
            self._wait_connected(self.reconnect_timeout)
            return on_error

    def _commit(self, r, held, params, counts, raw, eff, loss, seconds, timing) -> None:
        self._committed = None
        t_save = self.clock()
        name = f"{self.id}-{uuid.uuid4().hex[:8]}"
        delta_rel, counts_rel = self._contribution_files(r, name)
        shape = (2, len(self.vocab.tokens), int(self.spec["dim"]))
        dtype = np.uint16 if self.delta_dtype == "bfloat16" else np.float32
        if self._delta is None or self._delta.shape != shape or self._delta.dtype != dtype:
            self._delta = np.empty(shape, dtype)
        delta = _model.delta_to(self.model, params, self._delta)
        # not fsynced (the round's critical path waited ~10-25 ms here for 17 MB to reach the disk,
        # which then had the merges' writes queued behind it): a contribution is an intermediate of
        # the open round. A process that dies loses nothing; a file an OS crash cut or left stale
        # fails the size check or its sum (in the contribution's node) at the merge, and is dropped
        # and trained again in the round (_drop_unreadable). The merged parameters are fsynced.
        delta_sum = _merge.word_sum(delta)
        try:
            _merge.save_array(self.cluster.store, delta_rel, delta, checksum=False, durable=False, reuse=self._spares(delta.nbytes))
            if self.needs_counts:
                _merge.save_array(self.cluster.store, counts_rel, counts.astype(np.int32))
        except StoreError:
            # The round may have been merged without us (our leases were revoked or expired) and its
            # contribution folder tidied away under our write: that is a fence, not a crash.
            if int((registry.maybe_json(self.cluster.zk, paths.job(self.job)) or {}).get("round", 0)) <= r:
                raise
            self.cluster.store.delete(delta_rel)
            self.cluster.store.delete(counts_rel)
            self.report.fenced += 1
            self.on_event("fenced", {"round": r, "shards": [l.unit for l in held], "error": f"round {r} was merged while this worker wrote its contribution"})
            return
        # timing (for train report and the benchmarks): seconds = load + training; save_s = writing the contribution
        # the store paths are in the document so that nlpzk gc sees the files as registered: a
        # stopped job's open round keeps its committed contributions until it is resumed
        doc = {"worker": self.id, "contrib": name, "words": raw, "effective": eff, "loss": round(loss, 3), "seconds": round(seconds, 3), "shards": len(held),
               "units": sorted(l.unit for l in held), "delta": delta_rel, "delta_sum": delta_sum, "save_s": round(self.clock() - t_save, 3), "committed_at": registry.now(), **timing}
        if self.needs_counts:
            doc["counts"] = counts_rel
        if self._offline():
            self._drop_offline(delta_rel, counts_rel)
            return
        try:
            self.barrier.commit(r, held, doc, separate=self._separate(r))
        except FencedError as exc:
            self.cluster.store.delete(delta_rel)
            self.cluster.store.delete(counts_rel)
            self.report.fenced += 1
            self.on_event("fenced", {"round": r, "shards": [l.unit for l in held], "error": exc.line()})
            return
        self._committed = r
        if self._written[0] != r:
            self._written = (r, set())
        self._written[1].add(name)
        self.report.commits += 1
        self.report.words += raw
        self.member.update_async(round=r, words_per_s=round(raw / max(seconds, 1e-6)), loss=round(loss / max(raw, 1), 4))
        self.on_event("committed", {"round": r, "shards": [l.unit for l in held], "words": raw, "seconds": seconds})

    # -- merging --------------------------------------------------------------------------------

    def _contribution_files(self, r: int, name: str) -> tuple[str, str]:
        """The store paths of contribution ``name`` of round ``r``: its delta and its per-word counts."""
        return naming.contribution_file(self.job, r, name), naming.contribution_counts(self.job, r, name)

    def _separate(self, r: int) -> bool:
        """Whether round ``r`` keeps one node per contribution (rounds created before that do not)."""
        return bool(self._open_round_doc(r).get("contribs"))

    def _round_contributions(self, r: int, names: list[str] | None = None) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]] | None:
        """A complete round's contributions ``{name: doc}`` and its commits ``[{shard, worker, contrib}]``.

        Read once per round: once every unit is done nothing more can commit in it. Rounds with a
        ``contribs`` folder read one node per commit; older ones read every unit's done marker.
        None if what was read does not cover every unit (the round was merged and pruned meanwhile).
        """
        if self._contribs is not None and self._contribs[0] == r:
            return self._contribs[1]
        by_name, commits = read_contributions(self.barrier, r, self._separate(r), names)
        if [c["shard"] for c in commits] != sorted(self.units):
            return None  # the round was merged and pruned under us: nothing cached, the caller re-reads the job node
        self._contribs = (r, (by_name, commits))
        return by_name, commits

    def _drop_unreadable(self, r: int, by_name: dict[str, dict[str, Any]], commits: list[dict[str, str]]) -> bool:
        """Un-commit the round's contributions whose files are missing, incomplete or not what was
        written; True if any.

        Checked once per round before any merge work (headers, sizes, and the sum of each other
        worker's delta its node records, see _commit): a contribution that cannot be read (deleted
        by hand or by an old nlpzk gc, a disk error, an OS crash before the file reached the disk)
        would otherwise stop every worker at this merge, on every resume, or be merged as the zero
        or stale pages the crash left. Its units are trained again in this round instead.
        """
        if self._validated == r:
            return False
        shape = (2, len(self.vocab.tokens), int(self.spec["dim"]))

        def unreadable(name: str) -> bool:
            delta, counts = self._contribution_files(r, name)
            if not _merge.readable(self.cluster.store, delta, shape, _merge.stored_dtypes()) or (
                self.needs_counts and not _merge.readable(self.cluster.store, counts, shape[1:2], np.int32)
            ):
                return True
            # one this process wrote is in its page cache as written; on an object store a file is
            # there whole or not at all; contributions of older nlpzk carry no sum
            want = by_name[name].get("delta_sum")
            if not want or (self._written[0] == r and name in self._written[1]) or not self.cluster.store.local:
                return False
            return _merge.data_sum(self.cluster.store, delta) != want

        bad = [n for n in sorted(by_name) if unreadable(n)]
        if not bad:
            self._validated = r
            return False
        # a file a live worker wrote and this one cannot see may be in another store, not lost:
        # never drop its work then (it would drop ours the same way)
        live = _members.members(self.cluster.zk, self.job)
        for n in bad:
            author = by_name[n].get("worker")
            if author in live:
                self._check_same_store(author, live[author])
        units = {n: [c["shard"] for c in commits if c["contrib"] == n] for n in bad}
        self._contribs = None
        if self.barrier.drop_contributions(r, units, separate=self._separate(r)):
            for n in bad:
                for rel in self._contribution_files(r, n):
                    self.cluster.store.delete(rel)
            self.on_event("dropped", {"round": r, "contributions": bad, "units": sorted(u for us in units.values() for u in us)})
            log.warning("round %d of %s: dropped %d unreadable contribution(s) %s; their %d unit(s) are trained again",
                        r, self.job, len(bad), ", ".join(bad), sum(map(len, units.values())))
        return True

    def _merge_step(self, r: int, doc: dict[str, Any], version: int, seen: RoundOverview | None = None) -> None:
        """Reduce a free row range of the round's merge, or publish once every range is reduced.

        ``seen``: the round's lists as just read (:meth:`RoundBarrier.overview`), saving two reads."""
        got = self._round_contributions(r, None if seen is None else seen.contribs)
        if got is None:
            self.barrier.wait(r, self.poll)
            return
        by_name, commits = got
        if self._drop_unreadable(r, by_name, commits):
            return
        contribs = [_merge.Contribution(*self._contribution_files(r, n), int(d["words"])) for n, d in sorted(by_name.items())]
        parts = max(1, len(by_name))
        bounds = _merge.part_bounds(len(self.vocab.tokens), parts)
        parts = len(bounds)
        done, free = self.barrier.merge_state(r, parts, None if seen is None else seen.merge_lists)
        if len(done) == parts:
            # the worker whose part landed last is publishing right after its commit (see below):
            # give it PUBLISH_GRACE before publishing in its place (it may have died), rather than
            # race it (a duplicate publish that fails, ~5 round trips of this worker's own, late
            # for the next round)
            left = self._publish_grace(r, done)
            if left > 0 or not self._publish_if_merged(r, doc, version, commits, by_name, parts, done):
                self.barrier.wait(r, left if left > 0 else self.poll)
            return
        held = self.barrier.lease_merge_part(r, self.id, parts, free)
        if held is None:
            self.barrier.wait(r, self.poll)
            return
        t0 = self.clock()
        started_at = registry.now()
        i = int(held.unit[1:])
        rd = self._open_round_doc(r)
        out_rel = naming.round_params_part(self.job, r + 1, i, uuid.uuid4().hex[:12])
        eta = self.spec.get("eta")
        # to the page cache only, with the sum of what was written: the next round starts from it
        # at once, and it reaches the disk in the background, before this round's input is
        # deleted (tidy_round; an OS crash in between costs the round, see recover.py). The last
        # round's, the job's final parameters, is fsynced before it is published.
        last = r + 1 >= int(self.spec["rounds"])
        nbytes = (4 if "bmuf" in self.spec["merge"] else 2) * (bounds[i][1] - bounds[i][0]) * int(self.spec["dim"]) * 4
        _sha, _n, part_sum = _merge.merge(self.cluster.store, _params_list(rd), contribs, self.spec["merge"], out_rel, rows=bounds[i], eta=None if eta is None else float(eta),
                                          checksum=False, durable=last, reuse=self._spares(nbytes))
        if self._offline():
            self._drop_offline(out_rel)
            return
        try:
            # the parts merged so far come back in the commit's round trip
            merged = self.barrier.commit_merge_part(r, held, {"worker": self.id, "path": out_rel, "rows": list(bounds[i]), "sum": part_sum, "seconds": round(self.clock() - t0, 3), "started_at": started_at, "done_at": registry.now()}, parts)
        except FencedError as exc:
            self.cluster.store.delete(out_rel)
            self.report.fenced += 1
            self.on_event("fenced", {"round": r, "merge_part": held.unit, "error": exc.line()})
            return
        self.report.merges += 1
        # the last part in: publish now, rather than after another pass reading the job and the round.
        # Without taking the merge node first (another round trip) unless the job ends: the publish
        # transaction checks that nobody holds it, and the job node's version, so if two workers'
        # last parts land together and both publish, one wins and the other's fails harmlessly (the
        # last round's evaluation, seconds long, is still done once, under the merge node).
        if not self.stop.is_set() and (merged is None or len(merged) == parts):
            self._publish_if_merged(r, doc, version, commits, by_name, parts, merged, lock=r + 1 >= int(self.spec["rounds"]))

    def _publish_grace(self, r: int, done: dict[str, dict[str, Any]]) -> float:
        """Seconds this worker still leaves round ``r``'s publish to the worker that merged its last
        part, counted on this worker's clock from when it first saw every part in; 0 when every
        part is its own (a publish of its own that did not happen: nobody else would)."""
        if all(d.get("worker") == self.id for d in done.values()):
            return 0.0
        if self._all_merged is None or self._all_merged[0] != r:
            self._all_merged = (r, self.clock())
        return max(0.0, PUBLISH_GRACE - (self.clock() - self._all_merged[1]))

    def _publish_if_merged(self, r, doc, version, commits, by_name, parts: int, done=None, lock: bool = True) -> bool:
        """Publish round ``r`` if every merge part is in and (``lock``) no other worker is publishing
        it; True if this worker tried (the publish itself may still lose to another's, which then
        moved on)."""
        if done is None:
            done, _free = self.barrier.merge_state(r, parts)
        if len(done) != parts:
            return False
        if lock and not self.barrier.try_merge(r, self.id):
            return False
        self._publish(r, doc, version, commits, by_name, done, locked=lock)
        return True

    def _publish(self, r: int, doc: dict[str, Any], version: int, commits: list[dict[str, str]], by_name: dict[str, dict[str, Any]], parts: dict[str, dict[str, Any]], locked: bool = True) -> None:
        t0 = self.clock()
        spec = self.spec
        rd = self._open_round_doc(r)
        param_parts = [parts[name]["path"] for name in sorted(parts)]
        words = sum(int(d["words"]) for d in by_name.values())
        loss = sum(float(d["loss"]) for d in by_name.values())
        last = r + 1 >= int(spec["rounds"])
        new_doc = dict(doc, round=r + 1, words=int(doc.get("words", 0)) + words)
        train_s: dict[str, float] = {}
        load_s: dict[str, float] = {}  # of train_s: loading the round's parameters into the model
        for d in by_name.values():
            train_s[d["worker"]] = train_s.get(d["worker"], 0.0) + float(d.get("seconds", 0))
            load_s[d["worker"]] = load_s.get(d["worker"], 0.0) + float(d.get("load_s", 0))
        slowest = max(train_s, key=train_s.__getitem__, default=None)
        log_rel = naming.round_log(self.job, r)
        log_data = registry.dumps(round_log_doc(r, commits, by_name, parts))
        if last:
            self.cluster.store.write_bytes(log_rel, log_data)
        eval_s = 0.0
        if last:
            t_eval = self.clock()
            final = _merge.load_params(self.cluster.store, param_parts)
            vec_rel, sha, kv = _job.save_vectors(self.cluster, self.job, self.vocab, final[0])
            scores = _model.evaluate(kv)
            new_doc.update(state="done", finished=registry.now(), final={"vectors": vec_rel, "sha256": sha, "vocab": self.vocab.ref, "params": param_parts, "scores": scores})
            eval_s = self.clock() - t_eval
        merged_at = registry.now()
        summary = dict(
            rd,
            state="merged",
            words=words,
            loss=round(loss, 3),
            commits=len(by_name),
            shards=len(commits),
            workers=len(train_s),
            train_s=round(max(train_s.values(), default=0.0), 3),
            load_s=round(load_s.get(slowest, 0.0), 3),  # the slowest worker's (part of its train_s)
            merge_s=round(max((float(p.get("seconds", 0)) for p in parts.values()), default=0.0) + self.clock() - t0 - eval_s, 3),
            merge_parts=len(parts),
            eval_s=round(eval_s, 3),
            wall_s=round(merged_at - float(rd.get("opened", merged_at)), 3),
            merged_at=merged_at,
            log=log_rel,
            alpha=round(_job.alpha_at(spec, int(rd.get("words_before", 0))), 6),
        )
        nxt = None if last else {"round": r + 1, "params": param_parts, "words_before": new_doc["words"], "opened": merged_at}
        sums = [parts[name].get("sum") for name in sorted(parts)]
        if nxt is not None and all(sums):
            nxt["sums"] = sums  # what a worker that starts from this round checks (recover.py)
        new_version = self.barrier.publish(r, version, new_doc, summary, nxt, unclaimed=not locked)
        if new_version is not None:
            if nxt is not None:  # see _step: go on from what was just written
                self._next = (new_doc, new_version)
                self._rd = (r + 1, dict(nxt, contribs=True))
            # off the path every worker waits on: the next round is already open. The round's log
            # (two fsyncs, ~9 ms here) before its tidy; should this worker die first, the tidy that
            # prunes the round writes it from the round's nodes (tidy_round). The previous round
            # again too (a no-op when done): its publisher may have died before its tidy ran
            if not last:
                self._tidier.submit(self._write_quietly, log_rel, log_data)
            for old in (r - 1, r) if r > 0 else (r,):
                self._tidier.submit(self._tidy_quietly, old)
            self.on_event("merged", {"round": r, "words": words, "loss": loss, "parts": len(parts), "final": new_doc.get("final")})
            if last:
                self._register_model()
        elif locked:  # the merge node is this worker's: let another try
            self.barrier.release_merge(r)


    def _register_model(self) -> None:
        """Register the finished job's vectors as the next version of its model (idempotent per job).

        The job is done whether or not this succeeds: ``nlpzk train run`` and ``nlpzk model register
        JOB`` register it again if the publisher died in between.
        """
        from .. import models
        from ..errors import NlpzkError

        try:
            name, number = models.register_job(self.cluster, self.job, self.spec.get("model") or self.job)
            self.on_event("registered", {"model": name, "version": number})
        except NlpzkError as exc:
            self.on_event("register_failed", {"error": exc.line()})


def tidy_round(cluster: Cluster, barrier: RoundBarrier, r: int, *, recycle: bool = False) -> None:
    """Drop merged round ``r``'s contributions, input parameters and per-unit nodes (idempotent),
    once the parameters merged from them are on the disk (fsynced).

    Files first, nodes last: the round's ``done`` folder still there means "not tidied yet", which
    is what :func:`tidy_finished` looks at."""
    rd = barrier.round_doc(r) or {}
    if rd and rd.get("state") != "merged":
        return  # open (again: recover.roll_back): nothing of it may go
    parts = barrier.merged_parts(r)
    _ensure_round_log(cluster, barrier, r, rd, parts)
    # the parameters merged from this round reach the disk before anything they were made from is
    # deleted: an OS crash can then cost the newest round, never the one before it (recover.py)
    for d in parts.values():
        if d.get("path"):
            cluster.store.sync(d["path"])
    contrib_dir = posixpath.dirname(naming.contribution_file(barrier.job, r, "x"))
    if recycle:  # kept for their pages: the next rounds' files are written over them (spares.py)
        spares.retire(cluster.store, barrier.job, [f for f in cluster.store.list(contrib_dir) if not is_tmp(f)] + _params_list(rd))
    cluster.store.delete_dir(contrib_dir)
    for old in _params_list(rd):
        cluster.store.delete(old)
    barrier.prune(r)


def round_log_doc(r: int, commits: list[dict[str, str]], by_name: dict[str, dict[str, Any]], parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a merged round's log file holds: who trained which unit, the contributions (sorted
    by name) and the merge parts."""
    return {
        "round": r,
        "commits": commits,
        "contributions": [by_name[n] for n in sorted(by_name)],
        "merge_parts": [dict(parts[name], part=name) for name in sorted(parts)],
    }


def _ensure_round_log(cluster: Cluster, barrier: RoundBarrier, r: int, rd: dict[str, Any], parts: dict[str, dict[str, Any]]) -> None:
    """Write merged round ``r``'s log from its nodes (``parts``: its merged parts, as
    :meth:`RoundBarrier.merged_parts` read them) if its publisher did not (it writes it after the
    publish, and may die first): before the tidy prunes the nodes it is made from."""
    rel = rd.get("log")
    if rd.get("state") != "merged" or not rel or cluster.store.exists(rel):
        return
    by_name, commits = read_contributions(barrier, r, bool(rd.get("contribs")))
    if not commits or not parts:
        return  # pruned already: nothing left to write it from
    cluster.store.write_bytes(rel, registry.dumps(round_log_doc(r, commits, by_name, parts)))


def read_contributions(barrier: RoundBarrier, r: int, separate: bool, names: list[str] | None = None) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    """Round ``r``'s contributions ``{name: doc}`` and its commits ``[{shard, worker, contrib}]``
    sorted by unit, as its nodes hold them: one node per commit (``separate``: rounds with a
    ``contribs`` folder; ``names``, their names as just listed), else every unit's done marker."""
    by_name: dict[str, dict[str, Any]] = {}
    if separate:
        by_name = barrier.contributions(r, names)
        commits = [{"shard": u, "worker": d["worker"], "contrib": n} for n, d in by_name.items() for u in d.get("units", [])]
    else:
        st = barrier.state(r)
        for _unit, d in sorted(st.done.items()):
            by_name.setdefault(d["contrib"], d)
        commits = [{"shard": u, "worker": d["worker"], "contrib": d["contrib"]} for u, d in st.done.items()]
    commits.sort(key=lambda c: c["shard"])
    return by_name, commits


def tidy_finished(cluster: Cluster, job: str) -> list[int]:
    """Tidy the last two rounds of finished job ``job`` if that is still to do; the rounds tidied.

    Their publisher does it right after publishing the last round; if it died first, nobody else
    would, and their nodes would keep the rounds' model-sized files referenced for ever (found by a
    crash-point sweep). Workers that find the job done and ``train run``/``resume`` call this.
    """
    doc = registry.maybe_json(cluster.zk, paths.job(job)) or {}
    if doc.get("state") != "done":
        return []
    cluster.store.delete_dir(posixpath.dirname(naming.job_probe(job, "x")))  # no worker has any use for them now
    cluster.store.delete_dir(spares.folder(job))
    last = int(doc["spec"]["rounds"]) - 1
    barrier = RoundBarrier(cluster.zk, job, [])
    tidied = []
    for r in (last - 1, last):
        if r >= 0 and cluster.zk.exists(paths.round_done(job, r)) is not None:
            tidy_round(cluster, barrier, r)
            tidied.append(r)
    return tidied


def token_ids(col: Any, encode: Callable[[pa.Array], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, ids)`` of a ``list<dictionary<string>>`` column (chunked, each chunk with its own
    dictionary, as Parquet row groups come back): cumulative tokens before each sentence, and each
    token's id (-1 if absent) from ``encode``, a vocabulary's ``VocabView.encode(..., oov=-1)``,
    which looks a dictionary-encoded chunk up once per distinct token (in Arrow's hash table)."""
    lengths, pieces = [np.zeros(1, np.int64)], [np.zeros(0, np.int32)]
    for chunk in col.chunks:
        lengths.append(chunk.value_lengths().fill_null(0).to_numpy(zero_copy_only=False))
        values = chunk.flatten()
        if len(values):
            pieces.append(encode(values))
    return np.cumsum(np.concatenate(lengths), dtype=np.int64), np.concatenate(pieces)


def _params_list(round_doc: dict[str, Any]) -> list[str]:
    """A round's global parameters as a list of row-range parts (a single path in older rounds)."""
    p = round_doc.get("params")
    if not p:
        raise TrainingError("a round of this job has no parameters", hint="the job node is damaged; see nlpzk train status")
    return [p] if isinstance(p, str) else list(p)
