"""Building a vocabulary version: count a corpus's shards, assign ids, write the table, register it.

Order of work (nothing half-done is ever registered):

1. check every argument and resolve the parent (same vocabulary only) and the corpus;
2. count the shards, each checked against its registered sha256 first (optionally over several
   processes; the merge is exact);
3. assign ids (:mod:`._table`) and write the table to the store under a unique name;
4. register ``/vocab/<name>/versions/vN`` and move the tags in one transaction
   (:func:`nlpzk.zk.registry.publish_version`). If registering fails, the file is deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any, Sequence

from kazoo.exceptions import NoAuthError

from ..cluster import Cluster
from ..corpus import Corpus
from ..errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError
from ..store import naming
from ..zk import paths, registry
from . import _count, _table
from ._view import VocabView, _Snapshot, check_exists, load_table, parse_spec, resolve


def shard_set_hash(shards) -> str:
    """sha256 over the sorted ``id:sha256`` of the shards counted: which exact data a version saw."""
    h = hashlib.sha256()
    for s in sorted(shards, key=lambda s: s.id):
        h.update(f"{s.id}:{s.sha256}\n".encode())
    return h.hexdigest()


def _parent_number(cluster: Cluster, name: str, parent: int | str) -> int:
    """``3``, ``"v3"``, ``"stable"``, ``"name@v3"`` or ``"name:stable"`` -> a version number of ``name``."""
    if isinstance(parent, int) and not isinstance(parent, bool):
        version, tag = parent, None
    elif isinstance(parent, str) and parent:
        if "@" in parent or ":" in parent:
            other, version, tag = parse_spec(parent)
            if other != name:
                raise InvalidInputError(
                    f"parent {parent!r} belongs to vocabulary {other!r}, not {name!r}",
                    hint="ids are only stable within one vocabulary; give a version or tag of the vocabulary being built",
                )
        elif parent[:1] in "vV" and parent[1:].isdigit() or parent.isdigit():
            version, tag = paths.parse_version(parent), None
        else:
            version, tag = None, paths.check_name("tag", parent)
    else:
        raise InvalidInputError(f"parent must be a version (v3) or a tag, not {parent!r}")
    check_exists(cluster, name)
    number, _ = resolve(cluster, name, version, tag)
    return number


def build(
    cluster: Cluster,
    name: str,
    corpus: str,
    *,
    min_count: int = 1,
    max_size: int | None = None,
    parent: int | str | None = None,
    specials: Sequence[str] = (),
    tags: Sequence[str] = ("latest",),
    processes: int = 1,
) -> VocabView:
    """Count ``corpus`` and register the next version of vocabulary ``name``; return a view of it.

    ``parent`` (a version number, ``"v3"`` or a tag of the same vocabulary) makes the new version keep
    every id of the parent and append new tokens. ``tags`` are moved to the new version in the same
    ZooKeeper transaction that registers it. ``view.version`` is the new version number.

    >>> v = build(cluster, "wiki", "wiki-2024", min_count=5, specials=["<unk>"])   # doctest: +SKIP
    """
    paths.check_name("vocabulary", name)
    specials = _table.check_params(min_count, max_size, specials)
    tags = [paths.check_tag(t) for t in tags]
    if not isinstance(processes, int) or processes < 1:
        raise InvalidInputError(
            f"--processes must be an integer >= 1, not {processes!r}", hint=f"use --processes 1 to count in this process only, or up to the number of cores ({os.cpu_count() or 1})"
        )

    parent_number = parent_table = None
    parent_specials: list[str] = []
    if parent is not None:
        parent_number = _parent_number(cluster, name, parent)
        pdoc, _ = registry.get_json(cluster.zk, paths.vocab_version(name, parent_number))
        parent_table = load_table(cluster, name, parent_number, pdoc)
        parent_specials = list(pdoc.get("params", {}).get("specials", ()))

    source = Corpus.open(corpus, cluster=cluster)
    shards = source.shards
    if not shards:
        raise InvalidInputError(f"corpus {corpus!r} has no shards", hint=f"ingest text first: nlpzk corpus ingest {corpus} FILES...")
    try:
        counts = _count.count_shards(
            cluster.store, [s.path for s in shards], processes=processes, weights=[s.tokens for s in shards], sha256s=[s.sha256 for s in shards]
        )
    except IntegrityError as exc:  # a shard file missing or damaged: the store's own hint names no command
        raise IntegrityError(exc.message, hint=f"check the corpus with: nlpzk corpus verify {corpus}") from None
    if counts.num_rows == 0:
        raise InvalidInputError(f"corpus {corpus!r} has no tokens", hint="ingest non-empty text first")

    table = _table.assign_ids(
        counts, min_count=min_count, max_size=max_size, specials=specials, parent=parent_table, parent_specials=parent_specials
    )
    if not table["active"].combine_chunks().true_count:
        import pyarrow.compute as pc

        top = pc.max(counts["count"]).as_py()
        raise InvalidInputError(
            f"no token of corpus {corpus!r} occurs {min_count} times or more (the most frequent occurs {top} times): the vocabulary would be empty",
            hint=f"use a lower --min-count (at most {top})",
        )
    params = {"min_count": min_count, "max_size": max_size, "specials": _table.merged_specials(parent_specials, specials)}
    shard_info = {"count": len(shards), "tokens": int(sum(s.tokens for s in shards)), "hash": shard_set_hash(shards)}
    # What the file says about itself: deterministic (no time, no version number, no nonce), so the
    # same inputs give the same bytes and sha256.
    inputs = {"vocabulary": name, "corpus": corpus, "shards": shard_info["hash"], "parent": parent_number, "params": params}
    metadata = {"nlpzk.vocab": json.dumps(inputs, sort_keys=True), "nlpzk.fingerprint": _table.fingerprint(inputs)}

    base = paths.vocab(name)
    # Claim the name before writing: a build killed between writing and registering then leaves a
    # file that gc attributes to this registry ("not registered"), not to an unknown other chroot.
    cluster.zk.ensure_path(base)
    nonce = uuid.uuid4().hex[:12]
    where = {"path": naming.vocab_file(name, registry.peek_next_version(cluster.zk, base), nonce)}
    store = cluster.store
    with store.atomic_output(where["path"]) as out:
        _table.write_table(table, out, metadata)

    def at_number(number: int) -> dict[str, Any]:
        # Keep the file named after the version it is registered as, even after losing a race.
        target = naming.vocab_file(name, number, nonce)
        if target != where["path"]:
            store.move(where["path"], target)
            where["path"] = target
        return {"path": target}

    doc = {
        "sha256": out.sha256,
        "size": out.bytes,
        "rows": table.num_rows,
        "active": int(table["active"].combine_chunks().true_count),
        "parent": parent_number,
        "corpus": corpus,
        "shards": shard_info,
        "params": params,
        "nonce": nonce,
    }
    try:
        number = registry.publish_version(cluster.zk, base, doc, tags=tags, prepare=at_number, create_base=False)
    except (ConflictError, NotFoundError, NoAuthError):
        # Known not registered (NotFoundError: the vocabulary was deleted meanwhile; its file would
        # have no owner gc knows; NoAuthError: the ACL refused the whole transaction). On any other failure (a lost connection) the outcome is unknown, so
        # the file stays: an unregistered file is garbage, a registered one without its file is an error.
        store.delete(where["path"])
        raise
    vdoc, _ = registry.get_json(cluster.zk, paths.vocab_version(name, number))
    return VocabView(cluster, _Snapshot(name, number, vdoc, table))
