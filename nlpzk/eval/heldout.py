"""Distributed held-out loss: K worker processes lease corpus shards, score them, results are merged.

The loss is word2vec's skip-gram negative-sampling objective with the model's parameters frozen:
for every (context, centre) pair within ``window`` (no random window shrinking, no subsampling, so
the number is deterministic), ``-log s(x.u_centre) - sum_k log s(-x.u_neg_k)`` with ``x`` the context
word's input vector and ``u`` output vectors, ``negative`` noise words drawn from unigram^0.75 with a
seed derived from the shard id. Output vectors (``syn1neg``) are not part of a model version; they
come from the final parameters of the job that trained it, so only job-trained models qualify.

Work is shared through :mod:`nlpzk.zk.workset` (the fenced leases training uses): a worker that dies
loses its lease with its session and another one scores the shard. Per-shard results are summed in
shard order, so the merged number does not depend on how many workers there were.

>>> evaluate_heldout(cluster, "wiki", workers=2, corpus="wiki-heldout")   # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from typing import Any, Callable

import numpy as np

from ..cluster import Cluster
from ..corpus import Corpus
from ..errors import FencedError, IntegrityError, InvalidInputError, NlpzkError, NotFoundError
from ..models import Model, store_scores
from ..zk import paths, registry, workset

DEFAULTS = {"window": 5, "negative": 5, "seed": 1}
_BATCH = 8192


def output_vectors(cluster: Cluster, model: Model) -> np.ndarray:
    """``syn1neg`` of the job that trained ``model`` (rows in vocabulary-id order)."""
    job = model.doc.get("job")
    if not job:
        raise InvalidInputError(
            f"model {model.ref} was not registered by a training job",
            hint="held-out loss needs the job's output weights; evaluate with the benchmarks instead",
        )
    doc = registry.maybe_json(cluster.zk, paths.job(job))
    from ..models import from_job

    if isinstance(doc, dict) and not from_job(model.doc, job, doc):  # deleted; this name is another job's now
        doc = None
    params = ((doc or {}).get("final") or {}).get("params")
    if not params or (doc or {}).get("deleting"):  # a job being deleted (train delete) has lost its files, or is losing them
        raise NotFoundError(f"the final parameters of job {job!r} (which trained {model.ref}) are gone", hint="held-out loss needs them; the job may have been deleted")
    from ..train.merge import load_params

    # the final parameters are row-range parts (reduce-scattered merge); older jobs kept one file
    arr = load_params(cluster.store, [params] if isinstance(params, str) else params)
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] != len(model.kv.index_to_key):
        raise IntegrityError(f"parameters of job {job!r} have shape {arr.shape}, which does not fit model {model.ref} ({len(model.kv.index_to_key)} rows)")
    return np.asarray(arr[1])


def noise_table(counts: np.ndarray) -> np.ndarray:
    """Cumulative unigram^0.75 distribution (uniform when no counts are known)."""
    weights = np.power(np.maximum(np.asarray(counts, dtype=np.float64), 0), 0.75)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    cum = np.cumsum(weights)
    return cum / cum[-1]


def shard_loss(
    sentences,
    key_to_index: dict[str, int],
    syn0: np.ndarray,
    syn1neg: np.ndarray,
    cum: np.ndarray,
    *,
    window: int,
    negative: int,
    seed: int,
    shard_id: str,
) -> dict[str, Any]:
    """Summed negative-sampling loss of one shard's (context, centre) pairs, with counts."""
    ids, sids, words, oov = [], [], 0, 0
    for n, sentence in enumerate(sentences):
        words += len(sentence)
        row = [key_to_index.get(t, -1) for t in sentence]
        kept = [i for i in row if i >= 0]
        oov += len(row) - len(kept)
        ids.extend(kept)
        sids.extend([n] * len(kept))
    ids_a = np.asarray(ids, dtype=np.int64)
    sid_a = np.asarray(sids, dtype=np.int64)
    ctx_parts, ctr_parts = [], []
    for d in range(1, window + 1):
        same = sid_a[:-d] == sid_a[d:] if len(ids_a) > d else np.zeros(0, dtype=bool)
        left, right = ids_a[:-d][same], ids_a[d:][same]
        ctx_parts += [left, right]
        ctr_parts += [right, left]
    ctx = np.concatenate(ctx_parts) if ctx_parts else np.zeros(0, dtype=np.int64)
    ctr = np.concatenate(ctr_parts) if ctr_parts else np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, zlib.crc32(shard_id.encode())])
    total = 0.0
    for start in range(0, len(ctx), _BATCH):
        x = syn0[ctx[start : start + _BATCH]].astype(np.float64)
        u = syn1neg[ctr[start : start + _BATCH]].astype(np.float64)
        pos = np.einsum("bd,bd->b", x, u)
        total += float(np.logaddexp(0.0, -pos).sum())
        if negative:
            noise = np.searchsorted(cum, rng.random((len(x), negative)))
            neg = np.einsum("bd,bkd->bk", x, syn1neg[noise].astype(np.float64))
            total += float(np.logaddexp(0.0, neg).sum())
    return {"loss": total, "pairs": int(len(ctx)), "words": words, "oov": oov}


