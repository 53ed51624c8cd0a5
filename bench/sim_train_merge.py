"""Merge-rule exploration: K workers simulated in one process (same gensim set-up, same global
learning-rate schedule, merge math written out with numpy), no ZooKeeper, so many rules and sync
rates can be compared quickly. The real system's figures come from bench_train_quality.py.

    .venv/bin/python bench/sim_train_merge.py WORDS K SYNCS RULE [ETA]
    RULE: mean | sum | wmean | sum0mean1 | wsum0wmean1 | bmuf | bmufw | bmufn (Nesterov) | bmufnw
"""
import sys, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent)); sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _train_common import gcide_sentences
from collections import Counter
from nlpzk.train._model import VocabData, build_model, set_params, get_params, train_slice, keyed_vectors, evaluate, initial_params
WORDS = int(sys.argv[1]); K = int(sys.argv[2]); S = int(sys.argv[3]); RULE = sys.argv[4]; ETA = float(sys.argv[5]) if len(sys.argv) > 5 else 1 - 1 / K
EPOCHS = 5
sents = gcide_sentences(WORDS)
c = Counter(w for s in sents for w in s)
toks = [w for w, n in c.most_common() if n >= 5]
vd = VocabData("g", 1, toks, np.array([c[t] for t in toks]))
idx = {t: i for i, t in enumerate(toks)}
spec = dict(dim=100, window=5, sample=1e-3, sg=1, negative=5, alpha=0.025, min_alpha=0.0001, seed=1)
parts = [sents[k::K] for k in range(K)]
total = sum(map(len, sents)) * EPOCHS
alpha = lambda w: max(1e-4, 0.025 - (0.025 - 1e-4) * w / total)
G = initial_params(spec, vd)
step = np.zeros_like(G)
models = [build_model(spec, vd, threads=2, seed=k + 5) for k in range(K)]
w = 0
t0 = time.time()
for r in range(EPOCHS * S):
    s = r % S
    deltas, counts, words = [], [], []
    for k in range(K):
        m = models[k]; set_params(m, G)
        p = parts[k]; sl = p[s * len(p) // S:(s + 1) * len(p) // S]
        n = sum(map(len, sl))
        # interleaved position in the round, as dynamic leasing gives
        a0 = alpha(w); a1 = alpha(w + n * K)
        train_slice(m, sl, n, a0, a1)
        deltas.append(get_params(m) - G)
        cnt = np.zeros(len(toks)); ids = [idx[x] for s_ in sl for x in s_ if x in idx]; np.add.at(cnt, ids, 1)
        counts.append(cnt); words.append(n)
    w += sum(words)
    D = np.stack(deltas)
    mean = D.mean(0)
    n = np.stack(counts); tot = n.sum(0); seen = tot > 0
    wm = np.einsum("kr,kmrd->mrd", n, D) / np.where(seen, tot, 1)[None, :, None]
    wm = np.where(seen[None, :, None], wm, mean)
    if RULE == "mean": g = mean
    elif RULE == "sum": g = D.sum(0)
    elif RULE == "wmean": g = wm
    elif RULE == "sum0mean1": g = np.stack([D[:, 0].sum(0), mean[1]])
    elif RULE == "wsum0wmean1":
        # syn0: sum; syn1neg: per-word mean
        g = np.stack([D[:, 0].sum(0), wm[1]])
    elif RULE == "bmuf": step = ETA * step + mean; g = step
    elif RULE == "bmufw": step = ETA * step + wm; g = step
    elif RULE == "bmufn":  # nesterov-style: apply step + eta*step lookahead
        step = ETA * step + mean; g = ETA * step + mean
    if RULE == "bmufnw": step = ETA * step + wm; g = ETA * step + wm
    G = (G + g).astype(np.float32)
kv = keyed_vectors(vd, G[0])
print(RULE, K, S, ETA, evaluate(kv), round(time.time() - t0), flush=True)
