"""The demo's last step as one call: evaluate a model version, look a few words up, show neighbours.

>>> result = showcase(cluster, "demo")        # doctest: +SKIP
>>> for line in summary_lines(result): print(line)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..cluster import Cluster
from ..models import Model, headline
from . import benchmarks as _b
from .scoring import evaluate_model

# Words that make neighbours easy to judge in news-like English text; the first few present are used.
PREFERRED = ("government", "police", "president", "fire", "city", "war", "water", "money", "king", "woman", "man", "day")


def showcase(
    cluster: Cluster,
    name: str,
    version: int | None = None,
    tag: str | None = None,
    *,
    words: Sequence[str] | None = None,
    topn: int = 5,
    count: int = 3,
    benchmarks: Iterable[str] = _b.BENCHMARKS,
) -> dict[str, Any]:
    """Score the model (scores are stored on its znode), then look up ``words`` (default: ``count`` common
    words it knows) in its vocabulary version and list their ``topn`` nearest neighbours."""
    result = evaluate_model(cluster, name, version, tag, benchmarks=benchmarks)
    model = Model.open(name, version=result["version"], cluster=cluster)
    kv = model.kv
    if words is None:
        chosen = [w for w in PREFERRED if w in kv.key_to_index][:count]
        if len(chosen) < count:
            from .report import default_words

            chosen += [w for w in default_words(kv, count * 2) if w not in chosen][: count - len(chosen)]
    else:
        chosen = list(words)
    vocab = model.vocab
    lookups = []
    neighbours = {}
    for w in chosen:
        known = w in vocab
        lookups.append({"token": w, "id": vocab.id(w) if known else None, "count": vocab.count(w)})
        if w in kv.key_to_index:
            neighbours[w] = [(t, round(s, 4)) for t, s in model.similar(w, topn)]
    sentiment = result["scores"].get("sentiment")
    return {
        "model": model.ref,
        "vocab": f"{vocab.name}@v{vocab.version}",
        "scores": headline(_b.compact(result["scores"])),
        "sentiment_beats_baseline": None if not sentiment else sentiment["accuracy"] > sentiment["baseline"],
        "sentiment_baseline": None if not sentiment else sentiment["baseline"],
        "lookups": lookups,
        "neighbours": neighbours,
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A few short lines for a terminal (the caller prints them)."""
    scores = ", ".join(f"{k} {v:.3f}" for k, v in result["scores"].items())
    lines = [f"model {result['model']} (vocabulary {result['vocab']}): {scores}"]
    if result["sentiment_beats_baseline"] is not None:
        verdict = "beats" if result["sentiment_beats_baseline"] else "does not beat"
        lines.append(f"sentiment classifier {verdict} the majority baseline ({result['sentiment_baseline']:.3f})")
    for item in result["lookups"]:
        near = ", ".join(t for t, _ in result["neighbours"].get(item["token"], [])) or "-"
        lines.append(f"{item['token']!r}: id {item['id']}, count {item['count']}; nearest: {near}")
    return lines
