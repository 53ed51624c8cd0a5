"""Where the throughput target's gap comes from: one shared model copy or one copy per worker.

nlpzk's workers each train their own replica of the model (one process, one copy), as any design
that merges parameters between machines does. gensim ``workers=2`` trains one copy from two threads
(Hogwild). This runs, on the same corpus and in the same run, alternating, one epoch each:

* the anchor: gensim ``Word2Vec.train`` with ``workers=2``;
* two threads calling gensim's Cython kernel on **one shared copy** (what gensim's threads do,
  without its producer thread);
* two threads, **each its own copy** (same process);
* two **processes**, each its own copy, no synchronisation (nlpzk's layout with no sync at all);
* the same, each process **pinned to its own CPU** (``os.sched_setaffinity``);
* two **processes training one shared copy** (the parameter arrays in one ``MAP_SHARED`` mapping
  made before the fork: what a model replica per machine, Hogwild across its worker processes,
  would do).

No nlpzk code runs here: it isolates what the model copies cost on this machine from what nlpzk's
coordination costs (bench_train_throughput.py measures that).

    .venv/bin/python bench/bench_train_copies.py [--reps 4] [--words N] [--min-count 5]
"""

from __future__ import annotations

import argparse
import copy
import mmap
import multiprocessing as mp
import os
import threading
import time

import numpy as np
from gensim.models import Word2Vec
from gensim.models.word2vec_inner import MAX_WORDS_IN_BATCH, train_batch_sg

from _train_common import gcide_sentences


def _batches(sents):
    out, batch, size = [], [], 0
    for s in sents:
        if batch and size + len(s) > MAX_WORDS_IN_BATCH:
            out.append(batch)
            batch, size = [], 0
        batch.append(s)
        size += len(s)
    return out + [batch]


def _train(model, batches, alpha: float = 0.025) -> None:
    work = np.zeros(model.layer1_size, dtype=np.float32)
    for b in batches:
        train_batch_sg(model, b, alpha, work, True)


def _own_copy(model):
    """A model sharing the vocabulary tables but with its own parameter arrays (fresh memory)."""
    twin = copy.copy(model)
    twin.wv = copy.copy(model.wv)
    twin.wv.vectors = model.wv.vectors.copy()
    twin.syn1neg = model.syn1neg.copy()
    return twin


def _threads(models, parts) -> float:
    ts = [threading.Thread(target=_train, args=(m, p)) for m, p in zip(models, parts)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def _shared_copy(model):
    """A model whose parameter arrays live in one MAP_SHARED mapping, so forked children share them."""
    twin = copy.copy(model)
    twin.wv = copy.copy(model.wv)
    arrays = []
    for a in (model.wv.vectors, model.syn1neg):
        buf = mmap.mmap(-1, a.nbytes)  # anonymous and MAP_SHARED: the children write the same pages
        b = np.frombuffer(buf, dtype=a.dtype).reshape(a.shape)
        b[...] = a
        arrays.append(b)
    twin.wv.vectors, twin.syn1neg = arrays
    return twin


def _child(model, part, barrier, q, cpu, shared) -> None:
    # its own arrays, not pages shared copy-on-write with the parent, unless the copy is shared
    own = model if shared else _own_copy(model)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    for b in part:  # touch the sentence lists now, so copy-on-write faults on them are not timed
        for s in b:
            len(s)
    barrier.wait()
    t0 = time.perf_counter()
    _train(own, part)
    q.put(time.perf_counter() - t0)


def _processes(model, parts, pin: bool = False, shared: bool = False) -> float:
    ctx = mp.get_context("fork")
    q, barrier = ctx.Queue(), ctx.Barrier(len(parts))
    cpus = sorted(os.sched_getaffinity(0))
    ps = [ctx.Process(target=_child, args=(model, p, barrier, q, cpus[k % len(cpus)] if pin else None, shared))
          for k, p in enumerate(parts)]
    for p in ps:
        p.start()
    secs = [q.get() for _ in ps]
    for p in ps:
        p.join()
    return max(secs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--words", type=int, default=None, help="use the first N words of the corpus (default: all)")
    ap.add_argument("--min-count", type=int, default=5, help="gensim min_count: a higher one makes a smaller model (default: 5, the issue's)")
    args = ap.parse_args()
    sents = gcide_sentences(args.words)
    words = sum(map(len, sents))
    model = Word2Vec(vector_size=100, window=5, negative=5, sg=1, min_count=args.min_count, workers=2, seed=1)
    model.build_vocab(sents)
    mb = 2 * model.wv.vectors.nbytes / 2**20
    print(f"corpus: GCIDE, {words:,} words; vocabulary {len(model.wv):,} words; one model copy {mb:.0f} MB; skip-gram dim 100 window 5 negative 5 min-count {args.min_count}", flush=True)
    parts = [_batches(sents[k::2]) for k in range(2)]
    twin = _own_copy(model)
    shm = _shared_copy(model)
    rows = []
    for rep in range(args.reps):
        t0 = time.perf_counter()
        model.train(sents, total_examples=len(sents), epochs=1)
        g = words / (time.perf_counter() - t0)
        shared = words / _threads([model, model], parts)
        own = words / _threads([model, twin], parts)
        procs = words / _processes(model, parts)
        pinned = words / _processes(model, parts, pin=True)
        shared_procs = words / _processes(shm, parts, shared=True)
        rows.append((g, shared, own, procs, pinned, shared_procs))
        print(f"rep {rep + 1}: gensim workers=2 {g:,.0f} words/s | 2 threads, one shared copy {shared / g:.2f}x | "
              f"2 threads, a copy each {own / g:.2f}x | 2 processes, a copy each {procs / g:.2f}x | "
              f"pinned {pinned / g:.2f}x | 2 processes, one shared copy {shared_procs / g:.2f}x", flush=True)
    r = np.array(rows)
    ratios = r[:, 1:] / r[:, :1]
    names = ["shared copy", "a copy per thread", "a copy per process", "a copy per process, pinned", "2 processes, one shared copy"]
    print("median ratios to gensim workers=2: " + ", ".join(f"{n} {np.median(ratios[:, k]):.2f}x" for k, n in enumerate(names))
          + f" (ranges {ratios.min(0).round(2).tolist()} - {ratios.max(0).round(2).tolist()})", flush=True)


if __name__ == "__main__":
    main()
