"""Quality: nlpzk with 4 workers vs one gensim process, at equal epochs (every merge rule) and at 4x epochs.

Scores: WS353 and SimLex-999 Spearman, Google analogies accuracy (gensim's shipped files, the 30k most
frequent words). Ratios are nlpzk / gensim on the same corpus and settings in the same run.

    .venv/bin/python bench/bench_train_quality.py [--words 2000000] [--epochs 5] [--syncs 4,16] [--rules mean,...,nbmuf-adasum] [--no-4x] [--syncs-4x S] [--seeds 1,2]
"""

from __future__ import annotations

import argparse
import sys

from _train_common import gcide_sentences, gensim_baseline, run_job, scores, start_cluster, sync_share

KEYS = ("ws353", "simlex", "analogy")


def line(name: str, sc: dict, base: dict | None, extra: str = "") -> str:
    parts = [f"{k} {sc[k]:.3f}" + (f" ({sc[k] / base[k]:.2f}x)" if base and base[k] else "") for k in KEYS]
    return f"{name:<34} " + "  ".join(parts) + (f"  {extra}" if extra else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=2_000_000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--syncs", default="4,16", help="syncs per epoch, comma-separated; 4x epochs runs at the last")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--rules", default="mean,wmean,sum,adasum,bmuf,bmuf-wmean,nbmuf,nbmuf-wmean,nbmuf-adasum")
    ap.add_argument("--eta", type=float, default=None)
    ap.add_argument("--delta-dtypes", default="bfloat16", help="how the contributions store deltas, comma-separated for a run of each (bfloat16, float32)")
    ap.add_argument("--no-4x", dest="four_x", action="store_false")
    ap.add_argument("--syncs-4x", type=int, default=None, help="syncs per epoch of the 4x-epochs run (default: the first of --syncs)")
    ap.add_argument("--seeds", default="1,2", help="gensim anchor seeds; the anchor's scores are their mean (analogy accuracy moves by ~0.005 between seeds)")
    args = ap.parse_args()
    sents = gcide_sentences(args.words)
    words = sum(map(len, sents))
    print(f"corpus: GCIDE first {words:,} words ({len(sents):,} paragraphs); skip-gram dim 100 window 5 negative 5 min-count 5; {args.epochs} epochs", flush=True)
    runs = []
    for seed in (int(x) for x in args.seeds.split(",")):
        g_s, g_kv = gensim_baseline(sents, args.epochs, workers=2, seed=seed)
        runs.append(scores(g_kv))
        print(line(f"gensim workers=2 seed {seed}", runs[-1], None, f"{g_s:.0f}s"), flush=True)
    base = {k: sum(r[k] for r in runs) / len(runs) for k in KEYS}
    print(line("gensim (mean: the anchor)", base, None), flush=True)
    from nlpzk.train.merge import DEFAULT_RULE

    server, config, cluster = start_cluster(args.shards, sents)
    try:
        syncs = [int(x) for x in args.syncs.split(",")]
        for s in syncs:
            for rule in args.rules.split(","):
                for dt in args.delta_dtypes.split(","):
                    wall, st, kv = run_job(cluster, config, f"q-{rule}-{s}-{dt}", args.workers, 1, epochs=args.epochs, syncs_per_epoch=s, merge=rule, eta=args.eta, delta_dtype=dt)
                    print(line(f"nlpzk {args.workers}w {rule} S={s} {dt}", scores(kv), base, f"{wall:.0f}s, sync share {sync_share(st):.0%}"), flush=True)
        if args.four_x:
            e4 = args.epochs * 4
            s4 = args.syncs_4x or syncs[0]
            wall, st, kv = run_job(cluster, config, "q-4x", args.workers, 1, epochs=e4, syncs_per_epoch=s4, merge=DEFAULT_RULE, eta=args.eta)
            print(line(f"nlpzk {args.workers}w {DEFAULT_RULE} S={s4} {e4} epochs", scores(kv), base, f"{wall:.0f}s (gensim {g_s:.0f}s)"), flush=True)
    finally:
        cluster.close()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
