"""A/B helper for the sync share: one 2 x 1 job (GCIDE, 4 syncs/epoch, 3 epochs by default) and its
steady rounds' sync (wall minus the slowest worker's training, loading its parameters counted as
sync), in about 30 s. Run it alternately against a worktree of the code before a change:

    git worktree add /tmp/prev <rev> && ln -s "$PWD/.venv" /tmp/prev/.venv
    for d in "$PWD" /tmp/prev; do (cd $d && PYTHONPATH=$d .venv/bin/python bench/ab_train_sync.py); done

(``PYTHONPATH``: the worker processes import nlpzk from it, not from the virtualenv's editable
install.) ``EPOCHS=5`` for longer runs. Not a benchmark with a target: bench_train_throughput.py is.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _train_common import gcide_sentences, run_job, start_cluster  # noqa: E402

from nlpzk.store import naming  # noqa: E402


def main() -> None:
    sents = gcide_sentences()
    server, config, cluster = start_cluster(32, sents)
    try:
        _wall, st, _ = run_job(cluster, config, "ab", 2, 1, epochs=int(os.environ.get("EPOCHS", "3")), syncs_per_epoch=4, seed=1)
        rounds = [h for h in st["history"] if h.get("state") == "merged"][1:-1]
        syncs, trains = [], []
        for h in rounds:
            log = json.loads(cluster.store.read_bytes(naming.round_log("ab", h["round"])))
            per: dict[str, tuple[float, float]] = {}
            for c in log["contributions"]:
                s, load = per.get(c["worker"], (0.0, 0.0))
                per[c["worker"]] = (s + c["seconds"], load + c.get("load_s", 0))
            train = max(s - load for s, load in per.values())
            trains.append(train)
            syncs.append(h["wall_s"] - train)
        s = sorted(syncs)
        print(f"steady share {sum(syncs) / sum(h['wall_s'] for h in rounds):.1%}  sync ms median {1000 * s[len(s) // 2]:.0f} mean {1000 * sum(s) / len(s):.0f}  "
              f"train s median {sorted(trains)[len(trains) // 2]:.3f}  (nlpzk from {os.path.dirname(__import__('nlpzk').__file__)})")
    finally:
        cluster.close()
        server.stop()


if __name__ == "__main__":
    main()
