"""Shared helpers for the model/eval/status tests: a real corpus, a real vocabulary version, real vectors.

No test lives here; pytest collects nothing from this module.
"""

from __future__ import annotations

import functools

import numpy as np
from gensim.models import KeyedVectors, Word2Vec
from gensim.test.utils import datapath

from nlpzk.corpus import Corpus, ShardWriter
from nlpzk.zk import paths, registry


@functools.lru_cache(maxsize=None)
def lee_sentences() -> tuple[tuple[str, ...], ...]:
    with open(datapath("lee_background.cor"), encoding="utf8") as fh:
        return tuple(tuple(line.lower().split()) for line in fh if line.strip())


@functools.lru_cache(maxsize=None)
def lee_word2vec() -> KeyedVectors:
    """Small real vectors: gensim Word2Vec on Lee's news corpus (well under a second on one core)."""
    model = Word2Vec([list(s) for s in lee_sentences()], vector_size=24, min_count=2, epochs=5, workers=1, seed=1)
    return model.wv


def ingest_sentences(cluster, corpus: str, sentences, shards: int = 2) -> Corpus:
    """Write ``sentences`` as registered shards of ``corpus`` (the shard format of nlpzk.corpus)."""
    c = Corpus.create(cluster, corpus, {"lang": "en", "lower": True})
    for s in range(shards):
        with ShardWriter(cluster.store, corpus, f"s{s:03d}") as w:
            for i, sent in enumerate(sentences[s::shards]):
                w.add(f"d{s}-{i}", "lee_background.cor", list(sent))
        registry.create_json(cluster.zk, paths.shard(corpus, w.info.id), w.info.doc())
    return c


def vocab_and_vectors(cluster, name: str = "lee"):
    """A real vocabulary version built from a real corpus, and vectors whose row i is that version's id i."""
    from nlpzk.vocab import build

    ingest_sentences(cluster, name, lee_sentences())
    view = build(cluster, name, name, min_count=2)
    trained = lee_word2vec()
    tokens = view.tokens.to_pylist()
    rng = np.random.default_rng(0)
    vectors = np.stack([trained[t] if t in trained.key_to_index else rng.normal(size=trained.vector_size).astype(np.float32) for t in tokens])
    kv = KeyedVectors(trained.vector_size, count=0)
    kv.add_vectors(tokens, vectors)
    kv.expandos["count"] = np.asarray(view.counts, dtype=np.int64)
    return view, kv


def run_tiny_job(cluster, config, job: str = "j1", shards: int = 4):
    """A real two-worker training job (1 epoch, 2 rounds, dim 16) on Lee's corpus; returns the vocab view."""
    from nlpzk import train
    from nlpzk.vocab import build

    ingest_sentences(cluster, "lee", lee_sentences(), shards=shards)
    view = build(cluster, "lee", "lee", min_count=2)
    train.create_job(cluster, job, "lee", f"lee@v{view.version}", epochs=1, syncs_per_epoch=2, dim=16)
    run_workers(config, job)
    return view


def run_workers(config, job: str, n: int = 2) -> None:
    """Run ``n`` in-process workers (threads, a ZooKeeper session each) on ``job`` until they stop."""
    import threading

    from nlpzk import testing, train

    clusters = [testing.Cluster.connect(config) for _ in range(n)]
    try:
        threads = [threading.Thread(target=lambda c=c: train.Worker(c, job, poll=0.5).run()) for c in clusters]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for c in clusters:
            c.close()
