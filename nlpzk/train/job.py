"""Training jobs: the spec, creating/resuming a job, its status, and its final vectors.

A job node ``/jobs/<job>`` holds the spec (corpus, vocab name@version, hyper-parameters), the
current round, the words processed so far and the state (``running`` or ``done``). The shard list
is frozen at creation in a store file, so shards ingested later do not change a running job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pickle
import subprocess
import time
import uuid
from typing import Any, Callable, Sequence

import numpy as np
from kazoo.exceptions import NoNodeError

from ..cluster import Cluster
from ..corpus import Corpus, ShardInfo
from ..errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError, TrainingError, first_few
from ..store import naming
from ..vocab import parse_spec
from ..zk import members as _members
from ..zk import paths, registry, rounds
from ..zk import versioned as _versioned
from . import merge as _merge
from ._model import KERNELS, VocabData, initial_params, kernel_of, keyed_vectors

HYPER = {
    "epochs": 5,
    "syncs_per_epoch": None,  # from the expected number of workers: see default_syncs
    "dim": 100,
    "window": 5,
    "negative": 5,
    "sg": True,
    "alpha": 0.025,
    "min_alpha": 0.0001,
    "sample": 1e-3,
    "seed": 1,
    "merge": _merge.DEFAULT_RULE,
    "eta": None,
    "kernel": None,  # "batched" for skip-gram, "gensim" for CBOW: see _model.KERNELS
    "delta_dtype": "bfloat16",  # how contributions store their deltas: see merge.DELTA_DTYPES
    "lease_timeout": 600.0,
}


def default_syncs(workers: int | None) -> int:
    """Merges per epoch when none is given: 4 for one or two workers, 16 for more or an unknown count.

    What a merge loses grows with the number of deltas it combines: in the quality benchmark
    (docs/benchmarks.md) 2 workers at 4 syncs score 1.10-1.16x / 1.11-1.19x / 0.90-1.08x of one
    gensim process (WS353 / SimLex / analogies), 4 workers at 4 syncs only 0.80-0.95x on analogies
    and at 16 syncs 0.94-1.17x (mean 1.03x); 3 workers: 0.95x at 4 and 8, 1.02x at 16. More syncs cost a fixed
    ~0.1 s per round here with two workers (more with more), which a larger corpus spreads over more words.
    """
    return 4 if workers is not None and 1 <= workers <= 2 else 16


def check_hyper(hp: dict[str, Any], workers: int | None = None) -> dict[str, Any]:
    """Fill defaults and refuse values gensim or the protocol cannot use.

    ``workers``: how many workers the job is expected to have (``--workers``; None or 0 when they
    are started elsewhere), which picks the default syncs per epoch.
    """
    unknown = set(hp) - set(HYPER)
    if unknown:
        raise InvalidInputError(f"unknown training parameter(s): {', '.join(sorted(unknown))}")
    out = dict(HYPER)
    out.update({k: v for k, v in hp.items() if v is not None})
    if out["syncs_per_epoch"] is None:
        out["syncs_per_epoch"] = default_syncs(workers)

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise InvalidInputError(f"invalid training parameter: {what}", hint="see: nlpzk train run --help")

    for key in ("epochs", "syncs_per_epoch", "dim", "window", "negative"):
        need(isinstance(out[key], int) and out[key] >= 1, f"{key} must be an integer >= 1, not {out[key]!r}")
    need(out["dim"] <= 10000, "dim must be at most 10000")
    # each worker seeds gensim with seed + a number below 100000 of its own; numpy takes < 2**32
    need(isinstance(out["seed"], int) and 0 <= out["seed"] < 2**31, f"seed must be an integer in [0, {2**31 - 1}], not {out['seed']!r}")
    # every round is a znode, a barrier and a parameter file: a billion of them is a typo, not a job
    need(out["epochs"] * out["syncs_per_epoch"] <= 100_000, f"epochs x syncs-per-epoch must be at most 100000 rounds, not {out['epochs'] * out['syncs_per_epoch']}")
    need(0 < float(out["alpha"]) <= 1, f"alpha must be in (0, 1], not {out['alpha']}")
    need(0 <= float(out["min_alpha"]) <= float(out["alpha"]), f"min-alpha must be in [0, alpha], not {out['min_alpha']}")
    need(float(out["sample"]) >= 0, f"sample must be >= 0, not {out['sample']}")
    need(out["eta"] is None or 0 <= float(out["eta"]) < 1, f"eta must be in [0, 1), not {out['eta']}")
    need(float(out["lease_timeout"]) > 0, "lease timeout must be positive")
    # what the ranges above let through: sample inf, lease-timeout inf (not valid JSON either)
    for key in ("alpha", "min_alpha", "sample", "eta", "lease_timeout"):
        need(out[key] is None or math.isfinite(float(out[key])), f"{key.replace('_', '-')} must be a finite number, not {out[key]}")
    _merge.check_rule(out["merge"])
    out["sg"] = bool(out["sg"])
    if out["kernel"] is None:
        out["kernel"] = "batched" if out["sg"] else "gensim"
    need(out["kernel"] in KERNELS, f"kernel must be one of {', '.join(KERNELS)}, not {out['kernel']!r}")
    need(out["sg"] or out["kernel"] == "gensim", "the batched kernel trains skip-gram only: CBOW needs --kernel gensim")
    need(out["delta_dtype"] in _merge.DELTA_DTYPES, f"delta dtype must be one of {', '.join(_merge.DELTA_DTYPES)}, not {out['delta_dtype']!r}")
    return out


def alpha_at(spec: dict[str, Any], words: float) -> float:
    """The global schedule: linear from ``alpha`` to ``min_alpha`` over all words of all epochs."""
    total = max(1, spec["total_words"])
    a0, a1 = float(spec["alpha"]), float(spec["min_alpha"])
    return max(a1, a0 - (a0 - a1) * min(1.0, words / total))


def round_slice(spec: dict[str, Any], r: int) -> tuple[int, int]:
    """``(epoch, slice)`` of round ``r``."""
    s = int(spec["syncs_per_epoch"])
    return r // s, r % s


def load_vocab(cluster: Cluster, name: str, version: int | str | None = None, tag: str | None = None) -> VocabData:
    from ..vocab import Vocabulary

    view = Vocabulary.open(name, version=version, tag=tag, cluster=cluster)
    tokens = view.tokens
    tokens = tokens.to_pylist() if hasattr(tokens, "to_pylist") else list(tokens)
    return VocabData(view.name, int(view.version), tokens, np.asarray(view.counts, dtype=np.int64), (view.doc or {}).get("corpus"), view)


def create_job(
    cluster: Cluster, job: str, corpus: str, vocab: str, *, model: str | None = None, workers: int | None = None, **hyper: Any
) -> tuple[dict[str, Any], list[str]]:
    """Create job ``job`` (or find it, if it exists with the same corpus and vocabulary).

    When the job finishes, its vectors are registered as the next version of model ``model``
    (default: the job's name). ``workers``: the workers expected (picks the default syncs per
    epoch, see :func:`default_syncs`; None when unknown).

    Returns ``(job document, warnings)``. Writes the frozen shard list and the seeded initial
    parameters to the store first, then creates the job node and round 0 in one transaction.
    """
    paths.check_name("job", job)
    existing = rounds.check_job(registry.maybe_json(cluster.zk, paths.job(job)), registry.full_path(cluster.zk, paths.job(job)))
    if existing is not None:
        if existing.get("deleting"):
            raise registry.being_deleted(paths.job(job))
        spec = existing["spec"]
        vname, vnum, vtag = parse_spec(vocab) if vocab else (None, None, None)
        if vname and vname == spec.get("vocab") and vtag is not None:  # a tag names whatever version it points at now
            from ..vocab import resolve

            vnum, _ = resolve(cluster, vname, None, vtag)
        hint = "resume it with: nlpzk train resume " + job + ", or pick another job name"
        other = []  # what was given that is not what the job was created with, as "theirs (not given)"
        if corpus and corpus != spec.get("corpus"):
            other.append(f"corpus {spec.get('corpus')!r} (not {corpus!r})")
        if (vname and vname != spec.get("vocab")) or (vnum is not None and vnum != spec.get("vocab_version")):
            given_vocab = vocab if vtag is None or vname != spec.get("vocab") else f"{vocab} = {vname}@v{vnum}"
            other.append(f"vocabulary {spec.get('vocab')}@v{spec.get('vocab_version')} (not {given_vocab})")
        if other:
            raise ConflictError(f"job {job!r} exists with {' and '.join(other)}: a job's corpus and vocabulary are fixed when it is created", hint=hint)
        # a job's parameters are fixed when it is created: a different one given now would be ignored
        given = {k: v for k, v in hyper.items() if v is not None}
        if model is not None:
            given["model"] = model
        # jobs created before these choices train with gensim's kernel and store float32 deltas
        had = dict(spec, kernel=kernel_of(spec), delta_dtype=_merge.delta_dtype_of(spec))
        differ = [f"{k.replace('_', '-')} {had.get(k)!r} (not {v!r})" for k, v in sorted(given.items()) if k in had and had.get(k) != v]
        if differ:
            raise ConflictError(f"job {job!r} exists with {', '.join(differ)}: a job's parameters are fixed when it is created", hint=hint)
        return existing, []
    hp = check_hyper(hyper, workers)
    corp = Corpus.open(corpus, cluster=cluster)
    corpus_stat = cluster.zk.exists(paths.corpus(corpus))  # which incarnation of the name the shards come from
    if corpus_stat is None:
        raise NotFoundError(f"unknown corpus {corpus!r}", hint="see: nlpzk corpus list")
    shards = corp.shards
    if not shards:
        raise InvalidInputError(f"corpus {corpus!r} has no shards", hint=f"ingest text first: nlpzk corpus ingest {corpus} FILES")
    name, version, tag = parse_spec(vocab)
    vd = load_vocab(cluster, name, version, tag)
    vpath = paths.vocab_version(vd.name, vd.version)
    vdoc, _ = registry.get_json(cluster.zk, vpath, what=f"vocabulary {vd.ref}")
    if not vd.tokens:
        raise InvalidInputError(f"vocabulary {vd.ref} has no tokens: there is nothing to train", hint="build one with a lower --min-count: nlpzk vocab build --help")
    warnings = []
    if vd.corpus not in (None, corpus):
        warnings.append(f"vocabulary {vd.ref} was built from corpus {vd.corpus!r}, not {corpus!r}: words missing from it are skipped")
    total_tokens = sum(s.tokens for s in shards)
    model = paths.check_name("model", model or job)
    spec = dict(hp, corpus=corpus, vocab=vd.name, vocab_version=vd.version, vocab_sha256=vdoc.get("sha256"), vocab_size=len(vd.tokens), corpus_words=total_tokens, model=model)
    spec["total_words"] = total_tokens * spec["epochs"]
    spec["rounds"] = spec["epochs"] * spec["syncs_per_epoch"]
    spec["unit_tokens"] = unit_tokens(total_tokens, spec["syncs_per_epoch"])
    # Claim the name before writing, as vocab build and model register do: files of a creation
    # killed before the job node exists are then gc's "not registered", not "unknown owner".
    cluster.zk.ensure_path(paths.pending_job(job))
    nonce = uuid.uuid4().hex[:12]
    shard_rel = naming.job_shards(job, nonce)
    shard_list = [dict(id=s.id, path=s.path, sha256=s.sha256, bytes=s.bytes, sentences=s.sentences, tokens=s.tokens, documents=s.documents) for s in shards]
    sha, _ = cluster.store.write_bytes(shard_rel, json.dumps(shard_list).encode())
    spec["shards"] = {"path": shard_rel, "sha256": sha, "count": len(shards)}
    params_rel = naming.round_params(job, 0, nonce)
    now = registry.now()
    doc = {"spec": spec, "state": "running", "round": 0, "words": 0, "created": now}
    round0 = {"round": 0, "params": [params_rel], "words_before": 0, "opened": now}
    try:
        _merge.save_array(cluster.store, params_rel, initial_params(spec, vd))
    except BaseException:  # no file left behind that no job names
        cluster.store.delete(shard_rel)
        raise
    # (a connection error in this transaction leaves the files: the job may exist all the same)
    try:
        created = _create_guarded(cluster, job, doc, round0, [u.name for u in work_units(spec, shards)], corpus, corpus_stat.czxid, vd, vdoc)
    except ConflictError:  # known not created (any other error: the outcome may be unknown, the files stay)
        cluster.store.delete(params_rel)
        cluster.store.delete(shard_rel)
        drop_pending(cluster.zk, job)
        raise
    if not created:
        cluster.store.delete(params_rel)
        cluster.store.delete(shard_rel)
        drop_pending(cluster.zk, job)  # another creator won: the job exists
        return create_job(cluster, job, corpus, vocab, model=model, workers=workers, **hyper)
    drop_pending(cluster.zk, job)
    return doc, warnings


def _create_guarded(
    cluster: Cluster, job: str, doc: dict[str, Any], round0: dict[str, Any], units: list[str], corpus: str, corpus_czxid: int, vd: VocabData, vdoc: dict[str, Any]
) -> bool:
    """``rounds.create_job`` against `corpus delete` and `vocab delete`: the transaction sets the
    corpus's and the vocabulary's guard nodes at the versions read before checking that the corpus
    node is still the one whose shards were read (``corpus_czxid``: not deleted and created anew),
    that neither is being deleted, and that the version still holds the table loaded; a delete
    sets them too after it looked for jobs, so whichever commits second fails and looks again.
    Both guards are held meanwhile (``versioned.GuardHold``), so neither is deleted with its
    corpus or vocabulary and created anew at version 0 between our read and our transaction.
    False: the job exists."""
    zk = cluster.zk
    with _versioned.GuardHold(zk, paths.corpus_users(corpus), paths.corpus(corpus)) as chold, _versioned.GuardHold(zk, paths.vocab_users(vd.name), paths.vocab(vd.name)) as vhold:
        for _ in _versioned.guard_attempts(f"creating job {job!r}"):
            cguard = chold.version()
            vguard = vhold.version()
            cstat = zk.exists(paths.corpus(corpus))
            if cstat is None or cstat.czxid != corpus_czxid or registry.is_deleting(zk, paths.corpus(corpus)):
                raise ConflictError(f"corpus {corpus!r} was deleted meanwhile, or is being deleted", hint="see: nlpzk corpus list, then run train run again")
            now = registry.maybe_json(zk, paths.vocab_version(vd.name, vd.version))
            if registry.is_deleting(zk, paths.vocab(vd.name)) or not isinstance(now, dict) or now.get("sha256") != vdoc.get("sha256"):
                raise ConflictError(f"vocabulary {vd.ref} was deleted meanwhile, or is being deleted", hint=f"train on another version (see: nlpzk vocab list {vd.name})")
            try:
                guards = [(paths.corpus_users(corpus), cguard), (paths.vocab_users(vd.name), vguard), chold.check, vhold.check]
                return rounds.create_job(zk, job, doc, round0, units, guards=guards)
            except rounds.StaleCheck:
                continue  # a delete, or another job creation, went first (or a hold went with its session): look again
    raise AssertionError("unreachable")  # guard_attempts raises when its time is up


def drop_pending(zk, job: str) -> None:
    """Remove the job's pending mark (the job node exists now, or its creation is given up)."""
    try:
        zk.retry(zk.delete, paths.pending_job(job))
    except NoNodeError:
        pass


