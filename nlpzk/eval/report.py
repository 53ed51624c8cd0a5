"""A training job as pictures: loss and words/s per round and per worker, eval scores, and a PCA map of words.

The job's round nodes (``/jobs/<job>/rounds/<r>``) carry each merged round's summary (words, loss,
wall/train seconds, workers); the per-worker split comes from the round log the merger writes to the
store (``log`` in the summary). Every field is read defensively: a round without a summary (still
running) or a log that was never written only leaves a gap in a plot.

Vectors for the word map and the eval scores come from the model version registered by the job
(newest first); without one, the scores the job recorded at its end are used and the map is left out.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from typing import Any, Sequence

import numpy as np

from ..cluster import Cluster
from ..errors import InvalidInputError, NotFoundError
from ..zk import paths, registry, versioned

FORMATS = (".html", ".png")


def job_history(cluster: Cluster, job: str) -> dict[str, Any]:
    """Job document, per-round rows and per-(round, worker) rows, read from ZooKeeper and round logs."""
    from ..train.job import job_documents

    zk = cluster.zk
    (doc,) = job_documents(zk, [job])  # a damaged node: train list's error, with what to do
    if doc is None:
        raise NotFoundError(f"unknown training job {job!r}", hint="see: nlpzk train list")  # as every other train command says
    if isinstance(doc, dict) and doc.get("deleting"):  # train delete stopped half-way: its round logs may be gone
        raise registry.being_deleted(paths.job(job))
    rounds: list[dict[str, Any]] = []
    per_worker: list[dict[str, Any]] = []
    for name in registry.children(zk, paths.job_rounds(job)):
        rd = registry.maybe_json(zk, f"{paths.job_rounds(job)}/{name}")
        if not isinstance(rd, dict) or not (name.isascii() and name.isdigit()):  # (str.isdigit() also says yes to '²', which int() refuses)
            continue
        r = int(rd.get("round", int(name)))
        words = _num(rd.get("words"))
        wall = _num(rd.get("wall_s"))
        loss = _num(rd.get("loss"))
        rounds.append(
            {
                "round": r,
                "state": rd.get("state"),
                "words": words,
                "loss": loss,
                "loss_per_word": loss / words if loss is not None and words else None,
                "wall_s": wall,
                "words_per_s": words / wall if words and wall else None,
                "workers": rd.get("workers"),
                "alpha": _num(rd.get("alpha")),
            }
        )
        log_path = rd.get("log")
        if not log_path:
            continue
        try:
            log = json.loads(cluster.store.read_bytes(log_path).decode())
        except Exception:  # noqa: BLE001 - a missing or unreadable log leaves a gap, the rest still plots
            continue
        by_worker: dict[str, dict[str, float]] = {}
        for c in log.get("contributions", []) if isinstance(log, dict) else []:
            w = by_worker.setdefault(str(c.get("worker")), {"words": 0.0, "loss": 0.0, "seconds": 0.0})
            for key in ("words", "loss", "seconds"):
                w[key] += _num(c.get(key)) or 0.0
        for worker, w in sorted(by_worker.items()):
            per_worker.append(
                {
                    "round": r,
                    "worker": worker,
                    "words": w["words"],
                    "loss_per_word": w["loss"] / w["words"] if w["words"] else None,
                    "words_per_s": w["words"] / w["seconds"] if w["seconds"] else None,
                }
            )
    rounds.sort(key=lambda x: x["round"])
    return {"job": job, "doc": doc, "rounds": rounds, "per_worker": per_worker}


def job_model(cluster: Cluster, job: str) -> tuple[str, int] | None:
    """``(model name, version)`` of the newest model version registered by ``job``, if any."""
    from ..models import from_job

    found = None
    jdoc = registry.maybe_json(cluster.zk, paths.job(job))
    jdoc = jdoc if isinstance(jdoc, dict) else None
    for name in registry.children(cluster.zk, paths.MODELS):
        for number in versioned.versions(cluster.zk, paths.model(name)):
            doc = registry.maybe_json(cluster.zk, paths.model_version(name, number)) or {}
            if from_job(doc, job, jdoc) and (found is None or doc.get("created", 0) >= found[2]):
                found = (name, number, doc.get("created", 0))
    return None if found is None else (found[0], found[1])


def default_words(kv, n: int = 40) -> list[str]:
    """Frequent content words: the most frequent alphabetic tokens that are not stop words."""
    from spacy.lang.en.stop_words import STOP_WORDS

    order = range(len(kv.index_to_key))
    counts = kv.expandos.get("count")
    if counts is not None:
        order = np.argsort(-np.asarray(counts), kind="stable")
    out = []
    for i in order:
        token = kv.index_to_key[int(i)]
        if token.isalpha() and len(token) > 2 and token.lower() not in STOP_WORDS:
            out.append(token)
            if len(out) == n:
                break
    return out


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Rows projected on their first two principal components."""
    centered = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T