def start(cluster: Cluster, name: str, version: int | None = None, tag: str | None = None, *, corpus: str | None = None, **options: Any) -> tuple[str, dict[str, Any]]:
    """Register a held-out evaluation of a model version over a corpus's shards. Returns ``(eval_id, doc)``."""
    model = Model.open(name, version=version, tag=tag, cluster=cluster)
    output_vectors(cluster, model)  # fail now, not in every worker, when there is nothing to score with
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise InvalidInputError(f"unknown held-out option(s): {', '.join(sorted(unknown))}")
    opts = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    if int(opts["window"]) < 1 or int(opts["negative"]) < 0:
        raise InvalidInputError("window must be >= 1 and negative >= 0")
    if corpus is None:
        job_doc = registry.maybe_json(cluster.zk, paths.job(model.doc["job"])) or {}
        corpus = (job_doc.get("spec") or {}).get("corpus")
        if not corpus:
            raise InvalidInputError(f"no corpus to score model {model.ref} on", hint="pass --corpus (ideally text the job did not train on)")
    shards = Corpus.open(corpus, cluster=cluster).shards
    if not shards:
        raise InvalidInputError(f"corpus {corpus!r} has no shards")
    eval_id = f"e-{uuid.uuid4().hex[:12]}"
    doc = {"version": model.version, "corpus": corpus, "created": registry.now(), **opts}
    try:
        workset.create(cluster.zk, paths.model_eval(name, eval_id), doc, [s.id for s in shards])
    except NotFoundError:
        raise NotFoundError(f"model {name!r} was deleted while its evaluation started", hint="see: nlpzk model list") from None
    return eval_id, doc


def work(cluster: Cluster, name: str, eval_id: str, *, owner: str | None = None, poll: float = 1.0, stop: threading.Event | None = None) -> dict[str, Any]:
    """Score shards of evaluation ``eval_id`` until none is left. Returns ``{worker, shards, fenced}``."""
    base = paths.model_eval(name, eval_id)
    if not cluster.zk.exists(paths.model(name)):
        raise NotFoundError(f"unknown model {name!r}", hint="see: nlpzk model list")
    doc = registry.maybe_json(cluster.zk, base)
    if doc is None:
        raise NotFoundError(
            f"model {name!r} has no evaluation {eval_id} (it finished and was cleaned up, or never started)",
            hint=f"start one with: nlpzk model eval {name} --workers K",
        )
    owner = owner or f"{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    model = Model.open(name, version=int(doc["version"]), cluster=cluster)
    kv = model.kv
    syn1neg = output_vectors(cluster, model)
    cum = noise_table(kv.expandos.get("count", np.ones(len(kv.index_to_key))))
    corpus = Corpus.open(doc["corpus"], cluster=cluster)
    waiter = workset.Waiter(cluster.zk, base)
    report = {"worker": owner, "shards": 0, "fenced": 0}
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            held, finished = workset.lease_next(cluster.zk, base, owner)
        except NotFoundError:
            break  # the creator already merged and cleaned up
        if held is None:
            if finished:
                break
            waiter.wait(poll)  # others hold the rest; one of them may die and free a shard
            continue
        result = shard_loss(
            corpus.sentences(held.unit), kv.key_to_index, kv.vectors, syn1neg, cum,
            window=int(doc["window"]), negative=int(doc["negative"]), seed=int(doc["seed"]), shard_id=held.unit,
        )
        try:
            workset.commit(cluster.zk, base, held, dict(result, worker=owner))
            report["shards"] += 1
        except FencedError:
            report["fenced"] += 1  # our session expired meanwhile; the shard is someone else's now
    return report


