"""Public benchmarks for word vectors, scored the way gensim scores them (and tested to give equal numbers).

* word similarity: Spearman and Pearson correlation on WordSim-353 and SimLex-999
  (gensim ``KeyedVectors.evaluate_word_pairs`` semantics: case-insensitive, first ``restrict_vocab``
  words, pairs with an unknown word skipped and counted as OOV);
* analogies: 3CosAdd accuracy on Google's ``questions-words.txt``, per section and overall, with OOV
  rates (gensim ``evaluate_word_analogies`` semantics). Questions are scored in batches (one matrix
  product and one partial sort per batch instead of one ``most_similar`` call per question); where
  the batched scores leave two top candidates within float rounding of each other, the question is
  re-scored with gensim's own call, so the counts are equal to gensim's, not merely close;
* downstream sentiment: logistic regression on averaged word vectors of Pang & Lee's polarity
  sentences, stratified k-fold cross-validated accuracy against the majority-class baseline.

All data files ship with gensim (``gensim.test.utils.datapath``); nothing is downloaded.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

RESTRICT_VOCAB = 300000
PAIR_SETS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
ANALOGIES = "questions-words.txt"
SENTIMENT = "pang_lee_polarity.cor"
BENCHMARKS = ("wordsim353", "simlex999", "analogy", "sentiment")

# Batched scores differ from gensim's matrix-vector product in the last bits; a gap this small
# between ranked candidates could flip gensim's order, so such questions are re-scored exactly.
_TIE_GAP = 1e-5


def datapath(name: str) -> str:
    from gensim.test.utils import datapath as _dp

    return _dp(name)


def _ok_vocab(kv, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    # the first occurrence wins on a case collision, as in gensim (the most frequent if sorted)
    keys = kv.index_to_key[:restrict_vocab]
    if case_insensitive:
        return {k.upper(): kv.get_index(k) for k in reversed(keys)}
    return {k: kv.get_index(k) for k in reversed(keys)}


def word_pairs(kv, path: str, *, restrict_vocab: int = RESTRICT_VOCAB, case_insensitive: bool = True, delimiter: str = "\t") -> dict[str, Any]:
    """Correlation of cosine similarity with human judgements. ``oov_ratio`` is in percent, like gensim's."""
    from scipy import stats

    ok_vocab = _ok_vocab(kv, restrict_vocab, case_insensitive)
    gold: list[float] = []
    model: list[float] = []
    oov = 0
    with open(path, encoding="utf8") as fin:
        for line in fin:
            if not line or line.startswith("#"):
                continue
            try:
                a, b, sim = [w.upper() if case_insensitive else w for w in line.split(delimiter)]
                sim = float(sim)
            except (ValueError, TypeError):
                continue
            if a not in ok_vocab or b not in ok_vocab:
                oov += 1
                continue
            gold.append(sim)
            model.append(kv.similarity(ok_vocab[a], ok_vocab[b]))
    if len(gold) < 2:
        return {"spearman": None, "pearson": None, "pairs": len(gold), "oov": oov, "oov_ratio": 100.0 * oov / max(1, len(gold) + oov)}
    return {
        "spearman": float(stats.spearmanr(gold, model)[0]),
        "pearson": float(stats.pearsonr(gold, model)[0]),
        "pairs": len(gold),
        "oov": oov,
        "oov_ratio": 100.0 * oov / (len(gold) + oov),
    }


def _read_analogies(path: str, case_insensitive: bool) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    sections: list[tuple[str, list]] = []
    with open(path, "rb") as fin:
        for line_no, raw in enumerate(fin):
            line = raw.decode("utf8")
            if line.startswith(": "):
                sections.append((line.lstrip(": ").strip(), []))
                continue
            if not sections:
                raise ValueError(f"missing section header before line {line_no} of {path}")
            words = [w.upper() if case_insensitive else w for w in line.split()]
            if len(words) == 4:
                sections[-1][1].append(tuple(words))
    return sections


