"""Corpora as registered shard sets: the shard file format, the shard writer, and reading back.

A shard is a Parquet file with one row per sentence::

    doc_id  string                       document id (stable: derived from the input and position)
    source  dictionary<int32, string>    input file the sentence came from
    tokens  list<string>                 the sentence's tokens (dictionary-encoded pages, zstd)

A shard becomes part of a corpus only when its znode ``/corpora/<c>/shards/<id>`` exists; that
node is created after the file is completely written and checksummed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from kazoo.exceptions import NodeExistsError

from .cluster import Cluster, default_cluster, public, public_functions
from .errors import ConflictError, IntegrityError, NotFoundError, StoreError, WrongStoreError, first_few
from .store import Store, is_tmp, naming, verify_hint
from .zk import paths, registry, versioned

SHARD_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string()),
        pa.field("source", pa.dictionary(pa.int32(), pa.string())),
        pa.field("tokens", pa.list_(pa.string())),
    ]
)


#: Keys every corpus document has from its creation (:meth:`Corpus.create`): without ``options`` the
#: corpus would be read as tokenized with the defaults, without ``created`` an ingest would not tell
#: this corpus from an earlier one of the same name (its duplicate hashes are kept per creation).
CORPUS_KEYS = ("options", "created")


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """What the registry records for one shard (a small JSON document)."""

    id: str
    path: str
    sha256: str
    bytes: int
    sentences: int
    tokens: int
    documents: int
    sources: tuple[str, ...] = ()

    def doc(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sources"] = list(self.sources)[:8]  # keep the znode small; the file holds every source
        return d

    @classmethod
    def from_doc(cls, shard_id: str, doc: dict[str, Any]) -> "ShardInfo":
        try:
            return cls(
                id=shard_id,
                path=str(doc["path"]),
                sha256=str(doc["sha256"]),
                bytes=int(doc["bytes"]),
                sentences=int(doc["sentences"]),
                tokens=int(doc["tokens"]),
                documents=int(doc.get("documents", 0)),
                sources=tuple(doc.get("sources", ())),
            )
        except KeyError as exc:
            problem = f"lacks {exc}"
        except (TypeError, ValueError) as exc:
            problem = f"holds a wrong value ({exc})"
        raise IntegrityError(
            f"the registry document of shard {shard_id} {problem}",
            hint="it was changed outside nlpzk; restore it from a ZooKeeper backup, or delete the corpus and ingest it again",
        )


class ShardWriter:
    """Buffer sentences and write them as one Parquet shard, atomically, checksumming as it goes.

    >>> with ShardWriter(store, "wiki", "a1b2-00000") as w:      # doctest: +SKIP
    ...     w.add("doc-1", "wiki.txt", ["Hello", "world", "."])
    >>> w.info.sha256                                           # doctest: +SKIP
    """

    def __init__(self, store: Store, corpus: str, shard_id: str, *, batch_rows: int = 8192, metadata: dict[str, str] | None = None) -> None:
        self.store = store
        self.corpus = corpus
        self.shard_id = shard_id
        self.path = naming.shard_file(corpus, shard_id)
        self.batch_rows = batch_rows
        self.metadata = metadata or {}
        self._doc_ids: list[str] = []
        self._sources: list[str] = []
        self._tokens: list[list[str]] = []
        self._ctx = None
        self._out = None
        self._writer: pq.ParquetWriter | None = None
        self.sentences = 0
        self.tokens = 0
        self._docs: set[str] = set()
        self._batches: list[pa.RecordBatch] = []
        self._batch_rows = 0
        self._batch_documents = 0
        self._all_sources: dict[str, None] = {}
        self.info: ShardInfo | None = None

    def __enter__(self) -> "ShardWriter":
        self._ctx = self.store.atomic_output(self.path)
        self._out = self._ctx.__enter__()
        schema = SHARD_SCHEMA.with_metadata({b"nlpzk.corpus": self.corpus.encode(), **{k.encode(): v.encode() for k, v in self.metadata.items()}})
        self._writer = pq.ParquetWriter(self._out, schema, compression="zstd", use_dictionary=True, write_statistics=False)
        return self

    def add(self, doc_id: str, source: str, tokens: list[str]) -> None:
        self._doc_ids.append(doc_id)
        self._sources.append(source)
        self._tokens.append(tokens)
        self.sentences += 1
        self.tokens += len(tokens)
        self._docs.add(doc_id)
        self._all_sources.setdefault(source, None)
        if len(self._tokens) >= self.batch_rows:
            self._flush()

    def add_batch(self, doc_ids: pa.Array, source: str, tokens: pa.Array, documents: int) -> None:
        """Append many sentences at once (Arrow arrays, no Python per token): the ingest fast path.

        ``documents`` is how many distinct documents the rows hold; a caller never splits a document
        over two calls, so the counts add up.
        """
        if self._tokens:  # rows added one by one go first, in order
            self._flush()
        n = len(tokens)
        if not n:
            return
        sources = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([source], pa.string()))
        self._batches.append(pa.record_batch([doc_ids, sources, tokens], schema=SHARD_SCHEMA))
        self._batch_rows += n
        self.sentences += n
        self.tokens += len(tokens.flatten())  # flatten honours slicing, without copying
        self._batch_documents += documents
        self._all_sources.setdefault(source, None)
        if self._batch_rows >= self.batch_rows:
            self._write_batches()

    def _write_batches(self, final: bool = False) -> None:
        """Write whole row groups of ``batch_rows`` rows (the rest too when ``final``).

        Row groups then depend only on the sequence of rows, never on how callers batched them, so
        the same sentences always give the same bytes (a re-run or a rewrite reproduces a shard).
        """
        if not self._batches:
            return
        table = pa.Table.from_batches(self._batches)
        whole = table.num_rows if final else table.num_rows - table.num_rows % self.batch_rows
        if whole:
            self._writer.write_table(table.slice(0, whole), row_group_size=self.batch_rows)
        rest = table.slice(whole)
        self._batches = rest.to_batches() if rest.num_rows else []
        self._batch_rows = rest.num_rows

    def _flush(self) -> None:
        self._write_batches(final=True)
        if not self._tokens:
            return
        batch = pa.record_batch(
            [
                pa.array(self._doc_ids, pa.string()),
                pa.array(self._sources, pa.string()).dictionary_encode(),
                pa.array(self._tokens, pa.list_(pa.string())),
            ],
            schema=SHARD_SCHEMA,
        )
        self._writer.write_batch(batch)
        self._doc_ids, self._sources, self._tokens = [], [], []

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
            self._writer.close()
        finally:
            self._ctx.__exit__(exc_type, exc, tb)
        if exc_type is None:
            self.info = ShardInfo(
                id=self.shard_id,
                path=self.path,
                sha256=self._out.sha256,
                bytes=self._out.bytes,
                sentences=self.sentences,
                tokens=self.tokens,
                documents=len(self._docs) + self._batch_documents,
                sources=tuple(self._all_sources),
            )


def _check_shard(store: Store, info: ShardInfo) -> str | None:
    """What is wrong with a shard file that exists, or None."""
    try:
        actual = store.sha256(info.path)
    except StoreError as exc:  # a directory in its place, an unreadable file: this shard is broken, go on
        return f"unreadable: {exc.message}"
    if actual != info.sha256:
        return f"sha256 {actual[:12]}... differs from the registry's {info.sha256[:12]}..."
    try:
        with store.open_input(info.path) as fh:
            table = pq.read_table(fh, columns=["tokens"])
    except (pa.ArrowInvalid, OSError) as exc:
        return f"unreadable Parquet: {exc}"
    tokens = len(table.column("tokens").combine_chunks().flatten()) if table.num_rows else 0
    if table.num_rows != info.sentences or tokens != info.tokens:
        return f"holds {table.num_rows} sentences / {tokens} tokens, the registry says {info.sentences} / {info.tokens}"
    return None


#: The fields of a ``corpus list`` row: :meth:`Corpus.summary`'s, ``deleting``, ``state`` and ``damaged``.
CORPUS_ROW_KEYS = ("name", "options", "created", "shards", "inputs", "documents", "sentences", "tokens", "bytes", "deleting", "state", "damaged")


def list_corpora(cluster: Cluster) -> list[dict[str, Any]]:
    """Every registered corpus with its totals (one pipelined read per shard node). A corpus whose
    node or a shard node is damaged does not hide the others: its row has state ``damaged`` and in
    ``damaged`` the line saying what is wrong and what to do (else state ``ok``, ``damaged`` null)."""
    out = []
    for name in registry.children(cluster.zk, paths.CORPORA):
        try:
            corpus = Corpus.open(name, cluster=cluster, deleting=True)
            out.append(dict(corpus.summary(), deleting=bool(corpus.info.get("deleting")), state="ok", damaged=None))
        except NotFoundError:
            continue  # deleted while we looked
        except IntegrityError as exc:
            out.append(registry.damaged_row(CORPUS_ROW_KEYS, exc, name=name, deleting=False))
    return out


def read_shard(store: Store, info: ShardInfo, columns: list[str] | None = None, verify: bool = False, tokens_as_dictionary: bool = False) -> pa.Table:
    """Read one shard's table (optionally checking its sha256 first).

    ``tokens_as_dictionary``: the tokens come back dictionary-encoded (``list<dictionary<string>>``),
    straight from Parquet's own dictionary pages, without materialising one string per token.
    """
    try:
        with store.open_input(info.path) as fh:
            if not verify:
                return pq.read_table(fh, columns=columns, read_dictionary=["tokens.list.element"] if tokens_as_dictionary else None)
            data = fh.read_buffer()  # read once: hashed, then parsed from memory
        actual = hashlib.sha256(memoryview(data)).hexdigest()
        if actual != info.sha256:
            raise IntegrityError(
                f"shard {info.id} ({info.path}) fails its checksum (sha256 {actual[:12]}..., registry says {str(info.sha256)[:12]}...)",
                hint=verify_hint(info.path),
            )
        return pq.read_table(pa.BufferReader(data), columns=columns, read_dictionary=["tokens.list.element"] if tokens_as_dictionary else None)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, IntegrityError):
            raise
        raise IntegrityError(f"shard {info.id} ({info.path}) is corrupt: {exc}", hint=verify_hint(info.path)) from None


@public
class Corpus:
    """A registered corpus: its options and its shards.

    >>> corpus = Corpus.open("wiki")               # doctest: +SKIP
    >>> for sentence in corpus.sentences(): ...    # doctest: +SKIP
    """

    def __init__(self, cluster: Cluster, name: str, info: dict[str, Any]) -> None:
        self.cluster = cluster
        self.name = name
        self.info = info
        self.unreadable: str | None = None  # what is wrong with its node when it holds no JSON document (open_to_delete(force=True))

    @classmethod
    def open(cls, name: str, *, cluster: Cluster | None = None, deleting: bool = False) -> "Corpus":
        """Open a registered corpus. One that a killed ``delete`` left marked as being deleted is
        refused (its shards may be half gone) unless ``deleting`` (to finish the delete)."""
        corpus = cls.open_to_delete(name, cluster=cluster)
        try:
            registry.require(corpus.info, CORPUS_KEYS, registry.full_path(corpus.cluster.zk, paths.corpus(name)))
        except registry.CorruptDocumentError as exc:
            raise registry.CorruptDocumentError(exc.message, hint=f"{exc.hint}, or delete the corpus (its shards too) with: nlpzk corpus delete {name} --yes") from None
        if corpus.info.get("deleting") and not deleting:
            raise registry.being_deleted(paths.corpus(name))
        return corpus

    @classmethod
    def open_to_delete(cls, name: str, *, cluster: Cluster | None = None, force: bool = False) -> "Corpus":
        """Open a corpus to :meth:`delete` it: one marked as being deleted too (to finish the delete),
        and one whose node lacks ``options`` or ``created`` (damaged: deleting needs neither, its
        name gives its znodes and its store folder). One whose node holds no JSON document is
        refused (IntegrityError naming ``corpus delete NAME --yes --force``) unless ``force``: then
        it is opened with no document, and :meth:`delete` deletes it without marking it."""
        cluster = cluster or default_cluster()
        try:
            info = registry.maybe_json(cluster.zk, paths.corpus(name))
        except registry.CorruptDocumentError as exc:
            if not force:
                raise registry.CorruptDocumentError(
                    exc.message,
                    hint=f"restore it from a ZooKeeper backup, or delete the corpus anyway (its znodes and its files under {naming.corpus_dir(name)}/) with: nlpzk corpus delete {name} --yes --force",
                ) from None
            corpus = cls(cluster, name, {})
            corpus.unreadable = exc.message
            return corpus
        if info is None:
            raise NotFoundError(f"unknown corpus {name!r}", hint="see: nlpzk corpus list")
        return cls(cluster, name, info)

    @classmethod
    def create(cls, cluster: Cluster, name: str, options: dict[str, Any]) -> "Corpus":
        """Create the corpus node, or open it if it exists with the same options."""
        path = paths.corpus(name)
        doc = {"options": options, "created": registry.now()}
        for _ in range(20):
            try:
                registry.create_json(cluster.zk, path, doc)
            except NodeExistsError:  # someone created it first, which is fine if options agree
                pass
            info = registry.maybe_json(cluster.zk, path, required=CORPUS_KEYS)
            if info is not None:
                break  # (else deleted between the two: create again)
        else:
            raise ConflictError(f"corpus {name!r} keeps being created and deleted by others", hint="run it again")
        if info.get("deleting"):
            raise registry.being_deleted(paths.corpus(name))
        if info["options"] != options:
            have = info["options"] if isinstance(info["options"], dict) else {}
            differ = ", ".join(f"{k} {have.get(k)!r} (not {options.get(k)!r})" for k in sorted(set(have) | set(options)) if have.get(k) != options.get(k))
            raise ConflictError(
                f"corpus {name!r} exists with other options: {differ}",
                hint="use the same options, another name, or nlpzk corpus delete first",
            )
        if not registry.create_below(cluster.zk, (paths.shards(name), paths.inputs(name), paths.claims(name))):
            raise NotFoundError(f"corpus {name!r} was deleted while being created", hint="run it again")
        return cls(cluster, name, info)

    @property
    def options(self) -> dict[str, Any]:
        """The tokenizer options the corpus was ingested with (``nlpzk.ingest.make_tokenizer(corpus.options)`` tokenizes the same way)."""
        return self.info["options"]

    @property
    def shards(self) -> list[ShardInfo]:
        """The registered shards (id, path, sha256, counts), read afresh from ZooKeeper on each access."""
        zk = self.cluster.zk
        ids = registry.children(zk, paths.shards(self.name))
        docs = registry.many_json(zk, [paths.shard(self.name, i) for i in ids])
        return [ShardInfo.from_doc(i, d) for i, d in zip(ids, docs) if d is not None]

    def inputs(self) -> dict[str, dict[str, Any]]:
        """Done-markers of the ingested input files, by input key."""
        zk = self.cluster.zk
        keys = [k for k in registry.children(zk, paths.inputs(self.name))]
        docs = registry.many_json(zk, [paths.input_done(self.name, k) for k in keys])
        return {k: d for k, d in zip(keys, docs) if d is not None}

    def ingesters(self) -> list[str]:
        """Ingest runs working on this corpus right now (ephemeral members)."""
        return registry.children(self.cluster.zk, paths.ingesters(self.name))

    def summary(self, shards: list[ShardInfo] | None = None) -> dict[str, Any]:
        """Totals: ``name, options, created, shards, inputs, documents, sentences, tokens, bytes``."""
        shards = self.shards if shards is None else shards
        return {
            "name": self.name,
            "options": self.options,
            "created": self.info["created"],
            "shards": len(shards),
            "inputs": len(registry.children(self.cluster.zk, paths.inputs(self.name))),
            "documents": sum(s.documents for s in shards),
            "sentences": sum(s.sentences for s in shards),
            "tokens": sum(s.tokens for s in shards),
            "bytes": sum(s.bytes for s in shards),
        }

    def verify(self) -> dict[str, Any]:
        """Re-read every shard: file present, sha256 and counts as registered; find unregistered files.

        Returns a report; ``report["ok"]`` is False when a shard is missing or corrupt. Stray files
        (no znode) are garbage from an interrupted ingest, or files of an ingest still running.
        """
        store = self.cluster.store
        shards = self.shards
        inputs = self.inputs()
        missing, corrupt = [], []
        for info in shards:
            if not store.exists(info.path):
                missing.append({"shard": info.id, "path": info.path})
                continue
            problem = _check_shard(store, info)
            if problem:
                corrupt.append({"shard": info.id, "path": info.path, "problem": problem})
        for key, doc in inputs.items():
            side = doc.get("hashes_path")
            if side and not store.exists(side):
                missing.append({"input": key, "path": side})
            elif side and doc.get("hashes_sha256"):
                try:
                    differs = store.sha256(side) != doc["hashes_sha256"]
                except StoreError as exc:
                    corrupt.append({"input": key, "path": side, "problem": f"unreadable: {exc.message}"})
                    continue
                if differs:
                    corrupt.append({"input": key, "path": side, "problem": "sha256 differs from the registry"})
        if missing:  # every file gone because this is not the cluster's store: say that, not "damaged"
            gone = store.missing(missing[0]["path"])
            if isinstance(gone, WrongStoreError):
                raise gone
        known = {s.path for s in shards} | {d.get("hashes_path") for d in inputs.values()}
        files = store.list(naming.corpus_dir(self.name))
        tmp = [f for f in files if is_tmp(f)]
        stray = [f for f in files if f not in known and not is_tmp(f)]
        return {
            "corpus": self.name,
            "ok": not missing and not corrupt,
            "shards": len(shards),
            "inputs": len(inputs),
            "missing": missing,
            "corrupt": corrupt,
            "stray": stray,
            "temporary": tmp,
            "ingesters_running": len(self.ingesters()),
        }

    def delete(self, *, force: bool = False) -> dict[str, Any]:
        """Delete the corpus: mark it as being deleted (from then on it is refused everywhere), delete
        its files, then its registry nodes. A delete killed half-way leaves the mark, never a
        corpus that looks whole; running the delete again finishes it. Returns ``{"shards", "files",
        "damaged"}``: ``damaged`` says which of ``options`` / ``created`` its node lacked, or that it
        held no JSON document (opened with :meth:`open_to_delete`), else None. A node holding no JSON
        document is not marked (it cannot be rewritten; it already stops every other command)."""
        zk = self.cluster.zk
        lacks = [k for k in CORPUS_KEYS if k not in self.info]
        damaged = f"znode {registry.full_path(zk, paths.corpus(self.name))} lacked {', '.join(map(repr, lacks))}" if lacks else None
        damaged = self.unreadable or damaged
        # a marked corpus passed the looks below when it was marked; an unreadable one is deleted with force only
        resuming = bool(self.info.get("deleting")) or self.unreadable is not None
        shards = len(registry.children(zk, paths.shards(self.name)))
        guard_path = paths.corpus_users(self.name)
        with versioned.GuardHold(zk, guard_path, paths.corpus(self.name)) as hold:
            for _ in versioned.guard_attempts(f"deleting corpus {self.name!r}") if not resuming else ():
                # "look for jobs, then mark" is one step against job creations: the mark's transaction sets
                # the corpus's guard node at the version read before looking, and every job creation on the
                # corpus sets it too (train.create_job): whichever commits second fails and looks again.
                # --force looks at nothing: it sets the guard whatever its version.
                guard = hold.version()
                guard = -1 if force else guard
                running = self.ingesters()
                if running and not force:
                    raise ConflictError(f"corpus {self.name!r} is being ingested right now ({len(running)} ingester(s))", hint="wait for them, or pass --force")
                if not force:
                    self._refuse_if_trained_on()
                try:
                    versioned.mark_deleting_guarded(zk, paths.corpus(self.name), guard_path, guard, hold=hold)
                    break
                except versioned.GuardChanged:
                    continue  # a job was created on it meanwhile: look again
                except NotFoundError:
                    break  # deleted meanwhile by another delete: its files go below all the same
        store = self.cluster.store
        files = store.list(naming.corpus_dir(self.name))
        for f in files:
            store.delete(f)
        store.delete_dir(naming.corpus_dir(self.name))
        registry.delete_tree(zk, paths.corpus(self.name))
        versioned.drop_guard(zk, guard_path)  # (left if a job creation holds it: its release drops it)
        return {"shards": shards, "files": len(files), "damaged": damaged}

    def training_jobs(self) -> list[str]:
        """Training jobs not finished that train on this corpus (their workers read its shard files).
        None found but a job whose node is damaged (which may train on it): IntegrityError naming it."""
        from .train.job import job_documents, unchecked_users

        zk = self.cluster.zk
        jobs = registry.children(zk, paths.JOBS)
        out, damaged = [], []
        for job, doc in zip(jobs, job_documents(zk, jobs, keep_damaged=True)):
            if isinstance(doc, registry.CorruptDocumentError):
                damaged.append((job, doc))
            elif doc and (doc.get("spec") or {}).get("corpus") == self.name and doc.get("state") != "done" and not doc.get("deleting"):
                out.append(job)
        if damaged and not out:  # (with jobs found, the delete is refused, naming them, all the same)
            raise unchecked_users(f"corpus {self.name!r}", damaged)
        return out

    def _refuse_if_trained_on(self) -> None:
        jobs = self.training_jobs()
        if jobs:
            raise ConflictError(
                f"corpus {self.name!r} is being trained on by job(s) {first_few(jobs)}, which are not finished",
                hint="let them finish (nlpzk train resume JOB) or delete them (nlpzk train delete JOB), or pass --force (they cannot go on without its shards)",
            )

    def shard(self, shard_id: str) -> ShardInfo:
        """One registered shard by id; NotFoundError if the corpus has none of that id."""
        doc = registry.maybe_json(self.cluster.zk, paths.shard(self.name, shard_id))
        if doc is None:
            raise NotFoundError(f"corpus {self.name!r} has no shard {shard_id!r}")
        return ShardInfo.from_doc(shard_id, doc)

    def read(self, shard: ShardInfo | str, columns: list[str] | None = None, verify: bool = False) -> pa.Table:
        """One shard as an Arrow table (``doc_id``, ``source``, ``tokens``, or ``columns``); with
        ``verify`` its sha256 is checked first. :meth:`sentences` gives plain token lists."""
        info = shard if isinstance(shard, ShardInfo) else self.shard(shard)
        return read_shard(self.cluster.store, info, columns=columns, verify=verify)

    def sentences(self, shard: ShardInfo | str | None = None, verify: bool = True) -> Iterator[list[str]]:
        """Token lists, one per sentence, of one shard or (in shard id order) of all; each shard checked
        against its registered sha256 first unless ``verify=False`` (IntegrityError if it fails)."""
        shards = [shard] if shard is not None else self.shards
        for s in shards:
            table = self.read(s, columns=["tokens"], verify=verify)
            for batch in table.to_batches():
                yield from batch.column(0).to_pylist()

    def __repr__(self) -> str:
        return f"Corpus({self.name!r})"


public_functions(globals(), ["list_corpora", "read_shard"])  # called from outside nlpzk, they raise only NlpzkError
