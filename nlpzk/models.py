"""Trained vectors as numbered model versions, each tied to the vocabulary version it was trained with.

A version is an Arrow IPC file in the store (``token``, ``count``, ``vector`` rows in vocabulary-id
order; memory-mapped when the store is local) plus a small znode::

    /models/<name>/versions/vN   {path, sha256, bytes, words, dim, vocab: {name, version, sha256}, job, spec, eval, train_scores}
    /models/<name>/tags/<tag>    "vN"

>>> model = Model.open("wiki", tag="stable", cluster=cluster)     # doctest: +SKIP
>>> model.kv.most_similar("king", topn=3)                          # doctest: +SKIP
>>> model.vocab.id("king")                                         # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
import uuid
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
from kazoo.exceptions import NoNodeError

from .cluster import Cluster, default_cluster, public, public_functions
from .errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError, StoreError
from .store import naming, new_file_mode
from .zk import paths, registry, versioned

__all__ = ["Model", "register_model", "register_job", "RegistrationDeleted", "parse_ref", "list_models", "model_doc", "tag_model", "untag_model", "delete_model", "store_scores", "WordNotFoundError"]

_REF = re.compile(r"^(?P<name>[^@:]+)(?:@(?P<version>[^@:]+)|:(?P<tag>[^@:]+))?$")


class WordNotFoundError(NotFoundError):
    """A word the model has no vector for; the hint names close tokens it does have."""


class RegistrationDeleted(ConflictError):
    """:func:`register_job` without ``again``: the job's vectors were registered as ``name@v<number>``,
    and that version has been deleted since (a user's decision that a re-run must not undo)."""

    def __init__(self, message: str, name: str, number: int, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.name = name
        self.number = number


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``'wiki'``, ``'wiki@3'``, ``'wiki@v3'``, ``'wiki:stable'`` -> ``(name, version, tag)``."""
    m = _REF.match(ref.strip())
    if not m:
        raise InvalidInputError(f"{ref!r} is not a model reference", hint="use NAME, NAME@v3 or NAME:tag")
    name = paths.check_name("model", m["name"])
    version = paths.parse_version(m["version"]) if m["version"] else None
    tag = paths.check_name("tag", m["tag"]) if m["tag"] else None
    return name, version, tag


def _base(name: str) -> str:
    return paths.model(name)


def _resolve(cluster: Cluster, name: str, version: int | None, tag: str | None) -> int:
    return registry.resolve_version(cluster.zk, _base(name), "model", name, version, tag)


# -- the vectors file ------------------------------------------------------------------------------

def _write_vectors(cluster: Cluster, rel: str, kv, meta: dict[str, str]) -> tuple[str, int]:
    vectors = np.ascontiguousarray(kv.vectors, dtype=np.float32)
    n, dim = vectors.shape
    counts = kv.expandos.get("count") if hasattr(kv, "expandos") else None
    counts = np.zeros(n, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    table = pa.table(
        {
            "token": pa.array([str(k) for k in kv.index_to_key], pa.string()),
            "count": pa.array(counts, pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        }
    ).replace_schema_metadata({f"nlpzk.{k}".encode(): v.encode() for k, v in meta.items()})
    with cluster.store.atomic_output(rel) as out:
        with pa.ipc.new_file(out, table.schema) as writer:
            writer.write_table(table)
    return out.sha256, out.bytes


def _read_vectors(cluster: Cluster, rel: str, sha256: str | None, verify: bool = True):
    """Load a vectors file as gensim ``KeyedVectors`` (vectors memory-mapped on a local store)."""
    from gensim.models import KeyedVectors

    store = cluster.store
    local = store.local_path(rel)
    try:
        if local is not None:
            if not os.path.exists(local):
                raise store.missing(rel, f"model file {rel} is missing from the store", hint="the registry points at a deleted file; delete this version")
            source = pa.memory_map(local, "r")
        else:
            source = pa.BufferReader(store.read_bytes(rel))
        if verify and not sha256:  # every registered version records one: its document was damaged
            raise IntegrityError(f"model file {rel} has no sha256 in its version's document, so it cannot be verified",
                                 hint="the version's znode was changed outside nlpzk; restore it from a ZooKeeper backup, or delete this version")
        if verify:
            # a memory map hashes straight from the page cache, no second copy
            digest = hashlib.sha256(memoryview(source.read_buffer())).hexdigest()
            source.seek(0)
            if digest != sha256:
                raise IntegrityError(f"model file {rel} fails its checksum", hint="the file was changed or truncated; delete this version")
        table = pa.ipc.open_file(source).read_all()
        vec_col = table.column("vector").combine_chunks()
        dim = vec_col.type.list_size
        table.column("token"), table.column("count")
    except (pa.ArrowInvalid, KeyError, AttributeError) as exc:
        raise IntegrityError(f"model file {rel} is not a readable vectors file: {exc}", hint="delete this version and register the vectors again") from None
    except OSError as exc:
        if local is not None and os.path.isdir(local):  # a directory in its place (pyarrow's OSError carries no errno)
            raise IntegrityError(f"model file {rel} cannot be read: {exc}", hint="restore the file, or delete this version") from None
        # an I/O error or a permission says nothing about the file (a remote store raises StoreError)
        raise StoreError(f"store error while reading model file {rel}: {exc}", hint="check the store (permissions, the disk or mount), then try again") from None
    vectors = vec_col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    kv = KeyedVectors(dim, count=0, dtype=np.float32)
    kv.index_to_key = table.column("token").to_pylist()
    kv.key_to_index = {k: i for i, k in enumerate(kv.index_to_key)}
    kv.vectors = vectors
    kv.expandos["count"] = table.column("count").to_numpy()
    kv.next_index = len(kv.index_to_key)
    return kv


# -- registry --------------------------------------------------------------------------------------

def register_model(
    cluster: Cluster,
    name: str,
    kv,
    *,
    vocab_name: str,
    vocab_version: int,
    job: str | None = None,
    spec: dict[str, Any] | None = None,
    tags: Iterable[str] = ("latest",),
    vocab_sha256: str | None = None,
    train_scores: dict[str, Any] | None = None,
    job_created: float | None = None,
    again: bool = True,
) -> int:
    """Write ``kv`` (gensim ``KeyedVectors``, rows in vocabulary-id order) and register it as the next
    version of model ``name``. The file is complete and checksummed before its znode exists.

    The version records the vocabulary version's sha256 with its name and number: a vocabulary
    deleted and built again under the same name starts numbering at v1 again, and its v1 is not
    the table these ids belong to. ``vocab_sha256``: the table the vectors were trained with (a
    job's), refused if the version no longer holds it. With ``job`` and ``job_created``, the job's
    node (if it is still that job) records the version under ``registered`` in the same transaction;
    without ``again``, RegistrationDeleted if that node says (when the transaction commits) that the
    vectors were registered in ``name`` and that version was deleted since (see :func:`register_job`).
    Returns the new version number.
    """
    paths.check_name("model", name)
    tags = [paths.check_name("tag", t) for t in tags]
    vdoc = registry.maybe_json(cluster.zk, paths.vocab_version(vocab_name, vocab_version))
    if not isinstance(vdoc, dict):
        raise NotFoundError(
            f"vocabulary {vocab_name}@v{vocab_version} does not exist",
            hint="a model must be tied to a registered vocabulary version (see: nlpzk vocab list)",
        )
    if vocab_sha256 and vdoc.get("sha256") != vocab_sha256:
        raise NotFoundError(
            f"vocabulary {vocab_name}@v{vocab_version} is not the table these vectors were trained with (it was deleted and built again)",
            hint="their token ids cannot be looked up any more; train again on the current version",
        )
    if len(kv.index_to_key) == 0:
        raise InvalidInputError(f"refusing to register model {name!r} with no vectors")
    nonce = uuid.uuid4().hex[:16]
    rel = naming.model_vectors(name, nonce)
    # Claim the name before writing, so a crash before registering leaves garbage gc can attribute.
    cluster.zk.ensure_path(_base(name))
    sha, size = _write_vectors(cluster, rel, kv, {"model": name, "vocab": f"{vocab_name}@{vocab_version}"})
    doc = {
        "path": rel,
        "sha256": sha,
        "bytes": size,
        "words": len(kv.index_to_key),
        "dim": int(kv.vector_size),
        "vocab": {"name": vocab_name, "version": int(vocab_version), "sha256": vdoc.get("sha256")},
        "job": job,
        # which job of that name (one deleted and created again is another job): see from_job
        **({"job_created": job_created} if job is not None and job_created is not None else {}),
        "spec": spec or {},
        "eval": {},
        # what the job measured at its end (restricted to its 30,000 most frequent words): shown until
        # `model eval` stores scores of its own
        "train_scores": {k: v for k, v in (train_scores or {}).items() if k in TRAIN_SCORES and v is not None},
    }
    try:
        # Against `vocab delete` (a model version is a user of its vocabulary version): set the
        # vocabulary's guard at the version read before checking the version is still this table;
        # a delete that looked for users before we registered sets it too, so one of us looks again.
        with versioned.GuardHold(cluster.zk, paths.vocab_users(vocab_name), paths.vocab(vocab_name)) as hold:
            for _ in versioned.guard_attempts(f"registering model {name!r}"):
                guard = hold.version()
                now = registry.maybe_json(cluster.zk, paths.vocab_version(vocab_name, vocab_version))
                if registry.is_deleting(cluster.zk, paths.vocab(vocab_name)) or not isinstance(now, dict) or now.get("sha256") != vdoc.get("sha256"):
                    raise NotFoundError(f"vocabulary {vocab_name}@v{vocab_version} was deleted meanwhile", hint="a model must be tied to a registered vocabulary version (see: nlpzk vocab list)")
                try:
                    # one version per job, decided in the publishing transaction: the worker that publishes a
                    # job's last round and `train run` (or `model register`) may both register it at once
                    return registry.publish_version(
                        cluster.zk, _base(name), doc, tags=tags, once=None if job is None else _once_key(job, job_created), create_base=False,
                        guards=[(paths.vocab_users(vocab_name), guard), hold.check],
                        also=None if job is None or job_created is None else _job_records(cluster, name, job, job_created, again),
                    )
                except registry.GuardChanged:
                    continue  # a delete (or a job creation) on the vocabulary went first (or the hold went with its session): look again
        raise AssertionError("unreachable")  # guard_attempts raises when its time is up
    except BaseException:
        # Delete the file only when the registry provably does not point at it; if ZooKeeper cannot
        # say (connection lost mid-commit), an orphan file is harmless, a dangling version is not.
        if not cluster.zk.connected:
            # still no connection (publish_version gave up after REQUEST_TIMEOUT without a quorum):
            # reading the versions back would wait as long again; the outcome stays unknown
            raise
        try:
            registered = any(d.get("path") == rel for _, d in _version_docs(cluster, name))
        except Exception:  # noqa: BLE001 - unknown outcome: keep the file
            registered = True
        if not registered:
            cluster.store.delete(rel)
        raise


def _job_records(cluster: Cluster, name: str, job: str, job_created: float, again: bool = True):
    """For ``publish_version(also=)``: the write that makes job ``job``'s node remember that its
    vectors became ``name@vN`` (``registered: {name: N}``), so that a re-run of the finished job
    does not register them again once that version is deleted (see :func:`register_job`). No write
    when the node is gone or is another job of that name: the vectors are registered all the same.

    Without ``again``, RegistrationDeleted if the node (read before each attempt, and checked by its
    znode version in the transaction) already names a version of ``name`` that is not this job's any
    more: registered by another process and deleted by the user since :func:`register_job` looked."""

    def records(number: int) -> list[tuple[str, bytes, int]]:
        try:
            data, stat = cluster.zk.get(paths.job(job))
        except NoNodeError:
            return []
        doc = registry.loads(data, registry.full_path(cluster.zk, paths.job(job)))
        if doc.get("created") != job_created:
            return []
        before = (doc.get("registered") or {}).get(name)
        if before is not None and not again:
            held = registry.maybe_json(cluster.zk, paths.model_version(name, int(before)))
            if not (isinstance(held, dict) and from_job(held, job, doc)):
                raise _registration_deleted(job, name, int(before))
        return [(paths.job(job), registry.dumps(dict(doc, registered=dict(doc.get("registered") or {}, **{name: number}))), stat.version)]

    return records


def _registration_deleted(job: str, name: str, number: int) -> RegistrationDeleted:
    again_cmd = f"nlpzk model register {job}" + ("" if name == job else f" --name {name}")
    return RegistrationDeleted(
        f"job {job!r} already finished; its vectors were registered as model {name}@v{number} (since deleted)",
        name, number, hint=f"to register them again: {again_cmd}",
    )


def _once_key(job: str, job_created: float | None) -> str:
    return f"job-{job}" if job_created is None else f"job-{job}-{job_created}"


def from_job(version_doc: dict[str, Any], job: str, job_doc: dict[str, Any] | None) -> bool:
    """Whether model version ``version_doc`` holds the vectors of training job ``job`` as it is now
    (``job_doc``: its node's document, None if there is none): a job deleted (``train delete``) and
    created again under the same name is another job, told apart by its creation time. A version
    registered before versions recorded it counts if it was registered after the job was created."""
    if version_doc.get("job") != job:
        return False
    created = (job_doc or {}).get("created")
    if created is None:  # no job, or one from before jobs recorded their creation: the name is all there is
        return True
    if version_doc.get("job_created") is not None:
        return version_doc["job_created"] == created
    return float(version_doc.get("created") or 0) >= float(created)


def register_job(
    cluster: Cluster, job: str, name: str | None = None, *, tags: Iterable[str] = ("latest",), retag: bool = False, again: bool = False
) -> tuple[str, int]:
    """Register the final vectors of finished training job ``job`` as model ``name`` (default: the job's name).

    Idempotent: if a version of that model already came from ``job``, its number is returned and
    no second version is written, so a retried or repeated call never makes one; ``tags`` are then
    moved to that version only with ``retag`` (tags asked for by name: the default ``latest`` must
    not move back from a newer version). Returns ``(model name, version)``.

    If the job registered its vectors in that model before (its node records it) and that version
    was deleted since, RegistrationDeleted: re-running a finished job does not undo a user's
    delete. ``again`` (``nlpzk model register JOB``) registers them anew instead.
    """
    from .train import final_vectors

    name = paths.check_name("model", name or job)
    if registry.is_deleting(cluster.zk, _base(name)):
        raise registry.being_deleted(_base(name))
    tags = list(tags)

    def existing(number: int) -> tuple[str, int]:
        for tag in tags if retag else ():
            tag_model(cluster, name, number, tag)
        return name, number

    from .train.job import job_documents

    (now,) = job_documents(cluster.zk, [job])  # a damaged node: train list's error, with what to do
    for number, doc in _version_docs(cluster, name):
        if from_job(doc, job, now):
            return existing(number)
    before = ((now or {}).get("registered") or {}).get(name)
    if before is not None and not again:
        raise _registration_deleted(job, name, int(before))
    kv, job_doc = final_vectors(cluster, job)
    vocab_name, _, vocab_version = str(job_doc["final"]["vocab"]).partition("@")
    spec = {k: v for k, v in (job_doc.get("spec") or {}).items() if not isinstance(v, (dict, list))}
    try:
        number = register_model(
            cluster, name, kv, vocab_name=vocab_name, vocab_version=paths.parse_version(vocab_version), job=job, spec=spec, tags=tags,
            vocab_sha256=(job_doc.get("spec") or {}).get("vocab_sha256"),
            train_scores=(job_doc.get("final") or {}).get("scores"), job_created=job_doc.get("created"), again=again,
        )
    except registry.AlreadyPublished as exc:  # registered meanwhile by another process
        return existing(exc.number)
    return name, number


def _version_docs(cluster: Cluster, name: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for number in versioned.versions(cluster.zk, _base(name)):
        doc = registry.maybe_json(cluster.zk, paths.model_version(name, number))
        if isinstance(doc, dict):
            out.append((number, doc))
    return out


def model_doc(cluster: Cluster, name: str, version: int | None = None, tag: str | None = None) -> dict[str, Any]:
    """The version document (plus ``name``, ``tags`` and ``vocab_exists``) of one model version."""
    number = _resolve(cluster, name, version, tag)
    doc, _ = registry.get_json(cluster.zk, paths.model_version(name, number), what=f"model {name}@v{number}", required=("path",))
    vtags = versioned.tags(cluster.zk, _base(name))
    vocab = doc.get("vocab") or {}
    vdoc = registry.maybe_json(cluster.zk, paths.vocab_version(vocab["name"], int(vocab["version"]))) if vocab else None
    # the same name and number, but another table (deleted and built again) is not the model's vocabulary
    exists = isinstance(vdoc, dict) and (not vocab.get("sha256") or vdoc.get("sha256") == vocab["sha256"])
    return dict(doc, name=name, version=number, tags=sorted(t for t, v in vtags.items() if v == number), vocab_exists=exists)


def list_models(cluster: Cluster) -> list[dict[str, Any]]:
    """One row per model name: versions, tags, the latest version's vocab and headline scores. A
    model a node of which is damaged does not hide the others: its row has state ``damaged`` and
    in ``damaged`` the line saying what is wrong and what to do (else state ``ok``, ``damaged`` null)."""
    rows = []
    for name in registry.children(cluster.zk, paths.MODELS):
        try:
            rows.append(_model_row(cluster, name))
        except IntegrityError as exc:  # a node of it changed outside nlpzk: a row, as in train list
            rows.append(registry.damaged_row(MODEL_ROW_KEYS, exc, name=name, deleting=False))
    return rows


#: The fields of a ``model list`` row.
MODEL_ROW_KEYS = ("name", "versions", "latest", "tags", "vocab", "words", "dim", "job", "eval", "train_scores", "deleting", "state", "damaged")


def _model_row(cluster: Cluster, name: str) -> dict[str, Any]:
    """:func:`list_models`'s row of model ``name`` (IntegrityError if a node of it is damaged)."""
    numbers = versioned.versions(cluster.zk, _base(name))
    vtags = versioned.tags(cluster.zk, _base(name))
    latest = vtags.get("latest", numbers[-1] if numbers else None)
    doc = registry.maybe_json(cluster.zk, paths.model_version(name, latest)) if latest else None
    doc = doc or {}
    return {
        "name": name,
        "versions": len(numbers),
        "latest": latest,
        "tags": {t: v for t, v in sorted(vtags.items())},
        "vocab": doc.get("vocab"),
        "words": doc.get("words"),
        "dim": doc.get("dim"),
        "job": doc.get("job"),
        "eval": headline(doc.get("eval") or {}),
        "train_scores": doc.get("train_scores") or {},
        "deleting": registry.is_deleting(cluster.zk, _base(name)),
        "state": "ok",
        "damaged": None,
    }


TRAIN_SCORES = ("ws353", "simlex", "analogy")  # the scores a training job records at its end (train._model.evaluate)


def headline(scores: dict[str, Any]) -> dict[str, float]:
    """The one number per benchmark a listing shows."""
    out = {}
    for key, field in (("wordsim353", "spearman"), ("simlex999", "spearman"), ("analogy", "accuracy"), ("sentiment", "accuracy"), ("heldout", "loss_per_pair")):
        if isinstance(scores.get(key), dict) and scores[key].get(field) is not None:
            out[key] = scores[key][field]
    return out


def tag_model(cluster: Cluster, name: str, version: int, tag: str) -> None:
    """Point ``tag`` at version ``version`` (atomically, checking the version exists)."""
    number = _resolve(cluster, name, version, None)
    registry.move_tag(cluster.zk, _base(name), tag, number)


def untag_model(cluster: Cluster, name: str, tag: str) -> None:
    """Remove ``tag``. ``latest`` cannot be removed: a plain NAME means NAME:latest, and the registry
    keeps it on the newest version (it moves back when that version is deleted)."""
    if tag == "latest":
        raise InvalidInputError(
            "the latest tag cannot be removed: a plain model name means NAME:latest",
            hint=f"point it at another version with: nlpzk model tag {name}@vN latest",
        )
    if not cluster.zk.exists(_base(name)):
        raise NotFoundError(f"unknown model {name!r}", hint="see: nlpzk model list")
    if not versioned.delete_tag(cluster.zk, _base(name), tag):
        raise NotFoundError(f"model {name!r} has no tag {tag!r}", hint=f"see its tags: nlpzk model show {name}")


def delete_model(cluster: Cluster, name: str, version: int | None = None) -> dict[str, Any]:
    """Delete one version (its znode, then its file) or, with ``version=None``, the whole model.

    A version's znode goes first: once it is gone nobody can open the file, and a file left behind
    by a crash in between is garbage, never a dangling registration. A whole model is marked as
    being deleted first (refused everywhere from then on), then its files go, then its znodes; a
    delete stopped half-way is finished by running it again.
    """
    zk = cluster.zk
    if not zk.exists(_base(name)):
        raise NotFoundError(f"unknown model {name!r}", hint="see: nlpzk model list")
    if version is not None:
        number = _resolve(cluster, name, version, None)
        doc, _ = registry.get_json(zk, paths.model_version(name, number))
        touched = versioned.delete_version(zk, _base(name), number)
        if doc.get("path"):
            cluster.store.delete(doc["path"])
        return {"name": name, "deleted": [number], "tags": touched}
    # Mark it first (from then on it is refused everywhere), then delete the files, then the nodes:
    # a delete killed half-way leaves the mark, never a model that looks whole or files nobody owns;
    # running the delete again finishes it.
    try:
        versioned.mark_deleting(zk, _base(name))
    except NotFoundError:
        raise NotFoundError(f"unknown model {name!r}", hint="see: nlpzk model list") from None
    docs = [(n, registry.maybe_json(zk, paths.model_version(name, n))) for n in versioned.versions(zk, _base(name))]
    for _, doc in docs:
        if doc and doc.get("path"):
            cluster.store.delete(doc["path"])
    cluster.store.delete_dir(naming.model_dir(name))
    versioned.delete_tree(zk, _base(name))
    return {"name": name, "deleted": [n for n, _ in docs], "tags": []}


def store_scores(cluster: Cluster, name: str, version: int, scores: dict[str, Any]) -> dict[str, Any]:
    """Merge compact eval ``scores`` into the version document (conditional write, retried on a race)."""

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        merged = dict(doc.get("eval") or {})
        merged.update(scores)
        doc["eval"] = merged
        return doc

    return versioned.update_doc(cluster.zk, paths.model_version(name, version), change)


# -- the handle ------------------------------------------------------------------------------------

@public
class Model:
    """One model version: its registry document, its vectors (``kv``) and its vocabulary (``vocab``)."""

    def __init__(self, cluster: Cluster, name: str, version: int, doc: dict[str, Any]) -> None:
        self.cluster = cluster
        self.name = name
        self.version = version
        self.doc = doc
        self._kv = None
        self._vocab = None

    @classmethod
    def open(cls, name: str, version: int | None = None, tag: str | None = None, *, cluster: Cluster | None = None) -> "Model":
        """Open ``name`` at ``version``, or at ``tag`` (default ``latest``). ``name`` may be a ref like
        ``wiki@v3`` or ``wiki:stable`` (then without ``version``/``tag``, as :meth:`Vocabulary.open`).

        Raises NotFoundError naming the vocabulary version when the one the model was trained with
        has been deleted: its row ids would no longer mean anything anyone can look up.
        """
        name, version, tag = paths.open_args(name, version, tag, parse_ref)
        cluster = cluster or default_cluster()
        doc = model_doc(cluster, name, version, tag)
        model = cls(cluster, name, doc["version"], doc)
        if not doc["vocab_exists"]:
            vocab = doc.get("vocab") or {}
            raise NotFoundError(
                f"model {model.ref} was trained with vocabulary {vocab.get('name')}@v{vocab.get('version')}, which no longer exists (deleted, or deleted and built again)",
                hint=f"its token ids cannot be looked up any more; delete the model version (nlpzk model delete {model.ref})",
            )
        return model

    @property
    def ref(self) -> str:
        """``name@vN``: what the CLI takes to name this version."""
        return f"{self.name}@v{self.version}"

    @property
    def vocab_ref(self) -> tuple[str, int]:
        """``(vocabulary name, version)`` the model was trained with (:attr:`vocab` opens it)."""
        v = self.doc["vocab"]
        return v["name"], int(v["version"])

    @property
    def kv(self):
        """gensim ``KeyedVectors`` (loaded on first use, checksum verified)."""
        if self._kv is None:
            self._kv = _read_vectors(self.cluster, self.doc["path"], self.doc.get("sha256"))
        return self._kv

    @property
    def vocab(self):
        """The exact vocabulary version (a ``VocabView``) the model was trained with."""
        if self._vocab is None:
            from .vocab import Vocabulary

            vname, vversion = self.vocab_ref
            self._vocab = Vocabulary.open(vname, version=vversion, cluster=self.cluster)
        return self._vocab

    # -- lookups ---------------------------------------------------------------------------------

    def _check_word(self, word: str) -> str:
        kv = self.kv
        if word in kv.key_to_index:
            return word
        for variant in (word.lower(), word.capitalize(), word.upper()):
            if variant in kv.key_to_index:
                return variant
        close = suggest(kv.index_to_key, word)
        raise WordNotFoundError(
            f"{word!r} is not in the vocabulary of model {self.ref}",
            hint=f"close tokens: {', '.join(close)}" if close else "no close tokens either",
        )

    def similar(self, word: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` nearest tokens by cosine similarity."""
        key = self._check_word(word)
        return [(k, float(s)) for k, s in self.kv.most_similar(key, topn=n)]

    def analogy(self, a: str, b: str, c: str, n: int = 5) -> list[tuple[str, float]]:
        """``a`` is to ``b`` as ``c`` is to ...? (3CosAdd: nearest to b - a + c)."""
        keys = [self._check_word(w) for w in (a, b, c)]
        return [(k, float(s)) for k, s in self.kv.most_similar(positive=[keys[1], keys[2]], negative=[keys[0]], topn=n)]

    # -- export ----------------------------------------------------------------------------------

    def export(self, fmt: str, out: str) -> list[str]:
        """Write ``word2vec`` (text), ``word2vec-bin`` or ``tsv`` (TensorBoard projector) files.

        ``out`` is a file for the word2vec formats and a directory for ``tsv`` (``vectors.tsv`` +
        ``metadata.tsv``). Each file is written beside its target and renamed into place.
        Returns the paths written.
        """
        return export_vectors(self.kv, fmt, out)

    def __repr__(self) -> str:
        return f"Model({self.ref!r})"


def suggest(tokens: list[str], word: str, n: int = 5) -> list[str]:
    """Close tokens for a word the model lacks (case-insensitive difflib match)."""
    lowered: dict[str, str] = {}
    for t in tokens:
        lowered.setdefault(t.lower(), t)
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.7)
    return [lowered[m] for m in matches]


EXPORT_FORMATS = ("word2vec", "word2vec-bin", "tsv")


def export_vectors(kv, fmt: str, out: str) -> list[str]:
    if fmt not in EXPORT_FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(EXPORT_FORMATS)}")
    bad_sep = " \t\n\r" if fmt.startswith("word2vec") else "\t\n\r"
    for token in kv.index_to_key:
        if not token or any(ch in token for ch in bad_sep):
            raise InvalidInputError(
                f"token {token!r} cannot be written in {fmt} format (it holds a separator)",
                hint="export as another format, or re-ingest with whitespace tokens filtered",
            )
    if out == "-" and fmt != "word2vec":
        raise InvalidInputError(f"--out - (standard output) holds text only, not --format {fmt}", hint="give a file name (a directory for tsv), or use --format word2vec")
    if fmt == "tsv":
        _writable_dir(out, create=True)
        vec_path, meta_path = os.path.join(out, "vectors.tsv"), os.path.join(out, "metadata.tsv")
        atomic_local_write(vec_path, lambda fh: np.savetxt(fh, kv.vectors, delimiter="\t", fmt="%.7g"))
        counts = kv.expandos.get("count")

        def write_meta(fh) -> None:
            fh.write(b"word\tcount\n")
            for i, token in enumerate(kv.index_to_key):
                fh.write(f"{token}\t{int(counts[i]) if counts is not None else 0}\n".encode())

        atomic_local_write(meta_path, write_meta)
        return [vec_path, meta_path]

    binary = fmt == "word2vec-bin"

    def write(fh) -> None:
        fh.write(f"{len(kv.index_to_key)} {kv.vector_size}\n".encode())
        vectors = np.asarray(kv.vectors, dtype="<f4")
        for token, row in zip(kv.index_to_key, vectors):
            if binary:
                fh.write(token.encode() + b" " + row.tobytes())
            else:
                # str() of a float32 is its shortest round-tripping form: reading it back gives the same bits
                fh.write((token + " " + " ".join(str(v) for v in row) + "\n").encode())

    if out == "-":
        import sys

        write(sys.stdout.buffer)
        sys.stdout.flush()
        return ["-"]
    _writable_dir(os.path.dirname(os.path.abspath(out)), create=False)
    atomic_local_write(out, write)
    return [os.path.abspath(out)]


def _writable_dir(path: str, *, create: bool) -> None:
    path = os.path.abspath(path)
    if create:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create export directory {path}: {exc.strerror}", hint="choose a directory you can write to") from None
    if not os.path.isdir(path):
        raise InvalidInputError(f"export directory {path} does not exist", hint="create it first or choose another --out")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StoreError(f"export directory {path} is not writable", hint="choose a directory you can write to")


def atomic_local_write(path: str, write) -> None:
    """Write a local file (``--out`` of the export and report commands) through a temporary file
    renamed into place: ``write(fh)`` gets a binary file. One-line errors: a missing directory or a
    directory given as the file (exit 5), a path that cannot be written (exit 10)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InvalidInputError(f"output path {path} is a directory", hint="give a file name with --out")
    if not os.path.isdir(directory):
        raise InvalidInputError(f"directory {directory} does not exist", hint="create it first or choose another --out")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    except OSError as exc:
        raise StoreError(f"cannot write to {directory}: {exc.strerror}", hint="choose a directory you can write to") from None
    try:
        os.fchmod(fd, new_file_mode())  # mkstemp's 0600 would hide an export from the user's group
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}", hint="check the path and free space") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


public_functions(globals(), __all__)  # called from outside nlpzk, they raise only NlpzkError
