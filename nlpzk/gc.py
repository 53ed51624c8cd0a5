"""Garbage in the store: files no registry document points at.

A file is published by registering it *after* writing it, so a crash between the two leaves a file
with no znode (or a ``.tmp-`` file from a write that never finished). ``find_garbage`` lists them;
``collect`` deletes them. Files younger than ``older_than`` seconds are left alone: they may belong to
a writer that is about to register them right now.

Several chroots (installations) may share one store. A file under a name this registry does not know
at all (``corpora/<unknown>/...``) may belong to another chroot, so it is only reported, as
``unknown owner``, and deleted only with ``include_unknown=True``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Iterable

import pyarrow.fs as pafs
from kazoo.exceptions import BadVersionError, NoNodeError

from .cluster import Cluster, public_functions
from .store import is_tmp
from .zk import paths, registry, versioned

# Top-level store folders nlpzk writes; anything else in the store is not ours and never touched.
MANAGED_PREFIXES = ("corpora", "vocab", "jobs", "models")
DAMAGED = "owner's registry damaged"


@dataclasses.dataclass(frozen=True)
class Garbage:
    path: str
    bytes: int
    age_seconds: float
    reason: str  # "unfinished write" | "not registered" | "unknown owner" | "owner's registry damaged"


def referenced_paths(cluster: Cluster) -> set[str]:
    """Every store path named by any document in the registry (any string under a managed folder)."""
    return _scan_registry(cluster)[0]


def _scan_registry(cluster: Cluster) -> tuple[set[str], set[tuple[str, str]]]:
    """``(referenced paths, damaged owners)``. An owner (store folder, name) is damaged when one of its
    znodes holds data that is not a JSON document (nor a tag's version name): the paths that node
    named are unknown, so none of that owner's files may be called garbage."""
    refs: set[str] = set()
    damaged: set[tuple[str, str]] = set()
    prefixes = dict(zip(paths.ROOTS, MANAGED_PREFIXES))
    for root in paths.ROOTS:
        for znode, doc in registry.walk(cluster.zk, root):
            if doc is None:
                try:
                    data, _ = cluster.zk.get(znode)
                except NoNodeError:
                    continue
                text = data.decode("utf-8", "replace").strip()
                parts = znode[len(root):].strip("/").split("/")
                if _raw_value_node(root, parts) or _VERSION_VALUE.fullmatch(text):
                    continue  # a fence, merge owner, tag or once-marker: a bare value by design, no store path
                refs.update(m.group(0) for m in _PATH_LIKE.finditer(text))  # whatever is still legible
                if parts and parts[0]:
                    damaged.add((prefixes[root], parts[0]))
                continue
            refs.update(_paths_in(doc))
    return refs, damaged


_VERSION_VALUE = re.compile(r'"?v\d{10}"?')


def _raw_value_node(root: str, parts: list[str]) -> bool:
    """A znode whose data is a bare value, not a JSON document: shard and merge-part fences (the
    holder's name), a round's ephemeral ``merge`` node (the merger's name), tags and once-markers.
    ``parts``: its path below ``root``. Recognised by position, not by name alone: a job, model or
    vocabulary may itself be called ``merge`` or ``tags``, and its damaged node must count."""
    n = len(parts)
    if root == paths.JOBS:
        return (n == 3 and parts[1] in ("fences", "mfences")) or (n == 4 and parts[1] == "rounds" and parts[3] == "merge")
    if root in (paths.VOCAB, paths.MODELS) and n == 3 and parts[1] == "tags":
        return True
    return root == paths.MODELS and ((n == 3 and parts[1] == "once") or (n == 5 and parts[1] == "evals" and parts[3] == "fences"))


_PATH_LIKE = re.compile(r"(?:%s)/[^\"\s,}\]]+" % "|".join(MANAGED_PREFIXES))


def _paths_in(doc: Any) -> Iterable[str]:
    # Any string naming a file in a managed folder counts, whatever its key: a finished job keeps its
    # vectors under ``final.vectors``, its last parameters in ``final.params`` and round logs under
    # ``log``. Matching on key names alone let gc delete those (found by tests/faults).
    if isinstance(doc, str):
        if "/" in doc and doc.split("/", 1)[0] in MANAGED_PREFIXES:
            yield doc
    elif isinstance(doc, dict):
        for value in doc.values():
            yield from _paths_in(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _paths_in(item)


def known_owners(cluster: Cluster) -> set[tuple[str, str]]:
    """``(store folder, name)`` of every corpus, vocabulary, job and model this registry holds, and of
    every job being created (``/pending/jobs``: its files are written before its node exists)."""
    roots = dict(zip(MANAGED_PREFIXES, (paths.CORPORA, paths.VOCAB, paths.JOBS, paths.MODELS)))
    owners = {(prefix, name) for prefix, root in roots.items() for name in registry.children(cluster.zk, root)}
    return owners | {("jobs", name) for name in registry.children(cluster.zk, f"{paths.PENDING}/jobs")}


def find_garbage(cluster: Cluster, *, older_than: float = 3600.0, now: float | None = None) -> list[Garbage]:
    store = cluster.store
    # Read the registry first: a file registered after this point is younger than the listing below
    # would need to be to count as garbage, as long as older_than exceeds a write-and-register.
    refs, damaged = _scan_registry(cluster)
    owners = known_owners(cluster)
    now = time.time() if now is None else now
    out = []
    for prefix in MANAGED_PREFIXES:
        selector = pafs.FileSelector(store.full(prefix), recursive=True, allow_not_found=True)
        root = store.root.rstrip("/") + "/"
        for info in store.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(root):] if info.path.startswith(root) else info.path
            if rel in refs:
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
            age = now - mtime
            if age < older_than:
                continue
            parts = rel.split("/")
            if len(parts) >= 3 and (parts[0], parts[1]) in damaged:
                reason = DAMAGED  # never deleted: the damaged znode may have named it
            elif len(parts) < 3 or (parts[0], parts[1]) not in owners:
                reason = "unknown owner"
            else:
                reason = "unfinished write" if is_tmp(rel) else "not registered"
            out.append(Garbage(rel, info.size or 0, round(age, 1), reason))
    return sorted(out, key=lambda g: g.path)


def deletes(g: Garbage, include_unknown: bool = False) -> bool:
    """Whether :func:`collect` deletes ``g`` (``--dry-run``: would delete it). Never a file of a name
    whose registry is damaged (which files it names is unknown); one of an unknown owner (another
    chroot's, maybe) only with ``include_unknown``."""
    return g.reason != DAMAGED and (g.reason != "unknown owner" or include_unknown)


def collect(cluster: Cluster, *, older_than: float = 3600.0, dry_run: bool = False, include_unknown: bool = False) -> list[Garbage]:
    """Delete (unless ``dry_run``) and return the garbage; ``unknown owner`` files only with ``include_unknown``."""
    garbage = find_garbage(cluster, older_than=older_than)
    if not dry_run:
        for g in garbage:
            if deletes(g, include_unknown):
                cluster.store.delete(g.path)
        _drop_stale_pending(cluster, older_than)
        _drop_orphan_evaluations(cluster, older_than)
        _drop_guards_of_deleted_names(cluster)
    return garbage


def _drop_guards_of_deleted_names(cluster: Cluster) -> None:
    """Delete the guard nodes (``/guards/corpora/<c>``, ``/guards/vocab/<v>``) of names that no
    longer exist. A delete removes its guard only while nobody holds it; a holder that let go while
    disconnected (or died) kept its hold until its session ended, and the empty guard stayed behind.
    ``drop_guard`` leaves one that is held now, so no grace period is needed."""
    zk = cluster.zk
    for kind, root in (("corpora", paths.CORPORA), ("vocab", paths.VOCAB)):
        for name in registry.children(zk, f"{paths.GUARDS}/{kind}"):
            if zk.exists(f"{root}/{name}") is None:
                versioned.drop_guard(zk, f"{paths.GUARDS}/{kind}/{name}")


def _drop_orphan_evaluations(cluster: Cluster, older_than: float) -> None:
    """Delete the znodes of held-out evaluations whose coordinator died (``model eval --workers`` killed:
    its ephemeral ``owner`` node went with its session) once older than the grace period."""
    zk = cluster.zk
    for model in registry.children(zk, paths.MODELS):
        for eval_id in registry.children(zk, paths.model_evals(model)):
            base = paths.model_eval(model, eval_id)
            stat = zk.exists(base)
            if stat is None or zk.exists(f"{base}/owner") is not None:
                continue
            if time.time() - stat.ctime / 1000.0 >= older_than:
                registry.delete_tree(zk, base)


def _drop_stale_pending(cluster: Cluster, older_than: float) -> None:
    """Delete the pending mark of a job creation that was killed (no job node, no files left, older
    than the grace period) or that finished without removing it."""
    zk = cluster.zk
    for name in registry.children(zk, f"{paths.PENDING}/jobs"):
        mark = paths.pending_job(name)
        stat = zk.exists(mark)
        if stat is None:
            continue
        done = zk.exists(paths.job(name)) is not None
        stale = time.time() - stat.mtime / 1000.0 >= older_than and not cluster.store.list(f"jobs/{name}")
        if done or stale:
            try:
                zk.delete(mark, version=stat.version)
            except (NoNodeError, BadVersionError):
                pass


public_functions(globals(), ["referenced_paths", "known_owners", "find_garbage", "collect"])  # called from outside nlpzk, they raise only NlpzkError
