"""Where a steady training round's time goes: a 2-worker job on the GCIDE corpus with the workers'
coordination, file and training calls timed, and one round's timeline printed per worker.

A diagnostic, not a benchmark with a target: the calls are timed by wrapping them in the worker
processes (``Worker`` methods, ``RoundBarrier``'s ZooKeeper calls, ``merge``, ``save_array``, the
kernel), so the figures include the wrapping's few microseconds.

    .venv/bin/python bench/trace_train_round.py [--rounds 4,5] [--kernel batched] [--summary]
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time

from _train_common import gcide_sentences, start_cluster


def _wrap(owner, name: str, log: list, label: str | None = None) -> None:
    f = getattr(owner, name)

    @functools.wraps(f)
    def timed(*a, **k):
        t0 = time.time()
        try:
            return f(*a, **k)
        finally:
            log.append((label or name, t0, time.time()))

    setattr(owner, name, timed)


def _worker(config, job: str, out: str) -> None:
    from nlpzk import testing
    from nlpzk.train import _model, merge, worker
    from nlpzk.zk import rounds

    log: list = []
    for n in ("_work_round", "_commit", "_merge_step", "_publish", "_global", "_round_contributions", "_open_round_doc"):
        _wrap(worker.Worker, n, log)
    for n in ("job_doc", "state", "wait", "merge_state", "lease_merge_part", "commit_merge_part", "try_merge", "publish", "commit", "lease_next", "lease_many", "revoke_stale"):
        _wrap(rounds.RoundBarrier, n, log, "zk." + n)
    _wrap(merge, "merge", log, "merge")
    _wrap(merge, "save_array", log, "save_array")
    _wrap(_model, "train_ids", log, "train (batched kernel)")
    _wrap(_model, "train_slice", log, "train (gensim kernel)")
    _wrap(_model, "delta_to", log, "delta")
    _wrap(_model, "set_params", log, "set_params")
    cluster = testing.Cluster.connect(config)
    worker.Worker(cluster, job).run()
    with open(out, "w") as fh:
        json.dump(log, fh)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", default="4,5", help="the rounds to print (of 8: 2 epochs x 4 syncs)")
    ap.add_argument("--kernel", default="batched")
    ap.add_argument("--summary", action="store_true", help="instead of timelines: the critical path of every steady round, and its mean")
    args = ap.parse_args()
    from nlpzk import train

    sents = gcide_sentences()
    server, config, cluster = start_cluster(32, sents)
    outs = [os.path.join(tempfile.mkdtemp(prefix="nlpzk-trace-"), f"w{i}.json") for i in range(2)]
    try:
        train.create_job(cluster, "trace", "gcide", "gcide@v1", epochs=2, syncs_per_epoch=4, seed=1, kernel=args.kernel)
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(config, "trace", out)) for out in outs]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        history = {h["round"]: h for h in train.status(cluster, "trace")["history"] if h.get("state") == "merged"}
    finally:
        cluster.close()
        server.stop()
    logs = [json.load(open(out)) for out in outs]
    if args.summary:
        return summary(history, logs)
    for r in (int(x) for x in args.rounds.split(",")):
        t0, t1 = history[r]["opened"], history[r]["merged_at"]
        print(f"round {r}: wall {1000 * (t1 - t0):.0f} ms, merge_s {history[r]['merge_s']} s (times in ms from the round's opening)")
        events = sorted((a - t0, b - t0, i, name) for i, log in enumerate(logs) for name, a, b in log if b >= t0 and a <= t1 + 0.01)
        for a, b, i, name in events:
            print(f"  worker {i}  {1000 * a:8.1f} -> {1000 * b:8.1f}  ({1000 * (b - a):6.1f})  {name}")


def summary(history: dict, logs: list) -> None:
    """Per steady round, in ms: the round's critical path as the sync share counts it (round wall
    time minus the slowest worker's span from its first lease to the end of its training, less
    its loading of the round's parameters), cut
    where the slowest worker's calls end; "merge" runs from the first worker's merge start to the
    last one's end, "(each)" is one worker's merge call."""
    cols = ("to lease", "load", "delta", "save", "commit", "to merge", "merge", "(each)", "to publish", "publish", "sync", "wall")
    rows = []
    for r in sorted(history)[1:-1]:
        t0, t1 = history[r]["opened"], history[r]["merged_at"]
        ev = [[(n, a - t0, b - t0) for n, a, b in log if a >= t0 - 0.001 and b <= t1 + 0.05] for log in logs]
        trains = [[e for e in w if e[0].startswith("train")] for w in ev]
        slow = max(range(len(ev)), key=lambda i: trains[i][-1][2] if trains[i] else -1)
        w = ev[slow]

        def first(name, after=-1e9):
            return next(e for e in w if e[0] == name and e[1] >= after)

        end_train = trains[slow][-1][2]
        delta, save, commit = first("delta", end_train), first("save_array", end_train), first("zk.commit", end_train)
        merges = [e for x in ev for e in x if e[0] == "merge"]
        publish = max((e for x in ev for e in x if e[0] == "_publish"), key=lambda e: e[2])
        m0 = min(e[1] for e in merges)
        m1 = max(e[2] for e in merges)
        wall = 1000 * (t1 - t0)
        start = first("zk.lease_next")[2]  # a commit's seconds count from its first lease on
        each = sum(e[2] - e[1] for e in merges) / len(merges)
        # loading the round's parameters (after the first lease) is sync too, not training
        load = sum(e[2] - e[1] for e in w if e[0] in ("_global", "set_params") and start <= e[1] < end_train)
        rows.append([1000 * x for x in (start, load, delta[2] - delta[1], save[2] - save[1], commit[2] - save[2], m0 - commit[2], m1 - m0, each, publish[1] - m1, publish[2] - publish[1])]
                    + [wall - 1000 * (end_train - start - load), wall])
    print("round  " + "  ".join(f"{c:>10}" for c in cols))
    for r, row in zip(sorted(history)[1:-1], rows):
        print(f"{r:5d}  " + "  ".join(f"{x:10.1f}" for x in row))
    mean = [sum(c) / len(rows) for c in zip(*rows)]
    print(" mean  " + "  ".join(f"{x:10.1f}" for x in mean) + f"   sync share {mean[-2] / mean[-1]:.1%}")


if __name__ == "__main__":
    sys.exit(main())
