"""Single ``id()`` lookups per second, opening a 1M-token version, and how fast a tag move reaches a follower.

Targets: ``id()`` >= 1M lookups/s from Python; open of a 1M-token version < 1 s; a tag move visible
to a following ``VocabView`` within 1 s. The anchor for ``id()`` is a plain ``dict.get`` loop.

    .venv/bin/python bench/bench_vocab_lookup.py [--types 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vocab_build import bench_cluster, best  # noqa: E402

from nlpzk import testing  # noqa: E402
from nlpzk.corpus import Corpus, ShardWriter  # noqa: E402
from nlpzk.zk import paths, registry  # noqa: E402


def write_shard(cluster, corpus: str, shard_id: str, words: list[str], sentence_len: int = 50) -> None:
    with ShardWriter(cluster.store, corpus, shard_id) as w:
        for i in range(0, len(words), sentence_len):
            w.add(f"{shard_id}-{i}", "bench.txt", words[i : i + sentence_len])
    registry.create_json(cluster.zk, paths.shard(corpus, shard_id), w.info.doc())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", type=int, default=1_000_000, help="distinct tokens in the big version")
    ap.add_argument("--lookups", type=int, default=1_000_000)
    ap.add_argument("--moves", type=int, default=5)
    args = ap.parse_args()

    from nlpzk.vocab import Vocabulary, build, tag

    with bench_cluster() as cluster:
        Corpus.create(cluster, "big", {"lang": "en"})
        # every type at least once, plus a Zipf body so counts (and ids) look like text
        write_shard(cluster, "big", "s-00000", [f"t{i:07d}" for i in range(args.types)])
        write_shard(cluster, "big", "s-00001", [f"t{int(x):07d}" for x in np.random.default_rng(1).zipf(1.2, 2_000_000) % args.types])
        t0 = time.perf_counter()
        v1 = build(cluster, "big", "big", specials=["<unk>"], tags=["latest", "stable"])
        t_build = time.perf_counter() - t0
        write_shard(cluster, "big", "s-00002", ["brand", "new", "tokens"] * 10)
        v2 = build(cluster, "big", "big", parent=1)
        print(f"version: {len(v1):,} tokens, {v1.doc['size'] / 1e6:.1f} MB Parquet (built in {t_build:.2f} s); v2 has {len(v2):,}")

        # -- open -------------------------------------------------------------------------
        t_open, view = best(lambda: Vocabulary.open("big", version=1, cluster=cluster), 5)
        t_open_nv, _ = best(lambda: Vocabulary.open("big", version=1, cluster=cluster, verify=False), 5)
        print(f"open 1M-token version (sha256 checked)     {t_open * 1e3:7.1f} ms   target < 1000 ms")
        print(f"open 1M-token version (no checksum)        {t_open_nv * 1e3:7.1f} ms")

        # -- single id() --------------------------------------------------------------------
        sample = [f"t{int(x):07d}" for x in np.random.default_rng(2).zipf(1.2, args.lookups) % args.types]
        t0 = time.perf_counter()
        view.id("warm-up")
        t_index = time.perf_counter() - t0
        d = dict(zip(view.tokens.to_pylist(), range(len(view))))

        def plain():
            get = d.get
            for t in sample:
                get(t)

        def ours():
            vid = view.id
            for t in sample:
                vid(t)

        def ours_getitem():
            for t in sample:
                view[t]

        t_plain, _ = best(plain, 3)
        t_id, _ = best(ours, 3)
        t_gi, _ = best(ours_getitem, 3)
        n = len(sample)
        print(f"lookup dict built on first id() in {t_index * 1e3:.0f} ms (once per loaded version)")
        print(f"dict.get loop                              {n / t_plain / 1e6:7.2f} M lookups/s")
        print(f"view.id(token)                             {n / t_id / 1e6:7.2f} M lookups/s   target >= 1.00 (ratio to dict.get {t_plain / t_id:.2f})")
        print(f"view[token]                                {n / t_gi / 1e6:7.2f} M lookups/s")

        # -- following a tag --------------------------------------------------------------------
        with testing.Cluster.connect(cluster.config) as reader:
            follower = Vocabulary.open("big", tag="stable", cluster=reader)
            switched = threading.Event()
            follower.follow("stable", on_change=lambda v: switched.set())
            latencies = []
            for k in range(args.moves):
                target = 2 if follower.version == 1 else 1
                switched.clear()
                t0 = time.perf_counter()
                tag(cluster, "big", target, "stable")
                if not switched.wait(30):
                    raise SystemExit("the follower never switched")
                latencies.append(time.perf_counter() - t0)
                assert follower.version == target
            follower.unfollow()
        print(
            f"tag move -> follower serving the new 1M-token version: median {np.median(latencies) * 1e3:.0f} ms, "
            f"max {max(latencies) * 1e3:.0f} ms over {len(latencies)} moves   target < 1000 ms"
        )


if __name__ == "__main__":
    main()
