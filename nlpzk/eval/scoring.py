"""Score a registered model version, keep the scores on its znode, and line two models up."""

from __future__ import annotations

from typing import Any, Iterable

from ..cluster import Cluster
from ..models import Model, store_scores
from . import benchmarks as _b


def evaluate_model(
    cluster: Cluster,
    name: str,
    version: int | None = None,
    tag: str | None = None,
    *,
    benchmarks: Iterable[str] = _b.BENCHMARKS,
    save: bool = True,
) -> dict[str, Any]:
    """Run ``benchmarks`` on a model version; with ``save``, merge the compact scores into its znode.

    Returns ``{"model": "name@vN", "scores": <full results>}``.
    """
    model = Model.open(name, version=version, tag=tag, cluster=cluster)
    scores = _b.evaluate(model.kv, benchmarks)
    if save:
        store_scores(cluster, model.name, model.version, _b.compact(scores))
    return {"model": model.ref, "name": model.name, "version": model.version, "scores": scores}


# (label, benchmark, field)
ROWS = (
    ("WordSim-353 Spearman", "wordsim353", "spearman"),
    ("WordSim-353 OOV %", "wordsim353", "oov_ratio"),
    ("SimLex-999 Spearman", "simlex999", "spearman"),
    ("SimLex-999 OOV %", "simlex999", "oov_ratio"),
    ("Analogy accuracy", "analogy", "accuracy"),
    ("Analogy OOV %", "analogy", "oov_ratio"),
    ("Sentiment CV accuracy", "sentiment", "accuracy"),
    ("Sentiment majority baseline", "sentiment", "baseline"),
    ("Sentiment token coverage", "sentiment", "coverage"),
    ("Held-out loss per pair", "heldout", "loss_per_pair"),
    ("Held-out pairs", "heldout", "pairs"),
)


def compare(*results: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows ``{"metric", <model ref>: value, ...}`` for results of :func:`evaluate_model`, side by side.

    Analogy sections follow the headline rows, one row per section (accuracy).
    """
    rows = []
    for label, bench, field in ROWS:
        if not any(bench in r["scores"] for r in results):
            continue
        rows.append({"metric": label, **{r["model"]: (r["scores"].get(bench) or {}).get(field) for r in results}})
    sections: dict[str, dict[str, Any]] = {}
    for r in results:
        for row in (r["scores"].get("analogy") or {}).get("sections", []):
            sections.setdefault(row["section"], {"metric": f"  {row['section']}"})[r["model"]] = row["accuracy"]
    rows.extend(sections.values())
    return rows
