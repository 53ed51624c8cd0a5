"""Batch ``VocabView.encode`` of 1M tokens vs ``[d.get(t, unk) for t in toks]`` over the same tokens.

Target: nlpzk >= 2x the dict comprehension. The vocabulary is built from a Zipf corpus (about 200k
types); the 1M tokens are read back from that corpus's shards (so some 5% are out of vocabulary
once min_count cuts the tail). Both sides start from a lookup dict that is already built.

    .venv/bin/python bench/bench_vocab_encode.py [--tokens 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vocab_build import bench_cluster, best, make_corpus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from nlpzk.vocab import Vocabulary, build

    with bench_cluster() as cluster:
        shards = make_corpus(cluster, "bench", 3_000_000, 4, 200_000)
        build(cluster, "bench", "bench", min_count=2, specials=["<unk>"])
        view = Vocabulary.open("bench", cluster=cluster)
        t0 = time.perf_counter()
        view.id("warm-up")  # builds the lookup dict once per loaded version
        t_index = time.perf_counter() - t0

        columns = [pq.read_table(cluster.store.local_path(s.path), columns=["tokens"])["tokens"] for s in shards]
        arrow_toks = pc.list_flatten(pa.chunked_array([c for col in columns for c in col.chunks])).slice(0, args.tokens).combine_chunks()
        toks = arrow_toks.to_pylist()  # fresh str objects, as a tokenizer would hand them over
        unk = view.unk_id
        d = dict(zip(view.tokens.to_pylist(), range(len(view))))

        t_dict, want = best(lambda: [d.get(t, unk) for t in toks], args.repeat)
        t_list, got_list = best(lambda: view.encode(toks), args.repeat)
        t_arrow, got_arrow = best(lambda: view.encode(arrow_toks), args.repeat)
        dict_toks = arrow_toks.dictionary_encode()
        t_dictenc, got_dictenc = best(lambda: view.encode(dict_toks), args.repeat)
        assert np.array_equal(got_list, want) and np.array_equal(got_arrow, want) and np.array_equal(got_dictenc, want)
        oov = sum(1 for x in want if x == unk)
        print(f"vocabulary: {len(view):,} ids; {len(toks):,} tokens to encode, {oov:,} unknown; lookup dict built once in {t_index * 1e3:.0f} ms")
        print(f"[d.get(t, unk) for t in toks]                  {t_dict * 1e3:7.1f} ms")
        print(f"view.encode(list of str)                       {t_list * 1e3:7.1f} ms  ratio {t_dict / t_list:4.2f}x")
        print(f"view.encode(Arrow string array)                {t_arrow * 1e3:7.1f} ms  ratio {t_dict / t_arrow:4.2f}x")
        print(f"view.encode(Arrow dictionary array)            {t_dictenc * 1e3:7.1f} ms  ratio {t_dict / t_dictenc:4.2f}x  (shards read with read_dictionary)")


if __name__ == "__main__":
    main()
