"""Listing versions, moving tags, diffing two versions, exporting a version to formats others read, deleting."""

from __future__ import annotations

import io
import json
import os
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..cluster import Cluster
from ..errors import ConflictError, IntegrityError, InvalidInputError, NlpzkError, NotFoundError, first_few
from ..store import naming
from ..zk import paths, registry, versioned
from ._view import UNK, VERSION_KEYS, VocabView, Vocabulary, check_exists, load_table, resolve

EXPORT_FORMATS = ("txt", "json", "freq")


def _version_arg(version: int | str) -> tuple[int | None, str | None]:
    """``3`` / ``"v3"`` / ``"3"`` -> a number; anything else is a tag."""
    if isinstance(version, int) and not isinstance(version, bool):
        return version, None
    text = str(version)
    if text.isdigit() or (text[:1] in "vV" and text[1:].isdigit()):
        return paths.parse_version(text), None
    return None, paths.check_name("tag", text)


def versions(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """Every version of ``name`` (oldest first) with the tags pointing at it, ``state`` ``"ok"``.

    A version whose node was changed outside nlpzk is a row too, as in ``vocab list``'s listing of
    names (``registry.damaged_row``: ``state`` ``"damaged"``, ``damaged`` what is wrong and what to
    do; ``name``, ``version``, ``version_name`` and ``tags`` known), not an error hiding the others.
    """
    check_exists(cluster, name)
    base = paths.vocab(name)
    if registry.is_deleting(cluster.zk, base):  # `list NAME` and `verify` too (its files may be gone)
        raise registry.being_deleted(base)
    tags = versioned.tags(cluster.zk, base)
    damaged: dict[int, NlpzkError] = {}
    docs = dict(registry.list_versions(cluster.zk, base, required=VERSION_KEYS, damaged=damaged))
    rows = []
    for number in sorted({*docs, *damaged}):
        on = sorted(t for t, v in tags.items() if v == number)
        if number in damaged:
            rows.append(registry.damaged_row(("path", "rows", "active", "parent", "corpus", "params", "tokens", "min_count", "unk_id"), damaged[number],
                                             name=name, version=number, version_name=paths.version_name(number), tags=on))
        else:
            rows.append(version_document(name, number, docs[number], on, _unk_id(cluster, name, number, docs)))
    return rows


def version_document(name: str, number: int, doc: dict[str, Any], tags: list[str], unk_id: int | None) -> dict[str, Any]:
    """One version as ``vocab build``, ``vocab list NAME`` and ``vocab show`` print it (``--json``): its
    registry document (``rows``, ``active``, ``params``, ``path``, ``sha256``, ``size``, ``parent``, ...)
    with ``name``, ``version``, ``version_name`` (the znode's), ``tokens`` (= ``rows``), ``min_count``,
    ``unk_id`` (the id of ``<unk>`` when it is a special, else -1), ``tags`` (those on it, sorted), and
    ``state`` ``"ok"`` / ``damaged`` None (the shape of ``vocab list NAME``'s rows, damaged ones too)."""
    return dict(
        doc, name=name, version=number, version_name=paths.version_name(number), tokens=int(doc["rows"]),
        min_count=int((doc.get("params") or {}).get("min_count", 1)), unk_id=unk_id, tags=sorted(tags),
        state="ok", damaged=None,  # as a damaged version's row in vocab list NAME has them (see versions)
    )


def _unk_id(cluster: Cluster, name: str, number: int, docs: dict[int, dict[str, Any]]) -> int | None:
    """:attr:`VocabView.unk_id` of version ``number`` from the registry documents of its vocabulary,
    reading its table only when they cannot tell (None if it cannot be read: ``vocab verify`` says why)."""
    doc = docs[number]
    specials = list((doc.get("params") or {}).get("specials") or ())
    if UNK not in specials:
        return -1
    parent = doc.get("parent")
    if not parent:
        return specials.index(UNK)  # specials come first, in the order given
    if parent in docs and UNK in ((docs[parent].get("params") or {}).get("specials") or ()):
        return _unk_id(cluster, name, parent, docs)  # a child keeps its parent's ids
    # added by this version: after its parent's rows, unless the parent had it as a plain token
    try:
        pos = pc.index(load_table(cluster, name, number, doc, verify=False)["token"], UNK).as_py()
    except NlpzkError:
        return None
    return -1 if pos is None or pos < 0 else pos


def vocabularies(cluster: Cluster) -> list[dict[str, Any]]:
    """One row per vocabulary: its name, number of versions and tags (``{tag: version number}``, as
    ``model list`` and ``status`` give them)."""
    rows = []
    for name in Vocabulary.names(cluster=cluster):
        base = paths.vocab(name)
        try:
            rows.append(
                {
                    "name": name,
                    "versions": len(registry.children(cluster.zk, f"{base}/versions")),
                    "tags": dict(sorted(versioned.tags(cluster.zk, base).items())),
                    "deleting": registry.is_deleting(cluster.zk, base),
                    "state": "ok",
                    "damaged": None,
                }
            )
        except IntegrityError as exc:  # its node or a tag changed outside nlpzk: a row, as in train list
            rows.append(registry.damaged_row(("name", "versions", "tags", "deleting"), exc, name=name, deleting=False))
    return rows


def verify(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """Check every version's file: present, matching its sha256, a readable table with the registered row count."""
    out = []
    for row in versions(cluster, name):
        if row["damaged"]:  # its node, not its file: the file cannot even be found
            out.append({"version": row["version"], "path": None, "ok": False, "problem": row["damaged"]})
            continue
        problem = None
        try:
            table = load_table(cluster, name, row["version"], row)
            if table.num_rows != row.get("rows"):
                problem = f"{table.num_rows} rows, registry says {row.get('rows')}"
        except IntegrityError as exc:
            problem = exc.message
        out.append({"version": row["version"], "path": row["path"], "ok": problem is None, "problem": problem})
    return out


def tag(cluster: Cluster, name: str, version: int | str, tag: str) -> int:
    """Point ``tag`` at ``version`` (a number, ``"v3"``, or another tag); return the version number."""
    check_exists(cluster, name)
    number, _ = resolve(cluster, name, *_version_arg(version))
    registry.move_tag(cluster.zk, paths.vocab(name), tag, number)
    return number


def untag(cluster: Cluster, name: str, tag: str) -> None:
    """Remove ``tag`` (NotFoundError if it is not there). ``latest`` cannot be removed: a plain NAME
    means NAME:latest, and builds and deletes keep it on the newest version."""
    if tag == "latest":
        raise InvalidInputError(
            "the latest tag cannot be removed: a plain vocabulary name means NAME:latest",
            hint=f"point it at another version with: nlpzk vocab tag {name} vN latest",
        )
    check_exists(cluster, name)
    if registry.is_deleting(cluster.zk, paths.vocab(name)):
        raise registry.being_deleted(paths.vocab(name))
    if not versioned.delete_tag(cluster.zk, paths.vocab(name), tag):
        raise NotFoundError(f"vocabulary {name!r} has no tag {tag!r}", hint=f"see its tags: nlpzk vocab list {name}")


def _rows(tokens: pa.Array, ids: np.ndarray, counts: np.ndarray, limit: int) -> list[dict[str, Any]]:
    sel = ids[:limit]
    return [{"token": t, "id": int(i), "count": int(c)} for t, i, c in zip(pc.take(tokens, pa.array(sel)).to_pylist(), sel, counts[sel])]


def diff(cluster: Cluster, name: str, a: int | str, b: int | str, *, limit: int = 20) -> dict[str, Any]:
    """What changed from version ``a`` to ``b``: tokens added, removed, newly marked inactive
    (or active again), and the largest count changes. Lists hold at most ``limit`` entries each;
    the ``*_total`` fields count them all.
    """
    check_exists(cluster, name)
    va = Vocabulary.open(name, *_version_arg(a), cluster=cluster)
    vb = Vocabulary.open(name, *_version_arg(b), cluster=cluster)
    ta, tb = va.tokens, vb.tokens
    pos_in_a = pc.index_in(tb, value_set=ta)  # for each token of b, its id in a (or null)
    in_a = pc.is_valid(pos_in_a).to_numpy(zero_copy_only=False)
    added_ids = np.flatnonzero(~in_a)
    removed_ids = np.flatnonzero(~pc.is_in(ta, value_set=tb).to_numpy(zero_copy_only=False))
    common_b = np.flatnonzero(in_a)
    common_a = pc.filter(pos_in_a, pc.is_valid(pos_in_a)).to_numpy(zero_copy_only=False).astype(np.int64)
    act_a, act_b = va.active[common_a], vb.active[common_b]
    marked = common_b[act_a & ~act_b]
    unmarked = common_b[~act_a & act_b]
    delta = vb.counts[common_b] - va.counts[common_a]
    order = np.lexsort((common_b, -np.abs(delta)))  # biggest change first, ties by id
    order = order[delta[order] != 0][:limit]
    changes = [
        {"token": t, "id": int(common_b[k]), "before": int(va.counts[common_a[k]]), "after": int(vb.counts[common_b[k]]), "change": int(delta[k])}
        for t, k in zip(pc.take(tb, pa.array(common_b[order])).to_pylist(), order)
    ]
    return {
        "name": name,
        "a": va.version,
        "b": vb.version,
        "size_a": len(va),
        "size_b": len(vb),
        "ids_stable": bool(np.array_equal(common_a, common_b)),
        "added_total": int(len(added_ids)),
        "added": _rows(tb, added_ids, vb.counts, limit),
        "removed_total": int(len(removed_ids)),
        "removed": _rows(ta, removed_ids, va.counts, limit),
        "marked_total": int(len(marked)),
        "marked": _rows(tb, marked, vb.counts, limit),
        "unmarked_total": int(len(unmarked)),
        "unmarked": _rows(tb, unmarked, vb.counts, limit),
        "changed_total": int(np.count_nonzero(delta)),
        "changes": changes,
    }


def _check_plain(view: VocabView, fmt: str) -> None:
    bad = pc.match_substring_regex(view.tokens, r"[\s]|^$")
    if pc.any(bad).as_py():
        first = pc.filter(view.tokens, bad)[0].as_py()
        raise InvalidInputError(
            f"token {first!r} of {view.name!r} v{view.version} contains whitespace or is empty, which format {fmt!r} cannot hold",
            hint="export --format json instead",
        )


def write_export(view: VocabView, fmt: str, out: IO[str]) -> int:
    """Write ``view`` to the text stream ``out`` in ``fmt``; return the number of tokens written.

    * ``txt``: one token per line, line i = id i (``vocab.txt``, as BERT-style tokenizers read it);
    * ``json``: ``{"token": id, ...}`` in id order;
    * ``freq``: ``token count`` per line in id order (word2vec's ``-save-vocab`` file, read by gensim's
      ``KeyedVectors.load_word2vec_format(..., fvocab=...)``).
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(EXPORT_FORMATS)}")
    view = view.pinned()  # tokens and counts of one version, even if a followed view switches meanwhile
    tokens = view.tokens.to_pylist()
    if fmt == "json":
        json.dump({t: i for i, t in enumerate(tokens)}, out, ensure_ascii=False, indent=0)
        out.write("\n")
        return len(tokens)
    _check_plain(view, fmt)
    if fmt == "txt":
        out.writelines(t + "\n" for t in tokens)
    else:
        out.writelines(f"{t} {c}\n" for t, c in zip(tokens, view.counts.tolist()))
    return len(tokens)


def export(view: VocabView, fmt: str, path: str | os.PathLike[str]) -> int:
    """Write ``view`` to the local file ``path`` (atomically: a temporary file renamed into place;
    the same one-line errors as the other ``--out`` commands, see ``models.atomic_local_write``)."""
    from ..models import atomic_local_write

    written: list[int] = []

    def write(fh) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="\n")
        written.append(write_export(view, fmt, text))
        text.flush()
        text.detach()  # the caller closes the file

    atomic_local_write(os.fspath(path), write)
    return written[0]


def users(cluster: Cluster, name: str, number: int | None = None) -> list[str]:
    """What still needs vocabulary ``name`` (version ``number``, or any version): ``"model M@vN"`` for
    model versions trained on it, ``"job J (running)"`` for jobs not finished (they read it every
    time a worker starts or the job resumes) and ``"job J (finished, not registered)"`` for finished
    jobs whose vectors no model holds yet (registering them needs it). A finished job whose vectors
    are registered is not counted: the model version is. None found but a job whose node is damaged
    (which may use it): IntegrityError naming it."""
    zk = cluster.zk
    base = paths.vocab(name)
    numbers = versioned.versions(zk, base)
    shas = {n: (d or {}).get("sha256") for n, d in zip(numbers, registry.many_json(zk, [paths.vocab_version(name, n) for n in numbers]))}

    def uses(version: Any, sha: Any) -> bool:  # a user recorded with another table's sha256 used an earlier vocabulary of this name
        return (number is None or version == number) and version in shas and (not sha or sha == shas[version])

    from ..models import from_job
    from ..train.job import job_documents, unchecked_users

    out: list[str] = []
    registered: dict[str, list[dict[str, Any]]] = {}  # job name -> the model versions registered from a job of that name
    for model in registry.children(zk, paths.MODELS):
        mnumbers = versioned.versions(zk, paths.model(model))
        docs = registry.many_json(zk, [paths.model_version(model, n) for n in mnumbers])
        for n, doc in zip(mnumbers, docs):
            doc = doc if isinstance(doc, dict) else {}
            if doc.get("job"):
                registered.setdefault(doc["job"], []).append(doc)
            vocab = doc.get("vocab") or {}
            if vocab.get("name") == name and uses(vocab.get("version"), vocab.get("sha256")):
                out.append(f"model {model}@v{n}")

    jobs = registry.children(zk, paths.JOBS)
    damaged = []
    for job, doc in zip(jobs, job_documents(zk, jobs, keep_damaged=True)):
        if isinstance(doc, registry.CorruptDocumentError):
            damaged.append((job, doc))
            continue
        doc = doc or {}
        spec = doc.get("spec") or {}
        if spec.get("vocab") != name or not uses(spec.get("vocab_version"), spec.get("vocab_sha256")) or doc.get("deleting"):
            continue  # (a job being deleted is going: it reads nothing any more)
        if doc.get("state") != "done":
            out.append(f"job {job} (running)")
        elif not any(from_job(v, job, doc) for v in registered.get(job, ())):  # (not a deleted job of the same name)
            out.append(f"job {job} (finished, not registered)")
    if damaged and not out:  # (with users found, the delete is refused, naming them, all the same)
        raise unchecked_users(f"vocabulary {name}@v{number}" if number is not None else f"vocabulary {name}", damaged)
    return out


def _refuse_if_used(cluster: Cluster, name: str, number: int | None) -> None:
    used = users(cluster, name, number)
    if used:
        what = f"{name}@v{number}" if number is not None else name
        raise ConflictError(
            f"vocabulary {what} is used by {first_few(used)}",
            hint="delete those models, let those jobs finish (and register them) or delete them (nlpzk train delete JOB), or pass --force (their ids then map to a vocabulary that no longer exists)",
        )


def delete(cluster: Cluster, name: str, version: int | str | None = None, *, force: bool = False) -> dict[str, Any]:
    """Delete one version of vocabulary ``name`` (a number, ``"v3"`` or a tag) or, with ``version=None``, all of it.

    Refused (ConflictError, naming them) while a model version or a training job needs what would be
    deleted (:func:`users`), unless ``force``: their ids then belong to a vocabulary nobody can read.
    "Look for users, then delete" is one step against job creations: the delete's transaction sets
    the vocabulary's guard node (``/guards/vocab/<name>``) at the znode version read before looking,
    and every job creation on the vocabulary sets it too (``train.create_job``), so whichever
    commits second fails and looks again (:class:`nlpzk.zk.versioned.GuardHold`). A whole
    vocabulary's guard goes with it.
    One version: its znode and tags go in that transaction (``latest`` moves back to the highest
    remaining version), then its file. A whole vocabulary: that transaction marks the base as
    being deleted (refused everywhere from then on), then its files go, then its znodes; a delete
    stopped half-way is finished by running it again.
    Returns ``{"name", "deleted": [numbers], "tags": [tags removed or moved]}``.
    """
    zk = cluster.zk
    base = paths.vocab(name)
    meta = registry.maybe_json(zk, base)
    if meta is None:
        raise NotFoundError(f"unknown vocabulary {name!r}", hint="see: nlpzk vocab list")
    resuming = isinstance(meta, dict) and bool(meta.get("deleting"))
    number = None
    if version is not None:
        number, _ = resolve(cluster, name, *_version_arg(version))
    guard_path = paths.vocab_users(name)
    with versioned.GuardHold(zk, guard_path, base) as hold:
        for _ in versioned.guard_attempts(f"deleting vocabulary {name!r}"):
            # --force looks at nothing: it sets the guard whatever its version
            guard = hold.version()  # (created if missing)
            guard = -1 if force else guard
            if not force and not resuming:
                _refuse_if_used(cluster, name, number)
            try:
                if number is not None:
                    doc, _ = registry.get_json(zk, paths.vocab_version(name, number), what=f"vocabulary {name}@v{number}")
                    touched = versioned.delete_version(zk, base, number, guard=(guard_path, guard), hold=hold)
                    if doc.get("path"):
                        cluster.store.delete(doc["path"])
                    return {"name": name, "deleted": [number], "tags": touched}
                if not resuming:  # a marked vocabulary passed this look when it was marked
                    try:
                        versioned.mark_deleting_guarded(zk, base, guard_path, guard, hold=hold)
                    except NotFoundError:
                        raise NotFoundError(f"unknown vocabulary {name!r} (deleted meanwhile)", hint="see: nlpzk vocab list") from None
                break
            except versioned.GuardChanged:
                continue  # a job was created (or a model registered) on it meanwhile: look again
    numbers = versioned.versions(zk, base)  # complete: no version is published under a marked base
    docs = [(n, registry.maybe_json(zk, paths.vocab_version(name, n))) for n in numbers]
    for _, doc in docs:
        if isinstance(doc, dict) and doc.get("path"):
            cluster.store.delete(doc["path"])
    cluster.store.delete_dir(naming.vocab_dir(name))
    versioned.delete_tree(zk, base)
    versioned.drop_guard(zk, guard_path)  # (left if a job creation or a model registration holds it: its release drops it)
    return {"name": name, "deleted": [n for n, _ in docs], "tags": []}
