"""The training kernels on one thread: gensim's Cython kernel vs nlpzk's batched one, same model, same corpus.

No ZooKeeper, no sync: one process trains one model copy for ``--epochs`` epochs with each kernel in
turn (the learning rate going linearly over all of them, as ``Word2Vec.train`` does), and scores the
vectors. Both start from the same seeded initial vectors and the same vocabulary tables (nlpzk's
``build_model``: gensim's ``sample_int`` and ``cum_table``). gensim's kernel is driven the way an
nlpzk worker drives it (``train_slice``: ``train_batch_sg`` on gensim's 10,000-word batches, tested
to train what ``Word2Vec.train`` trains); a plain ``Word2Vec(workers=1).train()`` is timed as well.

    .venv/bin/python bench/bench_train_kernel.py [--words N] [--epochs 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np

from _train_common import gcide_sentences, scores

KEYS = ("ws353", "simlex", "analogy")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=None, help="the first N words of the corpus (default: all)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each kernel, alternating")
    args = ap.parse_args()
    from gensim.models import Word2Vec

    from nlpzk.train import _model
    from nlpzk.train.job import HYPER

    sents = gcide_sentences(args.words)
    counts = collections.Counter(w for s in sents for w in s)
    tokens = [w for w, c in counts.most_common() if c >= 5]
    vocab = _model.VocabData("gcide", 1, tokens, np.array([counts[t] for t in tokens]))
    index = {t: i for i, t in enumerate(tokens)}
    kept = [[t for t in s if t in index] for s in sents]
    flat = np.array([index[t] for s in kept for t in s], np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in kept])]).astype(np.int64)
    words = sum(map(len, sents))
    print(f"corpus: GCIDE, {len(sents):,} paragraphs, {words:,} words ({len(flat):,} in the vocabulary of {len(tokens):,}); "
          f"skip-gram dim 100 window 5 negative 5 sample 1e-3, {args.epochs} epochs, one thread", flush=True)
    spec = dict(HYPER, sg=True)
    start = _model.initial_params(spec, vocab)
    # compile (or load from numba's cache) outside the timing, as a worker does before its first round
    warm = _model.build_model(spec, vocab)
    _model.train_ids(warm, flat[:1000], offsets[:2], 1000, 0.025, 0.025)

    def run(kernel: str) -> tuple[float, dict]:
        if kernel == "Word2Vec.train":
            model = Word2Vec(vector_size=100, window=5, negative=5, sg=1, min_count=5, sample=1e-3, workers=1, seed=1)
            model.build_vocab(sents)
            t0 = time.perf_counter()
            model.train(sents, total_examples=len(sents), epochs=args.epochs)
            return time.perf_counter() - t0, scores(model.wv)
        model = _model.build_model(spec, vocab)
        _model.set_params(model, start)
        a0, a1, e = float(spec["alpha"]), float(spec["min_alpha"]), args.epochs
        t0 = time.perf_counter()
        for k in range(e):
            s0, s1 = a0 - (a0 - a1) * k / e, a0 - (a0 - a1) * (k + 1) / e
            if kernel == "gensim":
                _model.train_slice(model, kept, len(flat), s0, s1)
            else:
                _model.train_ids(model, flat, offsets, len(flat), s0, s1)
        return time.perf_counter() - t0, scores(_model.keyed_vectors(vocab, model.wv.vectors))

    rates: dict[str, list[float]] = collections.defaultdict(list)
    got: dict[str, list[dict]] = collections.defaultdict(list)
    for _ in range(args.repeats):
        for kernel in ("gensim", "batched", "Word2Vec.train"):
            secs, sc = run(kernel)
            rates[kernel].append(words * args.epochs / secs)
            got[kernel].append(sc)
            print(f"{kernel:<15} {secs:6.1f}s  {rates[kernel][-1]:>9,.0f} words/s  " + "  ".join(f"{k} {sc[k]:.3f}" for k in KEYS), flush=True)
    mean = {k: float(np.mean(v)) for k, v in rates.items()}
    print(f"batched / gensim kernel: {mean['batched'] / mean['gensim']:.2f}x words/s; batched / Word2Vec.train(workers=1): {mean['batched'] / mean['Word2Vec.train']:.2f}x")
    for k in KEYS:
        b, g = np.mean([s[k] for s in got["batched"]]), np.mean([s[k] for s in got["gensim"]])
        print(f"{k}: batched {b:.3f}, gensim kernel {g:.3f}: {b / g:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