# A round's slice of a work unit holds at least this many tokens (smaller ones cost more in leasing
# than they gain in balance), and a job aims at this many units so that the last unit of a round
# is a small share of it (workers finish a round together) however the corpus was sharded.
UNIT_MIN_SLICE_TOKENS = 20_000
UNIT_TARGET = 64


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """What a worker leases in a round: a shard, or one of ``pieces`` equal runs of its sentences."""

    name: str
    shard: str
    piece: int
    pieces: int
    tokens: float

    def sentences(self, info: ShardInfo) -> tuple[int, int]:
        n = info.sentences
        return self.piece * n // self.pieces, (self.piece + 1) * n // self.pieces


def unit_tokens(total_tokens: int, syncs_per_epoch: int) -> int:
    """The size a job's work units aim at (stored in the spec when the job is created)."""
    return max(UNIT_MIN_SLICE_TOKENS * syncs_per_epoch, -(-total_tokens // UNIT_TARGET))


def work_units(spec: dict[str, Any], shards: list[ShardInfo]) -> list[WorkUnit]:
    """The job's units: each shard split into ``ceil(tokens / unit_tokens)`` pieces (a shard of one
    piece keeps its own name; jobs created before units existed have one unit per shard)."""
    size = spec.get("unit_tokens")
    out = []
    for sh in shards:
        n = max(1, min(sh.sentences, -(-sh.tokens // size))) if size else 1
        for j in range(n):
            out.append(WorkUnit(sh.id if n == 1 else f"{sh.id}+{j:03d}", sh.id, j, n, sh.tokens / n))
    return out


def frozen_shards(cluster: Cluster, spec: dict[str, Any]) -> list[ShardInfo]:
    ref = spec["shards"]
    data = cluster.store.read_bytes(ref["path"])
    if ref.get("sha256") and hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise IntegrityError(f"the job's shard list {ref['path']} fails its checksum", hint="the job's files were damaged; train the job again under a new name")
    try:
        return [ShardInfo.from_doc(d["id"], d) for d in json.loads(data.decode())]
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"the job's shard list {ref['path']} is not readable: {exc!r}", hint="the job's files were damaged; train the job again under a new name") from None


def job_doc(cluster: Cluster, job: str, *, deleting: bool = False) -> dict[str, Any]:
    """The job's node document. A job a ``train delete`` marked (and may have half deleted) is
    refused unless ``deleting``."""
    try:
        doc = rounds.check_job(registry.maybe_json(cluster.zk, paths.job(job)), registry.full_path(cluster.zk, paths.job(job)))
    except registry.CorruptDocumentError as exc:
        raise damaged(job, exc) from None
    if doc is None:
        raise NotFoundError(f"unknown training job {job!r}", hint="see: nlpzk train list")
    if doc.get("deleting") and not deleting:
        raise registry.being_deleted(paths.job(job))
    return doc


def job_documents(zk, jobs: list[str], *, keep_damaged: bool = False) -> list[dict[str, Any] | registry.CorruptDocumentError | None]:
    """The node documents of ``jobs`` in one round trip (None: deleted meanwhile). A damaged one
    stops the caller as it stops ``train list``: naming the znode and ``train delete JOB --force``
    (with ``keep_damaged``, that error takes the document's place instead, for an overview)."""
    out: list[dict[str, Any] | registry.CorruptDocumentError | None] = []
    for job, got in zip(jobs, registry.get_many(zk, [paths.job(j) for j in jobs])):
        where = registry.full_path(zk, paths.job(job))
        try:
            out.append(None if got is None else rounds.check_job(registry.loads(got[0], where), where))
        except registry.CorruptDocumentError as exc:
            if not keep_damaged:
                raise damaged(job, exc) from None
            out.append(damaged(job, exc))
    return out


def damaged(job: str, exc: registry.CorruptDocumentError) -> registry.CorruptDocumentError:
    """``exc`` (job ``job``'s node cannot be read) with what to do about a damaged job."""
    return registry.CorruptDocumentError(
        exc.message,
        hint=f"restore it from a ZooKeeper backup, or delete the job anyway (its znodes and its files under {naming.job_dir(job)}/) with: nlpzk train delete {job} --yes --force",
    )


def unchecked_users(what: str, damaged: list[tuple[str, registry.CorruptDocumentError]]) -> IntegrityError:
    """The refusal of a delete of ``what`` (``"corpus 'c'"``) when no readable job uses it but the
    nodes of ``damaged`` (``(job, error)``, from :func:`job_documents` with ``keep_damaged``) cannot
    tell whether those jobs do: it names them, the damage, and the ways on (``--force`` among them)."""
    jobs = [job for job, _ in damaged]
    return IntegrityError(
        f"training job(s) {first_few(jobs)} cannot be checked for use of {what}: {damaged[0][1].message}",
        hint=f"restore the job's node from a ZooKeeper backup or delete the job (nlpzk train delete {jobs[0]} --yes --force), or pass --force to delete {what} anyway",
    )


def registered_as(cluster: Cluster, job: str, doc: dict[str, Any] | None = None) -> list[str]:
    """``["model@vN", ...]``: the model versions registered from ``job``'s final vectors (``doc``:
    the job's document; versions from an earlier job of that name, since deleted, do not count)."""
    from ..models import from_job

    zk = cluster.zk
    if doc is None:
        doc = registry.maybe_json(zk, paths.job(job))
    doc = doc if isinstance(doc, dict) else None
    out = []
    for model in registry.children(zk, paths.MODELS):
        numbers = _versioned.versions(zk, paths.model(model))
        for n, vdoc in zip(numbers, registry.many_json(zk, [paths.model_version(model, n) for n in numbers])):
            if isinstance(vdoc, dict) and from_job(vdoc, job, doc):
                out.append(f"{model}@v{n}")
    return out


def delete_job(cluster: Cluster, job: str, *, force: bool = False) -> dict[str, Any]:
    """Delete training job ``job``: its znodes and its store files (round parameters, contributions,
    final vectors and parameters). Models registered from it keep their own copy of the vectors;
    their held-out loss (``model eval --only heldout``) needs the job's final parameters and is no
    longer possible.

    Refused (ConflictError) while workers are in the job, or when it finished and no model holds
    its vectors (they would be lost), unless ``force`` (workers then stop at their next step with
    an error). The job is marked first (from then on every command and worker refuses it), then
    its files go, then its znodes: a delete stopped half-way is finished by running it again.
    A job whose node is damaged (not JSON, without its spec, or a spec that is no object) is refused (IntegrityError) unless
    ``force``: then its znodes and every file under its store folder go, and the result has
    ``damaged`` (what is wrong with the node) and ``unknown`` (what could not be told without it).
    Returns ``{"job", "state", "files", "registered_as"}``.
    """
    zk = cluster.zk
    if zk.exists(paths.job(job)) is None and zk.exists(paths.pending_job(job)) is not None:
        raise NotFoundError(f"training job {job!r} does not exist: its creation is under way, or was interrupted", hint="an interrupted one leaves files that nlpzk gc deletes")
    try:
        doc = job_doc(cluster, job, deleting=True)
    except registry.CorruptDocumentError as exc:
        if not force:
            raise
        return _delete_damaged(cluster, job, exc.message)
    registered = registered_as(cluster, job, doc)
    if not doc.get("deleting"):  # a marked job passed these looks when it was marked
        workers = registry.children(zk, paths.job_workers(job))
        if workers and not force:
            raise ConflictError(
                f"job {job!r} has {len(workers)} live worker(s): {first_few(workers)}",
                hint="stop them first (Ctrl-C, or SIGTERM to nlpzk train worker), or pass --force (they then stop with an error)",
            )
        if doc.get("state") == "done" and not registered and not force:
            raise ConflictError(
                f"job {job!r} finished, but no model holds its vectors: deleting it would lose them",
                hint=f"register them first (nlpzk model register {job}), or pass --force",
            )
        try:
            _versioned.mark_deleting(zk, paths.job(job))
        except NotFoundError:
            raise NotFoundError(f"unknown training job {job!r} (deleted meanwhile)", hint="see: nlpzk train list") from None
    files = _delete_files_and_nodes(cluster, job)
    return {"job": job, "state": doc.get("state"), "files": len(files), "registered_as": registered}


def _delete_files_and_nodes(cluster: Cluster, job: str) -> list[str]:
    """The last steps of a delete: every file under the job's store folder, then its znodes (the
    job node last: a delete stopped before finds it and is run again). The files deleted."""
    store = cluster.store
    files = store.list(naming.job_dir(job))
    for f in files:
        store.delete(f)
    store.delete_dir(naming.job_dir(job))
    registry.delete_tree(cluster.zk, paths.job(job))
    return files


def _delete_damaged(cluster: Cluster, job: str, damage: str) -> dict[str, Any]:
    """``delete_job(force=True)`` of a job whose node cannot be read. Not marked first: the damaged
    node already stops every command and worker that reads it, and stays until the very end. Every
    file of a job is under its store folder; what the node alone could tell (the state, which
    incarnation of the job a model version naming it came from) is reported as unknown."""
    registered = registered_as(cluster, job, {})  # by name only: no creation time to tell jobs apart
    files = _delete_files_and_nodes(cluster, job)
    unknown = ["its state", "whether a model holds its vectors" + (f" (model versions naming job {job}: {', '.join(registered)})" if registered else " (no model version names it)")]
    return {"job": job, "state": None, "files": len(files), "registered_as": [], "damaged": damage, "unknown": unknown}


def status(cluster: Cluster, job: str) -> dict[str, Any]:
    """The job, its rounds (words, loss, commits, timings), live workers and current leases."""
    doc = job_doc(cluster, job)
    zk = cluster.zk
    rounds_out = []
    for name in registry.children(zk, paths.job_rounds(job)):
        rd = registry.maybe_json(zk, f"{paths.job_rounds(job)}/{name}") or {}
        rounds_out.append({k: rd.get(k) for k in ("round", "state", "words_before", "words", "loss", "commits", "workers", "wall_s", "train_s", "load_s", "merge_s", "eval_s", "alpha", "opened", "merged_at")})
    cur = doc["round"]
    leases = {}
    done = []
    if doc.get("state") == "running":
        for unit in registry.children(zk, paths.round_leases(job, cur)):
            leases[unit] = (registry.maybe_json(zk, paths.round_lease(job, cur, unit)) or {}).get("owner")
        done = registry.children(zk, paths.round_done(job, cur))
    return {
        "job": job,
        "state": doc.get("state"),
        "round": cur,
        "rounds": doc["spec"]["rounds"],
        "words": doc["words"],
        "total_words": doc["spec"]["total_words"],
        "spec": doc["spec"],
        "final": doc.get("final"),
        "workers": _members.members(zk, job),
        "leases": leases,
        "done_in_round": done,
        "history": rounds_out,
    }


def status_through_outage(cluster: Cluster, job: str, workers: Sequence[subprocess.Popen] = (), *, pause: float = 1.0) -> dict[str, Any] | None:
    """The job's :func:`status`, or None while ZooKeeper is unreachable (an election, a lost quorum),
    after waiting up to ``pause`` seconds for the connection to come back: what ``train run`` and
    :func:`wait` poll. The workers pause and rejoin meanwhile, or exit after their reconnect limit;
    a follower waits as long as they do, then raises ZkUnavailableError (also at once when every
    local worker in ``workers`` has exited, or the cluster was closed)."""
    from kazoo.exceptions import ConnectionLoss

    from ..errors import ZkUnavailableError
    from ..zk.client import RECONNECT_LIMIT

    try:
        if not cluster.closed and not cluster.watch.connected.is_set():
            # a request made now would wait for the connection (up to REQUEST_TIMEOUT, 120 s),
            # deaf to the caller's stop and timeout: wait here instead, ``pause`` at a time
            raise ConnectionLoss("not connected")
        return status(cluster, job)
    except (ZkUnavailableError, *rounds.CONNECTION_ERRORS) as exc:
        if cluster.closed:
            raise  # nothing comes back: "this cluster is closed"
        if (workers and all(p.poll() is not None for p in workers)) or cluster.watch.down_for() > RECONNECT_LIMIT:
            raise ZkUnavailableError(
                f"lost the connection to ZooKeeper ({type(exc.__cause__ or exc).__name__}) while following job {job!r}",
                hint=f"check the servers (nlpzk zk status); once they are back: nlpzk train resume {job}",
            ) from None
        cluster.watch.connected.wait(pause)
        return None


def wait(
    cluster: Cluster,
    job: str,
    *,
    timeout: float | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    workers: Sequence[subprocess.Popen] = (),
    every: float = 1.0,
) -> dict[str, Any]:
    """Follow job ``job`` until it is done; return what ``nlpzk train run --json`` prints: its
    :func:`status` plus ``model`` / ``model_version``, the model version its vectors are registered as.

    The worker that publishes the last round registers the model; registering again here is a no-op
    that covers one that died first (a version registered and deleted since stays deleted:
    ``model_version`` None, ``deleted_model_version`` its number). ``on_round(status)`` is called
    once per round seen. ``workers``: the processes of :func:`start_local_workers`; if they all exit
    before the job is done, TrainingError; once it is done they are given time to leave (those that
    do not are stopped). ``timeout`` (seconds, None: no limit): TrainingError, the job and its
    workers left running (``wait`` again, or stop them with :func:`stop_local_workers`). A lost
    ZooKeeper connection is waited out as ``train run`` does (:func:`status_through_outage`): up to
    120 s, the workers' own reconnect limit, then ZkUnavailableError.

    >>> procs = start_local_workers(cluster.config, "w2v", workers=2)   # doctest: +SKIP
    >>> wait(cluster, "w2v", workers=procs)["model_version"]              # doctest: +SKIP
    """
    from ..models import RegistrationDeleted, register_job
    from .local import check_workers_left, stop_local_workers

    deadline = None if timeout is None else time.monotonic() + timeout

    def left() -> float:
        return every if deadline is None else max(0.0, min(every, deadline - time.monotonic()))

    last: dict[str, Any] | None = None
    while True:
        st = status_through_outage(cluster, job, workers, pause=left())
        if st is not None:
            if on_round is not None and (last is None or st["round"] != last["round"]):
                on_round(st)
            last = st
            if st["state"] == "done":
                break
            check_workers_left(job, list(workers), st["workers"])
        if deadline is not None and time.monotonic() >= deadline:
            at = "round unknown" if last is None else f"at round {last['round']} of {last['rounds']}"
            raise TrainingError(
                f"job {job!r} did not finish within {timeout:g} s ({at}{'' if st is not None else '; ZooKeeper unreachable'})",
                hint="it goes on with its workers: wait again, or see nlpzk train status " + job,
            )
        if st is not None:
            time.sleep(left())
    # the job is done; the local workers leave on their own (the last publisher may still be registering)
    leave_by = time.monotonic() + 120
    for p in workers:
        try:
            p.wait(max(0.1, leave_by - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop_local_workers([q for q in workers if q.poll() is None])
            break
    st = status(cluster, job)
    model, number, deleted = (st.get("spec") or {}).get("model") or job, None, None
    try:
        model, number = register_job(cluster, job, model)
    except RegistrationDeleted as exc:
        deleted = exc.number
    return dict(st, model=model, model_version=number, deleted_model_version=deleted)


#: The fields of a ``train list`` row.
JOB_ROW_KEYS = ("job", "state", "round", "rounds", "corpus", "vocab", "workers", "scores", "deleting", "damaged")


def list_jobs(cluster: Cluster) -> list[dict[str, Any]]:
    """Every job's row (``job``, ``state``, ``round``, ``rounds``, ``corpus``, ``vocab``, ``workers``,
    ``scores``, ``deleting``, ``damaged``). A job whose node is damaged does not hide the others: its
    row has state ``damaged`` and in ``damaged`` the line saying what is wrong and what to do (else null)."""
    out = []
    names = registry.children(cluster.zk, paths.JOBS)
    for name, doc in zip(names, job_documents(cluster.zk, names, keep_damaged=True)):
        if doc is None:
            continue  # deleted while we listed
        workers = len(registry.children(cluster.zk, paths.job_workers(name)))
        if not isinstance(doc, dict):
            out.append(registry.damaged_row(JOB_ROW_KEYS, doc, job=name, workers=workers, deleting=False))
            continue
        spec = doc["spec"]
        out.append(
            {
                "job": name,
                "state": doc.get("state"),
                "round": doc.get("round"),
                "rounds": spec.get("rounds"),
                "corpus": spec.get("corpus"),
                "vocab": f"{spec.get('vocab')}@v{spec.get('vocab_version')}",
                "workers": workers,
                "scores": (doc.get("final") or {}).get("scores"),
                "deleting": bool(doc.get("deleting")),
                "damaged": None,
            }
        )
    return out


def final_vectors(cluster: Cluster, job: str):
    """``(KeyedVectors, job document)`` of a finished job, for the model registry to register.

    The document's ``final`` holds ``vectors`` (store path), ``sha256``, ``vocab`` (``name@vN``) and
    ``scores``. Raises TrainingError while the job is still running.
    """
    doc = job_doc(cluster, job)
    final = doc.get("final")
    if doc.get("state") != "done" or not final:
        raise TrainingError(f"job {job!r} has not finished (round {doc.get('round')} of {doc['spec']['rounds']})", hint=f"see: nlpzk train status {job}")
    cluster.store.verify(final["vectors"], final["sha256"])
    kv = pickle.loads(cluster.store.read_bytes(final["vectors"]))
    return kv, doc


def save_vectors(cluster: Cluster, job: str, vocab: VocabData, vectors: np.ndarray) -> tuple[str, str, Any]:
    """Write the final KeyedVectors to the store; returns ``(path, sha256, kv)``."""
    kv = keyed_vectors(vocab, vectors)
    rel = naming.job_vectors(job, uuid.uuid4().hex[:12])
    with cluster.store.atomic_output(rel) as out:
        kv.save(out)
    return rel, out.sha256, kv