def analogies(kv, path: str, *, restrict_vocab: int = RESTRICT_VOCAB, case_insensitive: bool = True, batch_bytes: int = 64 << 20) -> dict[str, Any]:
    """3CosAdd analogy accuracy, per section and overall; ``oov_ratio`` in percent of all questions."""
    ok_vocab = _ok_vocab(kv, restrict_vocab, case_insensitive)
    sections = _read_analogies(path, case_insensitive)
    kv.fill_norms()
    clip = min(restrict_vocab, len(kv.index_to_key))
    vectors = kv.vectors[:clip]
    norms = kv.norms[:clip]
    # unit rows once (as gensim's most_similar does), so a batch's cosines are one matrix product
    unit_rows = vectors / norms[:, None]
    keys = kv.index_to_key

    rows: list[dict[str, Any]] = []
    for name, questions in sections:
        known = [q for q in questions if all(w in ok_vocab for w in q)]
        correct = 0
        # (questions x vocabulary) float32 scores plus argpartition's copies stay within batch_bytes
        step = max(1, batch_bytes // (16 * max(1, clip)))
        for start in range(0, len(known), step):
            batch = known[start : start + step]
            idx = np.array([[ok_vocab[w] for w in q] for q in batch], dtype=np.int64)
            unit = unit_rows[idx[:, :3]]
            means = unit[:, 1] + unit[:, 2] - unit[:, 0]
            means /= np.linalg.norm(means, axis=1, keepdims=True)
            dists = means @ unit_rows.T
            dists[np.arange(len(batch))[:, None], idx[:, :3]] = -np.inf  # gensim never returns the question's own words
            k = min(6, clip)
            part = np.argpartition(dists, clip - k, axis=1)[:, clip - k :]  # the k largest, in no order
            vals = np.take_along_axis(dists, part, axis=1)
            order = np.argsort(-vals, axis=1, kind="stable")
            tops = np.take_along_axis(part, order, axis=1)
            top_scores = np.take_along_axis(vals, order, axis=1)
            for j, q in enumerate(batch):
                finite = np.isfinite(top_scores[j])
                top, scores = tops[j][finite], top_scores[j][finite]
                if len(scores) > 1 and np.min(np.abs(np.diff(scores))) < _TIE_GAP:
                    hit = _gensim_answer(kv, ok_vocab, q, restrict_vocab, case_insensitive)
                else:
                    hit = _pick(keys, top[:5], q, case_insensitive) == q[3]
                correct += bool(hit)
        rows.append({"section": name, "questions": len(questions), "evaluated": len(known), "correct": correct, "oov": len(questions) - len(known)})
    total_q = sum(r["questions"] for r in rows)
    total_e = sum(r["evaluated"] for r in rows)
    total_c = sum(r["correct"] for r in rows)
    for r in rows:
        r["accuracy"] = r["correct"] / r["evaluated"] if r["evaluated"] else None
        r["oov_ratio"] = 100.0 * r["oov"] / r["questions"] if r["questions"] else 0.0
    return {
        "accuracy": total_c / total_e if total_e else 0.0,
        "correct": total_c,
        "evaluated": total_e,
        "questions": total_q,
        "oov": total_q - total_e,
        "oov_ratio": 100.0 * (total_q - total_e) / total_q if total_q else 0.0,
        "sections": rows,
    }


def _pick(keys: list[str], top: Iterable[int], q: tuple[str, str, str, str], case_insensitive: bool) -> str | None:
    # gensim walks its top 5 and stops at the first word that is not a case variant of the question's
    predicted = None
    ignore = set(q[:3])
    for i in top:
        predicted = keys[i].upper() if case_insensitive else keys[i]
        if predicted not in ignore:
            break
    return predicted


def _gensim_answer(kv, ok_vocab: dict[str, int], q, restrict_vocab: int, case_insensitive: bool) -> bool:
    a, b, c, expected = q
    original = kv.key_to_index
    kv.key_to_index = ok_vocab
    try:
        sims = kv.most_similar(positive=[b, c], negative=[a], topn=5, restrict_vocab=restrict_vocab)
    finally:
        kv.key_to_index = original
    predicted = None
    for key, _ in sims:
        predicted = key.upper() if case_insensitive else key
        if predicted in ok_vocab and predicted not in {a, b, c}:
            break
    return predicted == expected


def read_polarity(path: str) -> tuple[list[list[str]], list[str]]:
    """Pang & Lee sentences: ``__label__pos``/``__label__neg`` then tokens (Latin-1: the file has cp1252 bytes)."""
    sentences, labels = [], []
    with open(path, encoding="latin-1") as fin:
        for line in fin:
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith("__label__"):
                labels.append(parts[0][len("__label__") :])
                sentences.append(parts[1:])
    return sentences, labels


def sentence_features(kv, sentences: list[list[str]], *, case_insensitive: bool = True) -> tuple[np.ndarray, float]:
    """Mean word vector per sentence (zeros if no word is known) and the share of tokens that were known."""
    lookup = _ok_vocab(kv, len(kv.index_to_key), case_insensitive)
    X = np.zeros((len(sentences), kv.vector_size), dtype=np.float64)
    known = total = 0
    for i, tokens in enumerate(sentences):
        ids = [lookup[t.upper() if case_insensitive else t] for t in tokens if (t.upper() if case_insensitive else t) in lookup]
        total += len(tokens)
        known += len(ids)
        if ids:
            X[i] = kv.vectors[ids].mean(axis=0)
    return X, (known / total if total else 0.0)


def sentiment(kv, path: str | None = None, *, folds: int = 10, seed: int = 0) -> dict[str, Any]:
    """Cross-validated accuracy of logistic regression on averaged vectors, and the majority baseline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sentences, labels = read_polarity(path or datapath(SENTIMENT))
    X, coverage = sentence_features(kv, sentences)
    y = np.array(labels)
    _, counts = np.unique(y, return_counts=True)
    folds = max(2, min(folds, int(counts.min())))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    scores = cross_val_score(classifier, X, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), scoring="accuracy")
    return {
        "accuracy": float(scores.mean()),
        "std": float(scores.std()),
        "baseline": float(counts.max() / counts.sum()),
        "folds": folds,
        "sentences": len(sentences),
        "coverage": coverage,
    }


def evaluate(kv, benchmarks: Iterable[str] = BENCHMARKS, *, restrict_vocab: int = RESTRICT_VOCAB) -> dict[str, Any]:
    """Run the chosen benchmarks on gensim ``KeyedVectors``; full results (analogy sections included)."""
    out: dict[str, Any] = {}
    for name in benchmarks:
        if name in PAIR_SETS:
            out[name] = word_pairs(kv, datapath(PAIR_SETS[name]), restrict_vocab=restrict_vocab)
        elif name == "analogy":
            out[name] = analogies(kv, datapath(ANALOGIES), restrict_vocab=restrict_vocab)
        elif name == "sentiment":
            out[name] = sentiment(kv)
        else:
            from ..errors import InvalidInputError

            raise InvalidInputError(f"unknown benchmark {name!r}", hint=f"choose from: {', '.join(BENCHMARKS)}")
    return out


def compact(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores small enough for a znode: rounded numbers, analogy sections as [correct, evaluated, oov]."""

    def r(x):
        return None if x is None else round(float(x), 4)

    out: dict[str, Any] = {}
    for name, s in scores.items():
        if name in PAIR_SETS:
            out[name] = {"spearman": r(s["spearman"]), "pearson": r(s["pearson"]), "pairs": s["pairs"], "oov_ratio": r(s["oov_ratio"])}
        elif name == "analogy":
            out[name] = {
                "accuracy": r(s["accuracy"]),
                "evaluated": s["evaluated"],
                "questions": s["questions"],
                "oov_ratio": r(s["oov_ratio"]),
                "sections": {row["section"]: [row["correct"], row["evaluated"], row["oov"]] for row in s["sections"]},
            }
        elif name == "sentiment":
            out[name] = {k: r(v) if isinstance(v, float) else v for k, v in s.items()}
        else:
            out[name] = s
    return out
