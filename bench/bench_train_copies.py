"""Where the throughput target's gap comes from: one shared model copy or one copy per worker.

nlpzk's workers each train their own replica of the model (one process, one copy), as any design
that merges parameters between machines does. gensim ``workers=2`` trains one copy from two threads
(Hogwild). This runs, on the same corpus and in the same run, alternating, one epoch each:

* the anchor: gensim ``Word2Vec.train`` with ``workers=2``;
* two threads calling gensim's Cython kernel on **one shared copy** (what gensim's threads do,
  without its producer thread);
* two threads, **each its own copy** (same process);
* two **processes**, each its own copy, no synchronisation (nlpzk's layout with no sync at all).

No nlpzk code runs here: it isolates what the model copies cost on this machine from what nlpzk's
coordination costs (bench_train_throughput.py measures that).

    .venv/bin/python bench/bench_train_copies.py [--reps 4] [--words N]
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
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


def _child(model, part, barrier, q) -> None:
    own = _own_copy(model)  # its own arrays, not pages shared copy-on-write with the parent
    for b in part:  # touch the sentence lists now, so copy-on-write faults on them are not timed
        for s in b:
            len(s)
    barrier.wait()
    t0 = time.perf_counter()
    _train(own, part)
    q.put(time.perf_counter() - t0)


def _processes(model, parts) -> float:
    ctx = mp.get_context("fork")
    q, barrier = ctx.Queue(), ctx.Barrier(len(parts))
    ps = [ctx.Process(target=_child, args=(model, p, barrier, q)) for p in parts]
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
    args = ap.parse_args()
    sents = gcide_sentences(args.words)
    words = sum(map(len, sents))
    model = Word2Vec(vector_size=100, window=5, negative=5, sg=1, min_count=5, workers=2, seed=1)
    model.build_vocab(sents)
    mb = 2 * model.wv.vectors.nbytes / 2**20
    print(f"corpus: GCIDE, {words:,} words; vocabulary {len(model.wv):,} words; one model copy {mb:.0f} MB; skip-gram dim 100 window 5 negative 5", flush=True)
    parts = [_batches(sents[k::2]) for k in range(2)]
    twin = _own_copy(model)
    rows = []
    for rep in range(args.reps):
        t0 = time.perf_counter()
        model.train(sents, total_examples=len(sents), epochs=1)
        g = words / (time.perf_counter() - t0)
        shared = words / _threads([model, model], parts)
        own = words / _threads([model, twin], parts)
        procs = words / _processes(model, parts)
        rows.append((g, shared, own, procs))
        print(f"rep {rep + 1}: gensim workers=2 {g:,.0f} words/s | 2 threads, one shared copy {shared / g:.2f}x | "
              f"2 threads, a copy each {own / g:.2f}x | 2 processes, a copy each {procs / g:.2f}x", flush=True)
    r = np.array(rows)
    ratios = r[:, 1:] / r[:, :1]
    print(f"median ratios to gensim workers=2: shared copy {np.median(ratios[:, 0]):.2f}x, a copy per thread {np.median(ratios[:, 1]):.2f}x, "
          f"a copy per process {np.median(ratios[:, 2]):.2f}x (ranges {ratios.min(0).round(2).tolist()} - {ratios.max(0).round(2).tolist()})", flush=True)


if __name__ == "__main__":
    main()