def build_report(cluster: Cluster, job: str, out: str, *, words: Sequence[str] | None = None) -> dict[str, Any]:
    """Write ``out`` (``.html`` with every figure and table, or one ``.png`` of all figures).

    Returns what went in: path, rounds, workers, the model used and the words placed on the map.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from ..models import Model, atomic_local_write, headline

    ext = os.path.splitext(out)[1].lower()
    if ext not in FORMATS:
        raise InvalidInputError(f"report file {out!r} must end in .html or .png")
    history = job_history(cluster, job)
    found = job_model(cluster, job)
    kv = None
    scores: dict[str, Any] = {}
    model_ref = None
    if found:
        model = Model.open(found[0], version=found[1], cluster=cluster)
        kv, model_ref = model.kv, model.ref
        scores = headline(model.doc.get("eval") or {})
    if not scores:
        # the job's own end-of-training scores; counts and OOV percentages do not belong on a 0..1 axis
        final = (history["doc"].get("final") or {}).get("scores") or {}
        # the scores only: not the OOV percentages or the number of analogy questions beside them
        scores = {k: v for k, v in final.items() if k in ("ws353", "simlex", "analogy") and isinstance(v, (int, float)) and -1.0 <= v <= 1.0}
    if kv is None and history["doc"].get("state") == "done":
        kv = _final_vectors(cluster, job)
    placed: list[str] = []
    missing: list[str] = []
    if kv is not None:
        wanted = list(words) if words else default_words(kv)
        placed = [w for w in wanted if w in kv.key_to_index]
        missing = [w for w in wanted if w not in kv.key_to_index] if words else []

    figures = {
        "loss": _plot_rounds(plt, history, "loss_per_word", "training loss per word"),
        "speed": _plot_rounds(plt, history, "words_per_s", "words per second"),
        "scores": _plot_scores(plt, scores),
        "map": _plot_map(plt, kv, placed) if placed else None,
    }
    figures = {k: v for k, v in figures.items() if v is not None}

    if ext == ".png":
        from matplotlib import image as mpimg

        cols = 2
        rows = (len(figures) + 1) // cols
        grid, axes = plt.subplots(rows, cols, figsize=(14, 5.5 * rows))
        for ax in np.ravel(axes):
            ax.axis("off")
        for ax, png in zip(np.ravel(axes), figures.values()):
            ax.imshow(mpimg.imread(io.BytesIO(png), format="png"))
        grid.suptitle(f"nlpzk job {job}" + (f" -> model {model_ref}" if model_ref else ""))
        grid.tight_layout()
        buf = io.BytesIO()
        grid.savefig(buf, format="png", dpi=100)
        plt.close(grid)
        atomic_local_write(out, lambda fh: fh.write(buf.getvalue()))
    else:
        page = _html(history, scores, model_ref, figures, placed)
        atomic_local_write(out, lambda fh: fh.write(page.encode()))
    workers = sorted({row["worker"] for row in history["per_worker"]})
    return {
        "path": os.path.abspath(out), "job": job, "rounds": len(history["rounds"]), "workers": workers, "model": model_ref,
        "words": placed, "missing_words": missing, "figures": list(figures), "scores": scores,
    }


def _final_vectors(cluster: Cluster, job: str):
    """The vectors a finished job left in the store, when no model version was registered from it."""
    from ..errors import NlpzkError

    try:
        from ..train import final_vectors

        return final_vectors(cluster, job)[0]
    except (NlpzkError, ImportError, KeyError):
        return None


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _plot_rounds(plt, history: dict[str, Any], field: str, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r["round"] for r in history["rounds"] if r[field] is not None]
    ys = [r[field] for r in history["rounds"] if r[field] is not None]
    if xs:
        ax.plot(xs, ys, marker="o", linewidth=2.5, color="black", label="whole job")
    by_worker: dict[str, list[tuple[int, float]]] = {}
    for row in history["per_worker"]:
        if row[field] is not None:
            by_worker.setdefault(row["worker"], []).append((row["round"], row[field]))
    for worker, points in sorted(by_worker.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linestyle="--", label=f"worker {worker}")
    if not xs and not by_worker:
        ax.text(0.5, 0.5, "no merged rounds yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel("round")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if xs or by_worker:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(plt, fig)


def _plot_scores(plt, scores: dict[str, Any]) -> bytes | None:
    items = [(k, float(v)) for k, v in scores.items() if isinstance(v, (int, float))]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v:.3f}", va="center")
    ax.set_xlim(min(0.0, min(v for _, v in items)), max(1.0, max(v for _, v in items) * 1.15))
    ax.set_title("evaluation scores")
    return _png(plt, fig)


def _plot_map(plt, kv, words: list[str]) -> bytes:
    xy = pca_2d(np.asarray(kv[words], dtype=np.float64)) if len(words) > 1 else np.zeros((len(words), 2))
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(xy[:, 0], xy[:, 1], s=12, color="tab:red")
    for (x, y), w in zip(xy, words):
        ax.annotate(w, (x, y), fontsize=8, xytext=(2, 2), textcoords="offset points")
    ax.set_title(f"PCA of {len(words)} word vectors")
    ax.set_xticks([])
    ax.set_yticks([])
    return _png(plt, fig)


def _html(history: dict[str, Any], scores: dict[str, Any], model_ref: str | None, figures: dict[str, bytes], words: list[str]) -> str:
    doc = history["doc"]
    spec = doc.get("spec") or {}
    esc = html.escape
    imgs = "\n".join(f'<figure><img alt="{esc(k)}" src="data:image/png;base64,{base64.b64encode(v).decode()}"></figure>' for k, v in figures.items())
    round_rows = "\n".join(
        "<tr>" + "".join(f"<td>{esc(_cell(r[k]))}</td>" for k in ("round", "state", "words", "loss_per_word", "words_per_s", "wall_s", "workers", "alpha")) + "</tr>"
        for r in history["rounds"]
    )
    score_rows = "\n".join(f"<tr><td>{esc(k)}</td><td>{esc(_cell(v))}</td></tr>" for k, v in scores.items())
    spec_text = ", ".join(f"{k}={v}" for k, v in sorted(spec.items()) if not isinstance(v, (dict, list)))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>nlpzk job {esc(history['job'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} figure{{display:inline-block;margin:.5em}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}</style></head>
<body>
<h1>Training job {esc(history['job'])}</h1>
<p>state <b>{esc(str(doc.get('state')))}</b>, round {esc(str(doc.get('round')))} of {esc(str(spec.get('rounds')))},
{esc(_cell(doc.get('words')))} words; model {esc(model_ref or 'not registered')}</p>
<p><small>{esc(spec_text)}</small></p>
{imgs}
<h2>Rounds</h2>
<table><tr><th>round</th><th>state</th><th>words</th><th>loss/word</th><th>words/s</th><th>wall s</th><th>workers</th><th>alpha</th></tr>
{round_rows}</table>
<h2>Scores</h2>
<table>{score_rows}</table>
<p>Words on the map: {esc(', '.join(words)) or '-'}</p>
</body></html>
"""


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _num(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
