"""Throughput: nlpzk with 2 workers x 1 thread vs one gensim process with workers=2, same corpus and epochs.

Counts everything on the nlpzk side from starting the worker processes to the job's end (process
start-up, shard reads, every sync and merge, the final evaluation); gensim's time is its train() call.

    .venv/bin/python bench/bench_train_throughput.py [--words 4700000] [--epochs 5] [--syncs 4,16]
"""

from __future__ import annotations

import argparse
import sys

from _train_common import gcide_sentences, gensim_baseline, run_job, start_cluster, sync_share


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=None, help="use the first N words of the corpus (default: all)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--syncs", default="4", help="syncs per epoch, comma-separated for several runs")
    ap.add_argument("--shards", type=int, default=32)
    args = ap.parse_args()
    sents = gcide_sentences(args.words)
    words = sum(map(len, sents))
    print(f"corpus: GCIDE, {len(sents):,} paragraphs, {words:,} words; skip-gram dim 100 window 5 negative 5 min-count 5, {args.epochs} epochs", flush=True)
    server, config, cluster = start_cluster(args.shards, sents)
    try:
        for syncs in (int(x) for x in args.syncs.split(",")):
            # the anchor runs right before and right after nlpzk: on a shared virtual machine the
            # same gensim run varies by up to 30 % over minutes, so the ratio uses their mean
            g1 = anchor(sents, words, args.epochs)
            run = report(cluster, config, args.epochs, syncs)
            g2 = anchor(sents, words, args.epochs)
            summarize(cluster, run, (g1 + g2) / 2)
    finally:
        cluster.close()
        server.stop()


def anchor(sents, words: int, epochs: int) -> float:
    g_s, _ = gensim_baseline(sents, epochs, workers=2)
    rate = words * epochs / g_s
    print(f"gensim workers=2: {g_s:.1f}s  {rate:,.0f} words/s", flush=True)
    return rate


def report(cluster, config, epochs: int, syncs: int):
    wall, st, _ = run_job(cluster, config, f"tp-{syncs}", 2, 1, epochs=epochs, syncs_per_epoch=syncs, seed=1)
    print(f"nlpzk 2 workers x 1 thread, {syncs} syncs/epoch, merge {st['spec']['merge']}: {wall:.1f}s  {st['words'] / wall:,.0f} words/s", flush=True)
    return wall, st


def summarize(cluster, run, g_rate: float) -> None:
    wall, st = run
    n_rate = st["words"] / wall
    print(f"ratio nlpzk/gensim (mean of the two gensim runs, {g_rate:,.0f} words/s): {n_rate / g_rate:.3f}  (target >= 0.9)")
    rounds = [h for h in st["history"] if h.get("state") == "merged"]
    steady = rounds[1:-1]
    s_rate = sum(h["words"] for h in steady) / sum(h["wall_s"] for h in steady)
    print(f"steady state (rounds 1..{len(rounds) - 2}: no start-up, no final evaluation): {s_rate:,.0f} words/s, ratio {s_rate / g_rate:.3f}")
    print(f"sync+merge share of round time: all rounds {sync_share(st):.1%}, steady state {sync_share(st, steady=True):.1%}  (target <= 10%)")
    eval_s = sum(h.get("eval_s") or 0 for h in rounds)
    print(f"merge alone {sum(h['merge_s'] for h in rounds):.1f}s, final evaluation {eval_s:.1f}s, of {wall:.1f}s", flush=True)
    t_rate = st["words"] / (wall - eval_s)
    print(f"without the final evaluation (gensim's time has none): {t_rate:,.0f} words/s, ratio {t_rate / g_rate:.3f}")
    breakdown(cluster, st["job"], steady)


def breakdown(cluster, job: str, rounds) -> None:
    """Mean seconds per steady round: what each worker spent loading, training, saving; the rest is waiting + merging."""
    import json

    from nlpzk.store import naming

    acc = {"wall": 0.0, "load": 0.0, "train": 0.0, "save": 0.0, "merge": 0.0}
    for h in rounds:
        log = json.loads(cluster.store.read_bytes(naming.round_log(job, h["round"])))
        cs = log["contributions"]
        acc["wall"] += h["wall_s"]
        acc["merge"] += h["merge_s"]
        acc["load"] += sum(c.get("load_s", 0) for c in cs) / len(cs)
        acc["train"] += sum(c["seconds"] - c.get("load_s", 0) for c in cs) / len(cs)
        acc["save"] += sum(c.get("save_s", 0) for c in cs) / len(cs)
    n = max(1, len(rounds))
    parts = "  ".join(f"{k} {v / n:.3f}s" for k, v in acc.items())
    print(f"per steady round (mean over workers): {parts}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
