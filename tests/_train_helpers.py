"""Small real corpora for the training tests: gensim's lee_background.cor split into shards."""

from __future__ import annotations

import re

from gensim.test.utils import datapath

from nlpzk.corpus import Corpus, ShardWriter
from nlpzk.zk import paths, registry

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def lee_sentences() -> list[list[str]]:
    out = []
    with open(datapath("lee_background.cor"), encoding="utf8") as fh:
        for line in fh:
            toks = _WORD.findall(line.lower())
            if toks:
                out.append(toks)
    return out


def make_corpus(cluster, name: str, shards: int, sentences: list[list[str]] | None = None) -> Corpus:
    """Register ``sentences`` (default: lee_background) as ``shards`` round-robin shards."""
    sentences = sentences if sentences is not None else lee_sentences()
    corpus = Corpus.create(cluster, name, {"lang": "en", "lower": True})
    for i in range(shards):
        sid = f"s-{i:05d}"
        with ShardWriter(cluster.store, name, sid) as w:
            for j, sent in enumerate(sentences[i::shards]):
                w.add(f"d{i}-{j}", "lee_background.cor", sent)
        registry.create_json(cluster.zk, paths.shard(name, sid), w.info.doc())
    return corpus


def make_vocab(cluster, name: str, corpus: str, min_count: int = 2):
    from nlpzk.vocab import build

    return build(cluster, name, corpus, min_count=min_count)


def hold_a_unit(cluster, job: str, timeout: float = 60.0):
    """Lease a unit of the job's open round for the test itself, as a stalled worker would: the round
    (so the job) cannot finish until ``lease.release(cluster.zk, [held])``. For tests that must act
    before the job ends, however fast the workers are."""
    from nlpzk import train
    from nlpzk.zk import rounds

    from _helpers import wait_for

    barrier = rounds.RoundBarrier(cluster.zk, job, registry.children(cluster.zk, paths.job_fences(job)))
    return wait_for(lambda: barrier.lease_next(train.status(cluster, job)["round"], "test-hold")[0], timeout, what="a free unit to hold")