def merge(cluster: Cluster, name: str, eval_id: str) -> dict[str, Any]:
    """Sum the per-shard results (in shard order) into loss per pair; raises if shards are missing."""
    base = paths.model_eval(name, eval_id)
    doc, _ = registry.get_json(cluster.zk, base)
    units = workset.units(cluster.zk, base)
    results = workset.done(cluster.zk, base)
    missing = [u for u in units if u not in results]
    if missing:
        raise NlpzkError(f"held-out evaluation {eval_id} has {len(missing)} unscored shard(s)", hint="run more workers or try again")
    loss = sum(float(results[u]["loss"]) for u in units)
    pairs = sum(int(results[u]["pairs"]) for u in units)
    words = sum(int(results[u]["words"]) for u in units)
    oov = sum(int(results[u]["oov"]) for u in units)
    return {
        "loss_per_pair": loss / pairs if pairs else None,
        "pairs": pairs,
        "words": words,
        "oov_ratio": 100.0 * oov / words if words else 0.0,
        "shards": len(units),
        "workers": len({results[u].get("worker") for u in units}),
        "corpus": doc["corpus"],
        "window": doc["window"],
        "negative": doc["negative"],
    }


def start_local_workers(cluster: Cluster, name: str, eval_id: str, workers: int) -> list[subprocess.Popen]:
    """``workers`` local processes running ``nlpzk model eval-worker`` (what another machine would run)."""
    from ..train.local import worker_env

    env = worker_env(cluster.config)
    return [
        subprocess.Popen([sys.executable, "-m", "nlpzk", "model", "eval-worker", name, eval_id], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(workers)
    ]


def _last_line(proc: subprocess.Popen) -> str:
    lines = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
    return lines[-1] if lines else f"exit code {proc.returncode}"


def evaluate_heldout(
    cluster: Cluster,
    name: str,
    version: int | None = None,
    tag: str | None = None,
    *,
    workers: int = 2,
    corpus: str | None = None,
    timeout: float = 3600.0,
    save: bool = True,
    on_start: Callable[[str], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Start an evaluation, run ``workers`` local worker processes (0: score in this process), merge,
    store ``heldout`` on the model version, and clean the evaluation's znodes up.

    ``on_start(eval_id)`` is called once the evaluation exists: the id workers elsewhere join it by."""
    eval_id, doc = start(cluster, name, version, tag, corpus=corpus, **options)
    if on_start is not None:
        on_start(eval_id)
    base = paths.model_eval(name, eval_id)
    procs: list[subprocess.Popen] = []
    try:
        if workers <= 0:
            work(cluster, name, eval_id)
        else:
            procs = start_local_workers(cluster, name, eval_id, workers)
            waiter = workset.Waiter(cluster.zk, base)
            deadline = time.monotonic() + timeout
            while True:
                units = workset.units(cluster.zk, base)
                if len(registry.children(cluster.zk, f"{base}/done")) >= len(units):
                    break
                if all(p.poll() is not None for p in procs):
                    failed = [_last_line(p) for p in procs if p.returncode]
                    if failed:
                        raise NlpzkError(f"held-out workers failed: {failed[0]}", hint="run with -v, or start one with: nlpzk model eval-worker")
                    work(cluster, name, eval_id)  # all exited cleanly with shards left (a lost race): finish here
                    continue
                if time.monotonic() > deadline:
                    raise NlpzkError(f"held-out evaluation {eval_id} did not finish within {timeout:g}s")
                waiter.wait(1.0)
        result = merge(cluster, name, eval_id)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            if p.stderr:
                p.stderr.close()
        workset.delete(cluster.zk, base)
    if save:
        store_scores(cluster, name, int(doc["version"]), {"heldout": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}})
    return dict(result, model=f"{name}@v{doc['version']}")
