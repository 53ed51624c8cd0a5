"""Benchmarks give gensim's own numbers; the classifier is a real pipeline; scores land on the znode."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from nlpzk.eval import benchmarks as B
from nlpzk.eval import evaluate_model
from nlpzk.models import model_doc, register_model
from test_models_support import lee_word2vec, vocab_and_vectors


def _assert_pairs_equal(kv, mine: dict, path: str) -> None:
    pearson, spearman, oov_ratio = kv.evaluate_word_pairs(path)
    assert mine["spearman"] == spearman[0]
    assert mine["pearson"] == pearson[0]
    assert mine["oov_ratio"] == oov_ratio


def _assert_analogies_equal(kv, mine: dict, path: str) -> None:
    score, sections = kv.evaluate_word_analogies(path)
    assert mine["accuracy"] == score
    per = {s["section"]: s for s in sections[:-1]}
    assert [r["section"] for r in mine["sections"]] == list(per)
    for row in mine["sections"]:
        g = per[row["section"]]
        assert (row["correct"], row["evaluated"]) == (len(g["correct"]), len(g["correct"]) + len(g["incorrect"])), row["section"]


def test_registered_model_scores_equal_gensims_and_are_stored(cluster):
    view, kv = vocab_and_vectors(cluster)
    register_model(cluster, "lee", kv, vocab_name=view.name, vocab_version=view.version)
    result = evaluate_model(cluster, "lee", benchmarks=("wordsim353", "simlex999", "analogy"))
    scores = result["scores"]
    # gensim on the in-memory vectors, nlpzk on the ones read back from the store: equal, not close
    for name, fname in B.PAIR_SETS.items():
        _assert_pairs_equal(kv, scores[name], datapath(fname))
    _assert_analogies_equal(kv, scores["analogy"], datapath(B.ANALOGIES))
    assert scores["analogy"]["evaluated"] > 0

    stored = model_doc(cluster, "lee")["eval"]
    assert stored["wordsim353"]["spearman"] == round(scores["wordsim353"]["spearman"], 4)
    assert stored["analogy"]["sections"]["family"][1] == next(r["evaluated"] for r in scores["analogy"]["sections"] if r["section"] == "family")
    assert len(json.dumps(model_doc(cluster, "lee"))) < 2048  # small document


@pytest.fixture(scope="module")
def structured_kv():
    """Vectors where most analogies hold (y = x + section offset + noise), with the traps gensim handles:
    lower-case duplicates of question words (case-insensitive lookup: first occurrence wins), and
    twins with identical vectors (exact ties between candidates)."""
    rng = np.random.default_rng(7)
    dim = 16
    sections = B._read_analogies(datapath(B.ANALOGIES), case_insensitive=False)
    vec: dict[str, np.ndarray] = {}
    for _, questions in sections:
        offset = rng.normal(size=dim)
        for a, b, c, d in questions[:60]:
            for x, y in ((a, b), (c, d)):
                vec.setdefault(x, rng.normal(size=dim))
                vec.setdefault(y, vec[x] + offset + rng.normal(scale=0.6, size=dim))
    words = list(vec)
    for w in words[::3]:
        vec.setdefault(w.lower(), vec[w] + rng.normal(scale=0.2, size=dim))
    for w in words[::29]:
        vec[w + "_twin"] = vec[w].copy()
    for i in range(300):
        vec[f"filler{i}"] = rng.normal(size=dim)
    kv = KeyedVectors(dim)
    kv.add_vectors(list(vec), np.array(list(vec.values()), dtype=np.float32))
    return kv, sections


def test_analogy_counts_equal_gensims_on_structured_vectors(structured_kv, tmp_path):
    kv, sections = structured_kv
    path = tmp_path / "questions.txt"
    with open(path, "w") as fh:
        for name, questions in sections:
            fh.write(f": {name}\n")
            for q in questions[:60]:
                fh.write(" ".join(q) + "\n")
        fh.write(": unknown-words\nfoo bar baz qux\n")
    mine = B.analogies(kv, str(path), batch_bytes=4096 * 4 * 7)  # several batches
    assert 0.2 < mine["accuracy"] < 0.95  # a real mix of right and wrong answers
    _assert_analogies_equal(kv, mine, str(path))
    unknown = mine["sections"][-1]
    assert (unknown["questions"], unknown["oov"], unknown["oov_ratio"]) == (1, 1, 100.0)
    # restricting the vocabulary changes the OOV set the same way gensim's restrict_vocab does
    score, _ = kv.evaluate_word_analogies(str(path), restrict_vocab=400)
    assert B.analogies(kv, str(path), restrict_vocab=400)["accuracy"] == score


def test_sentiment_classifier_beats_the_majority_baseline_with_vectors_that_carry_sentiment():
    # Give every word a component along one axis proportional to how much more often it occurs in
    # positive than in negative sentences (plus noise elsewhere). A correct pipeline - averaged
    # vectors aligned with their labels, scaled, cross-validated - must find that axis; features or
    # labels shuffled relative to each other would score around the 50% baseline.
    sentences, labels = B.read_polarity(datapath(B.SENTIMENT))
    counts: dict[str, list[int]] = {}
    for tokens, label in zip(sentences, labels):
        for t in tokens:
            counts.setdefault(t, [0, 0])[label == "pos"] += 1
    rng = np.random.default_rng(0)
    words = list(counts)
    vectors = rng.normal(size=(len(words), 8)).astype(np.float32)
    vectors[:, 0] = [(counts[w][1] - counts[w][0]) / (sum(counts[w]) + 1) for w in words]
    kv = KeyedVectors(8)
    kv.add_vectors(words, vectors)
    result = B.sentiment(kv)
    assert result["baseline"] == 0.5 and result["sentences"] == 200 and result["coverage"] == 1.0
    assert result["accuracy"] > 0.75

    # and real (small, news-trained) word2vec vectors run through the same pipeline
    real = B.sentiment(lee_word2vec())
    assert 0 < real["coverage"] < 1 and 0 <= real["accuracy"] <= 1


def test_cli_eval_against_prints_both_models_and_saves(cluster, cli):
    view, kv = vocab_and_vectors(cluster)
    register_model(cluster, "lee", kv, vocab_name=view.name, vocab_version=view.version)
    kv2 = KeyedVectors(kv.vector_size)
    kv2.add_vectors(kv.index_to_key, np.random.default_rng(1).normal(size=kv.vectors.shape).astype(np.float32))
    register_model(cluster, "lee", kv2, vocab_name=view.name, vocab_version=view.version)

    res = cli("model", "eval", "lee", "--against", "lee@1", "--only", "wordsim353", "--only", "sentiment", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [m["model"] for m in data["models"]] == ["lee@v2", "lee@v1"]
    row = next(r for r in data["table"] if r["metric"] == "WordSim-353 Spearman")
    assert row["lee@v1"] == data["models"][1]["scores"]["wordsim353"]["spearman"]
    assert set(model_doc(cluster, "lee", 1)["eval"]) == {"wordsim353", "sentiment"}

    res = cli("model", "eval", "lee@1", "--only", "simlex999")
    assert res.exit_code == 0, res.output
    assert "SimLex-999 Spearman" in res.stdout
    # scores merge: the earlier benchmarks stay on the znode
    assert set(model_doc(cluster, "lee", 1)["eval"]) == {"wordsim353", "sentiment", "simlex999"}
    # --corpus alone was ignored without a word; it names the held-out corpus, which needs --workers
    res = cli("model", "eval", "lee", "--corpus", "lee")
    assert res.exit_code == 5 and "--corpus is the held-out corpus: it needs --workers K" in res.stderr


def test_showcase_for_the_demo(cluster):
    from nlpzk.eval.showcase import showcase, summary_lines

    view, kv = vocab_and_vectors(cluster)
    register_model(cluster, "lee", kv, vocab_name=view.name, vocab_version=view.version)
    result = showcase(cluster, "lee", benchmarks=("wordsim353", "sentiment"))
    assert result["model"] == "lee@v1" and result["vocab"] == f"lee@v{view.version}"
    assert [x["token"] for x in result["lookups"]] == ["government", "police", "president"]
    for item in result["lookups"]:
        assert item["id"] == view[item["token"]] and item["count"] == view.count(item["token"])
        assert [t for t, _ in result["neighbours"][item["token"]]] == [t for t, _ in kv.most_similar(item["token"], topn=5)]
    assert set(result["scores"]) == {"wordsim353", "sentiment"}
    assert set(model_doc(cluster, "lee")["eval"]) == {"wordsim353", "sentiment"}
    lines = summary_lines(result)
    assert lines[0].startswith("model lee@v1") and "nearest:" in lines[-1]

    chosen = showcase(cluster, "lee", words=["fire", "zzzq"], benchmarks=("wordsim353",))
    assert chosen["lookups"][1] == {"token": "zzzq", "id": None, "count": 0} and "zzzq" not in chosen["neighbours"]
