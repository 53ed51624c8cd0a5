"""Analogy evaluation: nlpzk's batched scoring vs gensim's evaluate_word_analogies, same vectors, same run.

Vectors are synthetic (every word of questions-words.txt, pairs of a section one offset apart plus
noise, and random filler up to --vocab rows) so every question is in vocabulary; the two must return equal accuracy, and the ratio is the speed-up.

    .venv/bin/python bench/bench_models_analogy.py [--vocab 30000] [--dim 100] [--questions 4000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from nlpzk.eval import benchmarks as B


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=30000)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--questions", type=int, default=4000, help="questions taken evenly from every section")
    args = ap.parse_args()
    sections = B._read_analogies(datapath(B.ANALOGIES), case_insensitive=False)
    total = sum(len(q) for _, q in sections)
    keep = max(1, total // args.questions)
    fd, path = tempfile.mkstemp(suffix=".txt")
    n = 0
    with os.fdopen(fd, "w") as fh:
        for name, questions in sections:
            fh.write(f": {name}\n")
            for q in questions[::keep]:
                fh.write(" ".join(q) + "\n")
                n += 1
    # pairs of a section differ by the section's offset plus noise, so many (not all) answers are right
    rng = np.random.default_rng(0)
    vec: dict[str, np.ndarray] = {}
    for _, questions in sections:
        offset = rng.normal(size=args.dim)
        for a, b, c, d in questions[::keep]:
            for x, y in ((a, b), (c, d)):
                vec.setdefault(x, rng.normal(size=args.dim))
                vec.setdefault(y, vec[x] + offset + rng.normal(scale=0.8, size=args.dim))
    keys = list(vec) + [f"w{i}" for i in range(max(0, args.vocab - len(vec)))]
    filler = rng.normal(size=(len(keys) - len(vec), args.dim))
    kv = KeyedVectors(args.dim)
    kv.add_vectors(keys, np.vstack([np.array(list(vec.values())), filler]).astype(np.float32))
    print(f"{n} questions, {len(keys)} x {args.dim} vectors")
    t = time.perf_counter()
    g_score, _ = kv.evaluate_word_analogies(path)
    g_s = time.perf_counter() - t
    t = time.perf_counter()
    mine = B.analogies(kv, path)
    n_s = time.perf_counter() - t
    os.unlink(path)
    print(f"gensim evaluate_word_analogies: {g_s:.2f}s  accuracy {g_score:.6f}")
    print(f"nlpzk eval.benchmarks.analogies: {n_s:.2f}s  accuracy {mine['accuracy']:.6f}  equal: {mine['accuracy'] == g_score}")
    print(f"speed-up nlpzk vs gensim: {g_s / n_s:.1f}x")


if __name__ == "__main__":
    main()
