"""Going back a round when a round's parameters did not survive an OS crash.

A round's merged parameters go to the page cache and are published at once: fsyncing them (two
34 MB parts at once took 40-100 ms here) was most of the time every worker waited between two
rounds. They reach the disk in the background instead, and always before anything the round was
made from is deleted: :func:`nlpzk.train.worker.tidy_round` fsyncs round ``r``'s output before it
deletes round ``r``'s input parameters, its contributions and its nodes.

So an OS crash (power loss, a kernel panic) of the store's machine can cost the newest rounds'
parameters (zeroed, cut or missing), never the round before them: it is still whole, nodes and
files. Each part's node records the sum of what was written (:func:`merge.word_sum`), and the
next round's node the list. A worker that starts checks the parameters of the round it starts
from; if they are not what was written, :func:`roll_back` takes the job back to the newest round
that is still whole, which is then merged again (its contributions, checked the same way, are
kept or trained again) and training goes on from there. A process that dies loses nothing: the
page cache keeps what it wrote.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from ..cluster import Cluster
from ..errors import IntegrityError
from ..store import naming
from ..zk import paths
from ..zk.rounds import OPEN_ROUND_KEYS, RoundBarrier
from . import merge as _merge

log = logging.getLogger(__name__)


def damaged(cluster: Cluster, round_doc: dict[str, Any]) -> list[str]:
    """The parameter files of a round (its document) that are not what was written: missing, cut,
    or whose data's sum is not the one recorded. Only rounds with recorded sums, on local stores
    (on an object store an object is whole or absent, and reading every part at every worker's
    start would cost a model-sized download)."""
    params = round_doc.get("params") or []
    sums = round_doc.get("sums") or []
    if not cluster.store.local or isinstance(params, str) or len(sums) != len(params):
        return []
    bad = []
    for rel, want in zip(params, sums):
        if not want:
            continue
        try:
            ok = _merge.data_sum(cluster.store, rel) == want
        except IntegrityError:
            ok = False
        if not ok:
            bad.append(rel)
    return bad


def roll_back(cluster: Cluster, barrier: RoundBarrier, r: int, bad: list[str]) -> int | None:
    """Take the job from round ``r``, whose parameter files ``bad`` are damaged, back to the newest
    earlier round that is still whole (not tidied, its own parameters intact); that round.

    None if the job is no longer at round ``r`` (another worker rolled it back or moved it on:
    read it again). IntegrityError if no round is left to go back to."""
    job = barrier.job
    doc, version = barrier.job_doc()
    if int(doc.get("round", -1)) != r or doc.get("state") == "done":
        return None
    target = None
    docs: dict[int, dict[str, Any]] = {}
    for k in range(r - 1, -1, -1):
        rd = barrier.round_doc(k)
        if rd is None or rd.get("state") != "merged" or cluster.zk.exists(paths.round_done(job, k)) is None:
            break  # tidied: its input parameters are gone, and so is every older round's
        docs[k] = rd
        if not damaged(cluster, rd):
            target = k
            break
    if target is None:
        raise IntegrityError(
            f"round {r} of job {job} cannot start: its parameters {bad[0]} are not what was written "
            "(lost in an OS crash before they reached the disk?) and no earlier round is left to go back to",
            hint="train the job again under a new name",
        )
    rd_k = docs[target]
    later = [barrier.round_doc(j) or {} for j in range(target + 1, r + 1)]
    merged_since = [d.get("path") for j in range(target + 1, r + 1) for d in barrier.merged_parts(j).values()]
    reopened = {key: rd_k[key] for key in OPEN_ROUND_KEYS if key in rd_k}
    if not barrier.reopen(target, version, dict(doc, round=target, words=int(rd_k.get("words_before", 0))), reopened):
        return None
    # now unreferenced: the parameters merged since (the later rounds' inputs), their
    # contributions, and the logs of the rounds merged again (each is written anew on its publish)
    keep = set(_merge_inputs(rd_k))
    for j, rd in zip(range(target + 1, r + 1), later):
        for rel in _merge_inputs(rd):
            if rel not in keep:
                cluster.store.delete(rel)
        cluster.store.delete_dir(posixpath.dirname(naming.contribution_file(job, j, "x")))
    for rel in merged_since:  # parts of a merge under way at the crash
        if rel and rel not in keep:
            cluster.store.delete(rel)
    for j in range(target, r):
        cluster.store.delete(naming.round_log(job, j))
    log.warning("job %s: round %d's parameters were damaged (%s); went back to round %d, which is merged again", job, r, ", ".join(bad), target)
    return target


def _merge_inputs(rd: dict[str, Any]) -> list[str]:
    p = rd.get("params") or []
    return [p] if isinstance(p, str) else list(p)
