"""One look at the cluster, read from ZooKeeper: servers, corpora, vocabularies, jobs, models.

Everything here is read-only and tolerant: a node that vanishes between listing and reading (a
version deleted, a round pruned, a worker gone) is simply left out, never an error.

>>> collect(cluster)["jobs"][0]["workers_alive"]      # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

from .cluster import Cluster, public_functions
from .errors import IntegrityError
from .zk import paths, registry, versioned
from .zk import server as zkserver


def servers(cluster: Cluster) -> list[dict[str, Any]]:
    """Each configured ZooKeeper server's mode (leader/follower/standalone) via the ``srvr`` word."""
    from .zk.client import tls_context

    hosts, _ = cluster.config.hosts_and_chroot()
    tls = tls_context(cluster.config)
    rows = []
    for addr in hosts.split(","):
        host, _, port = addr.strip().rpartition(":")
        st = zkserver.parse_srvr(zkserver.four_letter(host, int(port), "srvr", timeout=1.0, tls=tls)) or {}
        rows.append({"address": addr.strip(), "serving": bool(st), "mode": st.get("mode"), "version": st.get("version"), "znodes": _int(st.get("node_count"))})
    return rows


def corpora(cluster: Cluster) -> list[dict[str, Any]]:
    """``corpus list``'s rows: a corpus whose node or a shard node is damaged is a row in state
    ``damaged`` with the line saying what to do, and does not hide the others."""
    from .corpus import list_corpora

    return list_corpora(cluster)


def _latest(zk, base: str, version_path) -> tuple[list[int], dict[str, int], int | None, dict[str, Any]]:
    """Versions, tags, the ``latest`` version (the tag, else the highest) and its document."""
    numbers = versioned.versions(zk, base)
    tags = versioned.tags(zk, base)
    latest = tags.get("latest", numbers[-1] if numbers else None)
    doc = (registry.maybe_json(zk, version_path(latest)) if latest else None) or {}
    return numbers, tags, latest, doc


#: The fields of a vocabulary's row in :func:`vocabularies`.
VOCAB_ROW_KEYS = ("name", "versions", "latest", "tags", "tokens", "corpus", "deleting", "state", "damaged")


def vocabularies(cluster: Cluster) -> list[dict[str, Any]]:
    """Each vocabulary's versions, tags and latest version (a damaged one: a row, as in ``vocab list``)."""
    zk = cluster.zk
    rows = []
    for name in registry.children(zk, paths.VOCAB):
        try:
            numbers, tags, latest, doc = _latest(zk, paths.vocab(name), lambda n: paths.vocab_version(name, n))
            rows.append({"name": name, "versions": len(numbers), "latest": latest, "tags": tags, "tokens": doc.get("rows"), "corpus": doc.get("corpus"),
                         "deleting": registry.is_deleting(zk, paths.vocab(name)), "state": "ok", "damaged": None})
        except IntegrityError as exc:  # its node, a tag or its latest version changed outside nlpzk
            rows.append(registry.damaged_row(VOCAB_ROW_KEYS, exc, name=name, deleting=False))
    return rows


#: The fields of a job's row in :func:`jobs` (``damaged``: None, or what is wrong with its node and what to do).
JOB_ROW_KEYS = ("name", "state", "round", "rounds", "words", "total_words", "progress", "corpus", "vocab", "workers_alive", "workers",
                "leases_held", "shards_done_in_round", "words_per_s", "deleting", "damaged")


def jobs(cluster: Cluster) -> list[dict[str, Any]]:
    """Every job: state, round of rounds, words so far, live workers, leases held now, words/s.

    Words/s is the sum of what the live workers last reported on their membership nodes.
    """
    from .train.job import job_documents

    zk = cluster.zk
    rows = []
    names = registry.children(zk, paths.JOBS)
    for name, doc in zip(names, job_documents(zk, names, keep_damaged=True)):
        if doc is None:
            continue  # deleted meanwhile
        if not isinstance(doc, dict):
            # a damaged node: an overview still shows everything else, and this job with what to do
            # (train list / train status stop at it, naming the same command)
            rows.append(registry.damaged_row(JOB_ROW_KEYS, doc, name=name, workers_alive=0, workers=[], leases_held=0, shards_done_in_round=0, deleting=False))
            continue
        spec = doc.get("spec") or {}
        wids = registry.children(zk, paths.job_workers(name))
        docs = registry.many_json(zk, [paths.job_worker(name, w) for w in wids])
        workers = {w: (d if isinstance(d, dict) else {}) for w, d in zip(wids, docs) if d is not None}
        r = doc.get("round")
        leases = registry.children(zk, paths.round_leases(name, int(r))) if isinstance(r, int) and doc.get("state") == "running" else []
        done = registry.children(zk, paths.round_done(name, int(r))) if isinstance(r, int) and doc.get("state") == "running" else []
        rate = sum(float(w.get("words_per_s") or 0) for w in workers.values())
        total = spec.get("total_words")
        rows.append(
            {
                "name": name,
                "state": doc.get("state"),
                "round": r,
                "rounds": spec.get("rounds"),
                "words": doc.get("words"),
                "total_words": total,
                "progress": (float(doc.get("words") or 0) / total) if total else None,
                "corpus": spec.get("corpus"),
                "vocab": f"{spec['vocab']}@v{spec.get('vocab_version')}" if spec.get("vocab") else None,
                "workers_alive": len(workers),
                "workers": sorted(workers),
                "leases_held": len(leases),
                "shards_done_in_round": len(done),
                "words_per_s": round(rate) if workers else None,
                "deleting": bool(doc.get("deleting")),
                "damaged": None,
            }
        )
    return rows


def models(cluster: Cluster) -> list[dict[str, Any]]:
    """``model list``'s rows, the vocabulary as ``NAME@vN`` (a damaged model: a row in state ``damaged``)."""
    from .models import list_models

    return [dict(r, vocab=f"{r['vocab']['name']}@v{r['vocab']['version']}" if r["vocab"] else None) for r in list_models(cluster)]


def collect(cluster: Cluster) -> dict[str, Any]:
    """Everything :mod:`nlpzk.status` knows, as one JSON-ready dict."""
    hosts, chroot = cluster.config.hosts_and_chroot()
    return {
        "at": round(time.time(), 3),
        "zk": {"hosts": hosts, "chroot": chroot, "embedded": cluster.config.embedded, "session": cluster.watch.state},
        "store": cluster.store.uri,
        "servers": servers(cluster),
        "corpora": corpora(cluster),
        "vocabularies": vocabularies(cluster),
        "jobs": jobs(cluster),
        "models": models(cluster),
    }


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


public_functions(globals(), ["servers", "corpora", "vocabularies", "jobs", "models", "collect"])  # called from outside nlpzk, they raise only NlpzkError
