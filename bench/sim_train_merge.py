"""Merge-rule exploration: K workers simulated in one process (same gensim set-up, same global
learning-rate schedule, merge arithmetic written out with numpy), no ZooKeeper, so many rules and
sync rates can be compared quickly. The real system's figures come from bench_train_quality.py.

    .venv/bin/python bench/sim_train_merge.py WORDS K [gensim] CONFIG [CONFIG ...]

CONFIG = MOMENTUM+COMBINE:ETA:S:PART[:SLICE[:SEED]] (or COMBINE:0:S:PART without momentum)
  MOMENTUM  bmuf | nbmuf (Nesterov) | dnbmuf (eta decays with the learning rate) | fnbmuf (no
            look-ahead in the last round) | cnbmuf / inbmuf (per-row eta growing / shrinking with
            how many workers saw the word) | snbmuf (half the eta on syn1neg) | c2nbmuf
  COMBINE   mean | sum | wmean | adasum | adajoint (Adasum over a word's syn0 and syn1neg rows
            together) | ada0mean1 | ada0sum1
  S         syncs per epoch, or FIRST/REST (e.g. 16/4: 16 in the first epoch, 4 after)
  PART      iid (sentence k::K) | contig (16 contiguous shards, fixed per worker) | rand (16
            contiguous shards dealt out at random each round, as the real workers lease them)
  SLICE     contig (a round's slice of a shard is a contiguous run) | stride (every S-th sentence)
"""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent)); sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np
from collections import Counter
from _train_common import gcide_sentences
from nlpzk.train._model import VocabData, build_model, set_params, get_params, train_slice, keyed_vectors, evaluate, initial_params

WORDS = int(sys.argv[1]); K = int(sys.argv[2]); CONFIGS = sys.argv[3:]
EPOCHS = 5; NSH = 16
sents = gcide_sentences(WORDS)
c = Counter(w for s in sents for w in s)
toks = [w for w, n in c.most_common() if n >= 5]
vd = VocabData("g", 1, toks, np.array([c[t] for t in toks]))
idx = {t: i for i, t in enumerate(toks)}
spec = dict(dim=100, window=5, sample=1e-3, sg=1, negative=5, alpha=0.025, min_alpha=0.0001, seed=1)
total = sum(map(len, sents)) * EPOCHS
alpha = lambda w: max(1e-4, 0.025 - (0.025 - 1e-4) * w / total)
ids_of = [np.array([idx[x] for x in s if x in idx], dtype=np.int64) for s in sents]
V = len(toks)

def adasum(a, b):
    # per row: (1 - a.b/2|a|^2) a + (1 - a.b/2|b|^2) b
    dot = np.einsum("...d,...d->...", a, b)[..., None]
    na = np.einsum("...d,...d->...", a, a)[..., None]
    nb = np.einsum("...d,...d->...", b, b)[..., None]
    ca = 1 - np.where(na > 0, dot / (2 * np.where(na > 0, na, 1)), 0)
    cb = 1 - np.where(nb > 0, dot / (2 * np.where(nb > 0, nb, 1)), 0)
    return ca * a + cb * b

def adasum_k(D):
    xs = list(D)
    while len(xs) > 1:
        xs = [adasum(xs[i], xs[i + 1]) if i + 1 < len(xs) else xs[i] for i in range(0, len(xs), 2)]
    return xs[0]

