"""Shared plumbing of the training benchmarks: the corpus, a throw-away ZooKeeper + store, the runs.

Corpus: GCIDE, the GNU Collaborative International Dictionary of English (Webster's 1913 plus
additions), GPL-3+, from Debian's ``dict-gcide`` package (``apt-get install dict-gcide``). It is read
from /usr/share/dictd/gcide.dict.dz, never committed here. About 6M words of English prose
(definitions and quotations); lower-cased ``[a-z]+`` words, one paragraph per sentence.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GCIDE = "/usr/share/dictd/gcide.dict.dz"
_NOISE = re.compile(r"\[1913 Webster\]|\[Obs\.\]|\\[^\\\n]*\\|\[[A-Z][^\]]{0,40}\]")
_WORD = re.compile(r"[a-z]+")


def gcide_sentences(max_words: int | None = None) -> list[list[str]]:
    if not os.path.exists(GCIDE):
        raise SystemExit("this benchmark needs Debian's dict-gcide: apt-get install dict-gcide")
    text = gzip.open(GCIDE, "rt", encoding="utf8", errors="replace").read()
    out, words = [], 0
    for para in re.split(r"\n\s*\n", text):
        toks = _WORD.findall(_NOISE.sub(" ", para).lower())
        if len(toks) >= 3:
            out.append(toks[:10000])
            words += len(toks)
            if max_words and words >= max_words:
                break
    return out


def start_cluster(shards: int, sentences: list[list[str]], min_count: int = 5):
    """A standalone ZooKeeper, a temp store, the corpus as ``shards`` shards and a vocabulary v1."""
    from nlpzk import testing
    from nlpzk.corpus import Corpus, ShardWriter
    from nlpzk.vocab import build
    from nlpzk.zk import paths, registry

    base = tempfile.mkdtemp(prefix="nlpzk-bench-")
    server = testing.start_standalone(os.path.join(base, "zk"))
    config = testing.config_for(server.address, os.path.join(base, "store"), session_timeout=10.0)
    cluster = testing.Cluster.connect(config)
    Corpus.create(cluster, "gcide", {"lang": "en"})
    per = (len(sentences) + shards - 1) // shards
    for i in range(shards):
        with ShardWriter(cluster.store, "gcide", f"s-{i:05d}") as w:
            for j, s in enumerate(sentences[i * per : (i + 1) * per]):
                w.add(f"{i}-{j}", "gcide", s)
        registry.create_json(cluster.zk, paths.shard("gcide", f"s-{i:05d}"), w.info.doc())
    build(cluster, "gcide", "gcide", min_count=min_count)
    return server, config, cluster


def run_job(cluster, config, job: str, workers: int, threads: int = 1, **hyper):
    """Create a job, run ``workers`` local worker processes to the end; return (wall seconds, status, kv)."""
    from nlpzk import train

    train.create_job(cluster, job, "gcide", "gcide@v1", **hyper)
    t0 = time.perf_counter()
    procs = train.start_local_workers(config, job, workers, threads, log_dir=os.path.join(tempfile.gettempdir(), f"nlpzk-bench-{job}"))
    for p in procs:
        p.wait()
    wall = time.perf_counter() - t0
    st = train.status(cluster, job)
    if st["state"] != "done":
        raise SystemExit(f"job {job} did not finish: worker exit codes {[p.returncode for p in procs]}")
    kv, _ = train.final_vectors(cluster, job)
    return wall, st, kv


def sync_share(st, steady: bool = False) -> float:
    """Share of round wall time not spent training (sync, barrier wait for the slowest, merge, and
    loading the round's parameters into the model: the slowest worker's ``train_s - load_s``
    trains; rounds merged before ``load_s`` was recorded count the load as training).

    The final evaluation is not counted. ``steady`` leaves out round 0 (worker start-up: imports,
    vocabulary and shard loading) and the last round.
    """
    rounds = [h for h in st["history"] if h.get("state") == "merged"]
    if steady and len(rounds) > 2:
        rounds = rounds[1:-1]
    wall = sum(h["wall_s"] - (h.get("eval_s") or 0) for h in rounds)
    train_s = sum(h["train_s"] - (h.get("load_s") or 0) for h in rounds)
    return max(0.0, (wall - train_s) / wall) if wall else 0.0


def gensim_baseline(sentences, epochs: int, workers: int = 2, min_count: int = 5, seed: int = 1):
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=100, window=5, negative=5, sg=1, min_count=min_count, sample=1e-3, workers=workers, seed=seed)
    model.build_vocab(sentences)
    t0 = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=epochs)
    return time.perf_counter() - t0, model.wv


def scores(kv) -> dict:
    from nlpzk.train._model import evaluate

    return evaluate(kv)
