"""Vocab build from shards vs a plain ``collections.Counter`` over the same tokens from the same Parquet files.

Target: nlpzk >= 2x the Counter. Runs a throw-away standalone ZooKeeper and store in a temp dir.

    .venv/bin/python bench/bench_vocab_build.py [--tokens 5000000] [--shards 8] [--types 200000]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from nlpzk import testing  # noqa: E402
from nlpzk.corpus import Corpus, ShardWriter  # noqa: E402
from nlpzk.zk import paths, registry  # noqa: E402


@contextlib.contextmanager
def bench_cluster():
    """A standalone ZooKeeper + store in a temp dir, torn down afterwards."""
    with tempfile.TemporaryDirectory(prefix="nlpzk-bench-") as tmp:
        server = testing.start_standalone(os.path.join(tmp, "zk"))
        try:
            with testing.Cluster.connect(testing.config_for(server.address, os.path.join(tmp, "store"))) as cluster:
                yield cluster
        finally:
            server.stop()


def zipf_words(n_tokens: int, n_types: int, seed: int = 0) -> list[str]:
    """A Zipf-distributed token stream over ``n_types`` word-like types (natural-language-like frequencies)."""
    rng = np.random.default_rng(seed)
    types = np.array([f"w{i:x}" for i in range(n_types)], dtype=object)
    ranks = (rng.zipf(1.15, n_tokens) - 1) % n_types
    return types[ranks].tolist()


def make_corpus(cluster, name: str, n_tokens: int, n_shards: int, n_types: int, sentence_len: int = 20) -> list:
    Corpus.create(cluster, name, {"lang": "en"})
    words = zipf_words(n_tokens, n_types)
    per = -(-n_tokens // n_shards)
    for s in range(n_shards):
        chunk = words[s * per : (s + 1) * per]
        shard_id = f"s-{s:05d}"
        with ShardWriter(cluster.store, name, shard_id) as w:
            for i in range(0, len(chunk), sentence_len):
                w.add(f"{shard_id}-{i}", "bench.txt", chunk[i : i + sentence_len])
        registry.create_json(cluster.zk, paths.shard(name, shard_id), w.info.doc())
    return Corpus.open(name, cluster=cluster).shards


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=5_000_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--types", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()

    from nlpzk.vocab import build, count_shards

    with bench_cluster() as cluster:
        shards = make_corpus(cluster, "bench", args.tokens, args.shards, args.types)
        files = [cluster.store.local_path(s.path) for s in shards]

        def plain_counter():
            c = collections.Counter()
            for f in files:
                col = pq.read_table(f, columns=["tokens"]).column("tokens")
                c.update(itertools.chain.from_iterable(col.to_pylist()))
            return c

        t_counter, counter = best(plain_counter, args.repeat)
        t_count, counts = best(lambda: count_shards(cluster.store, [s.path for s in shards], sha256s=[s.sha256 for s in shards]), args.repeat)
        t_build, view = best(lambda: build(cluster, "bench", "bench"), args.repeat)
        t_build_p, view_p = best(lambda: build(cluster, "bench", "bench", processes=args.processes), args.repeat)

        # same answer as the anchor, exactly
        assert dict(zip(counts["token"].to_pylist(), counts["count"].to_pylist())) == dict(counter)
        assert view.doc["sha256"] == view_p.doc["sha256"]
        n = sum(counter.values())
        print(f"corpus: {n:,} tokens, {len(counter):,} types, {len(shards)} shards (Python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
        print(f"Counter over Parquet token lists        {t_counter * 1e3:8.1f} ms  ({n / t_counter / 1e6:6.1f} M tokens/s)")
        print(f"nlpzk count_shards (sha256-checked)      {t_count * 1e3:8.1f} ms  ({n / t_count / 1e6:6.1f} M tokens/s)  ratio {t_counter / t_count:5.1f}x")
        print(f"nlpzk vocab build (count+ids+write+zk)  {t_build * 1e3:8.1f} ms  ({n / t_build / 1e6:6.1f} M tokens/s)  ratio {t_counter / t_build:5.1f}x")
        print(f"nlpzk vocab build, {args.processes} processes           {t_build_p * 1e3:8.1f} ms  ({n / t_build_p / 1e6:6.1f} M tokens/s)  ratio {t_counter / t_build_p:5.1f}x")


if __name__ == "__main__":
    main()