def run(cfg):
    parts = cfg.split(":")
    rule, eta, part = parts[0], float(parts[1]), parts[3]
    S0, S = (int(x) for x in (parts[2].split("/") * 2)[:2]) if "/" in parts[2] else (int(parts[2]), int(parts[2]))
    slicing = parts[4] if len(parts) > 4 else "contig"
    sd = int(parts[5]) if len(parts) > 5 else 0
    rng = np.random.default_rng(7 + sd)
    n = len(sents)
    shards = [list(range(i * n // NSH, (i + 1) * n // NSH)) for i in range(NSH)]
    G = initial_params(spec, vd); step = np.zeros_like(G)
    models = [build_model(spec, vd, threads=2, seed=k + 5 + 10 * sd) for k in range(K)]
    w = 0; t0 = time.time()
    plan = [(0, S0, j) for j in range(S0)] + [(e, S, j) for e in range(1, EPOCHS) for j in range(S)]
    for r, (ep, S_, s) in enumerate(plan):
        if part == "iid":
            assign = [[i for i in range(k, n, K)] for k in range(K)]
            sl_of = [a[s * len(a) // S_:(s + 1) * len(a) // S_] for a in assign]
        else:
            order = rng.permutation(NSH) if part == "rand" else np.arange(NSH)
            sl_of = [[] for _ in range(K)]
            for j, sh in enumerate(order):
                k = j * K // NSH
                ss = shards[sh]
                sl_of[k].extend(ss[s::S_] if slicing == "stride" else ss[s * len(ss) // S_:(s + 1) * len(ss) // S_])
        deltas, counts, words = [], [], []
        for k in range(K):
            m = models[k]; set_params(m, G)
            sl = [sents[i] for i in sl_of[k]]
            nw = sum(map(len, sl))
            train_slice(m, sl, nw, alpha(w), alpha(w + nw * K))
            deltas.append(get_params(m) - G)
            counts.append(np.bincount(np.concatenate([ids_of[i] for i in sl_of[k]]), minlength=V).astype(np.float32))
            words.append(nw)
        w += sum(words)
        D = np.stack(deltas)
        comb = rule.split("+")[-1]
        if comb == "mean": g = D.mean(0)
        elif comb == "sum": g = D.sum(0)
        elif comb == "adasum": g = adasum_k(D)
        elif comb == "wmean":
            nn = np.stack(counts); tot = nn.sum(0); seen = tot > 0
            wm = np.einsum("kr,kmrd->mrd", nn, D) / np.where(seen, tot, 1)[None, :, None]
            g = np.where(seen[None, :, None], wm, D.mean(0))
        elif comb == "adajoint":
            J = np.concatenate([D[:, 0], D[:, 1]], axis=-1)  # (K, V, 2D): one vector per word
            a = adasum_k(J); g = np.stack([a[:, :D.shape[-1]], a[:, D.shape[-1]:]])
        elif comb == "ada0mean1": g = np.stack([adasum_k(D[:, 0]), D[:, 1].mean(0)])
        elif comb == "ada0sum1": g = np.stack([adasum_k(D[:, 0]), D[:, 1].sum(0)])
        else: raise SystemExit(comb)
        mom = rule.split("+")[0] if "+" in rule else "none"
        e = eta * (alpha(w) / 0.025 if mom.startswith("d") else 1.0)
        last = r == len(plan) - 1
        if mom == "bmuf": step = e * step + g; g = step
        elif mom in ("nbmuf", "dnbmuf"): step = e * step + g; g = e * step + g
        elif mom == "fnbmuf": step = e * step + g; g = (step if last else e * step + g)
        elif mom == "cnbmuf":
            seen = (np.stack(counts) > 0).sum(0)  # contributions that saw each word
            er = (e * np.clip(seen - 1, 0, None) / max(1, K - 1)).astype(np.float32)[None, :, None]
            step = er * step + g; g = er * step + g
        elif mom == "inbmuf":
            seen = (np.stack(counts) > 0).sum(0)
            er = (e * (1 - np.clip(seen - 1, 0, None) / max(1, K - 1))).astype(np.float32)[None, :, None]
            step = er * step + g; g = er * step + g
        elif mom == "snbmuf":  # syn1neg with half the momentum
            er = np.array([e, e / 2], np.float32)[:, None, None]
            step = er * step + g; g = er * step + g
        elif mom == "c2nbmuf":  # syn0 rows by count; syn1neg rows with the global eta
            seen = (np.stack(counts) > 0).sum(0)
            er0 = (e * np.clip(seen - 1, 0, None) / max(1, K - 1)).astype(np.float32)[:, None]
            er = np.stack([np.broadcast_to(er0, G[0].shape), np.full(G[0].shape, e, np.float32)])
            step = er * step + g; g = er * step + g
        G = (G + g).astype(np.float32)
    sc = evaluate(keyed_vectors(vd, G[0]))
    print(f"{cfg:28s} ws {sc['ws353']:.3f} sl {sc['simlex']:.3f} an {sc['analogy']:.3f}  {time.time()-t0:.0f}s", flush=True)

if CONFIGS and CONFIGS[0] == "gensim":
    from gensim.models import Word2Vec
    m = Word2Vec(vector_size=100, window=5, negative=5, sg=1, min_count=5, sample=1e-3, workers=2, seed=1)
    m.build_vocab(sents); m.train(sents, total_examples=m.corpus_count, epochs=EPOCHS)
    sc = evaluate(m.wv); print(f"{'gensim':28s} ws {sc['ws353']:.3f} sl {sc['simlex']:.3f} an {sc['analogy']:.3f}", flush=True)
    CONFIGS = CONFIGS[1:]
for cfg in CONFIGS:
    run(cfg)
