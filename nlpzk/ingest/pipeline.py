"""The ingest pipeline: claim an input, tokenize it into shards, register it in one transaction.

Per input file (identified by its *key*: a hash of its bytes and of how it is read)::

    claim (ephemeral znode)  ->  stream documents -> drop duplicates -> tokenize in batches
    -> roll shards at --shard-tokens (written atomically, sha256 on the fly)
    -> write the document-hash sidecar -> check no input committed meanwhile shares a document
    -> ONE transaction: shard znodes + done-marker + claim removal

Duplicates: a document whose content hash is already in the corpus is dropped. "Already in the
corpus" means: in an input whose done-marker exists, in an input this run read before (it commits
first), or earlier in the same input. Inputs commit in
a single order (the version of the ``inputs`` node is the ordering point); an input that shares a
document with an input another ingester committed after this one started is rewritten without it
before it may commit. So each distinct document is kept exactly once, by the input that commits
first, and one ingester (which reads and commits its inputs in sorted order) gives a result
that depends neither on ``--processes`` nor on timing nor on being killed and re-run.

``--processes N`` tokenizes batches of documents in N processes (this one and N-1 spawned workers);
reading, dedup, shards and ZooKeeper stay here, batches are consumed in order and the next input is
read while the workers finish the last one, so a single large file is parallelized as well as many
small ones and the output does not depend on N.
"""

from __future__ import annotations

import array
import collections
import concurrent.futures as cf
import dataclasses
import hashlib
import json
import multiprocessing
import os
import posixpath
import signal
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..cluster import Cluster, public_functions
from ..corpus import Corpus, ShardInfo, ShardWriter
from ..errors import FencedError, IntegrityError, InvalidInputError, NlpzkError
from ..store import TMP_PREFIX, Store, naming
from ..zk import paths
from ..zk.claims import InputClaims
from . import readers
from .readers import DocumentReader, InputFile, ReadOptions
from .tokenize import Tokenizer, tokenizer_options

#: Raw documents read before one dedup check + tokenizer batch (bounded by characters too). Large
#: batches amortize the per-batch Arrow/numpy work (the type lookup table is rebuilt per batch).
BATCH_DOCS = 4096
BATCH_CHARS = 1 << 20
DEFAULT_SHARD_TOKENS = 1_000_000
MAX_PROCESSES_PER_CORE = 4
HASHES_SCHEMA = pa.schema([pa.field("record", pa.uint64()), pa.field("hash", pa.uint64())])

Progress = Callable[[dict[str, Any]], None]


def input_key(sha256: str, fmt: str, read: ReadOptions) -> str:
    """The identity of an input: its bytes and how they are cut into documents."""
    return hashlib.sha256(f"{sha256}\0{read.key_part(fmt)}".encode()).hexdigest()[:20]


def doc_hashes(texts: list[str]) -> np.ndarray:
    """64-bit content hashes (blake2b) of documents, as uint64."""
    blake = hashlib.blake2b
    return np.frombuffer(b"".join(blake(t.encode(), digest_size=8).digest() for t in texts), "<u8")


@dataclasses.dataclass(frozen=True)
class Job:
    corpus: str
    store_uri: str
    options: dict[str, Any]
    read: ReadOptions
    file: InputFile
    key: str
    sha256: str
    shard_tokens: int
    committed: tuple[str, ...]  # done inputs whose documents count as already present
    generation: str = ""  # the corpus node's creation time: a deleted and re-created corpus is another one


@dataclasses.dataclass
class InputResult:
    key: str
    source: str
    shards: list[ShardInfo]
    documents: int = 0
    duplicates: int = 0
    sentences: int = 0
    tokens: int = 0
    bytes: int = 0
    replaced: int = 0
    hashes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.uint64))
    hashes_sha256: str = ""
    hashes_bytes: int = 0
    seconds: float = 0.0

    def shard_doc(self, info: ShardInfo) -> dict[str, Any]:
        return dict(info.doc(), input=self.key)

    def done_doc(self, job: Job) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": job.sha256,
            "read": job.read.key_part(job.file.format),
            "shards": len(self.shards),
            "documents": self.documents,
            "duplicates": self.duplicates,
            "sentences": self.sentences,
            "tokens": self.tokens,
            "bytes": self.bytes,
            "replaced": self.replaced,
            "hashes_path": naming.input_hashes(job.corpus, self.key),  # "*_path": nlpzk gc keeps it
            "hashes_sha256": self.hashes_sha256,
            "hashes_bytes": self.hashes_bytes,
            "finished": round(time.time(), 3),
        }


# -- the per-process side: tokenizers, stores and known document hashes, reused across jobs ---------


class _Worker:
    def __init__(self) -> None:
        self.tokenizers: dict[str, Tokenizer] = {}
        self.stores: dict[str, Store] = {}
        self.known: dict[tuple[str, str, str], tuple[set[str], np.ndarray]] = {}  # (store, corpus, generation) -> (loaded keys, sorted hashes)

    def tokenizer(self, options: dict[str, Any]) -> Tokenizer:
        k = json.dumps(options, sort_keys=True)
        if k not in self.tokenizers:
            self.tokenizers[k] = Tokenizer(options)
        return self.tokenizers[k]

    def store(self, uri: str) -> Store:
        if uri not in self.stores:
            self.stores[uri] = Store(uri)
        return self.stores[uri]

    def known_hashes(self, job: Job, store: Store) -> np.ndarray:
        """Sorted hashes of every document in the inputs ``job.committed`` (loaded once per process)."""
        which = (job.store_uri, job.corpus, job.generation)
        loaded, known = self.known.get(which, (set(), np.zeros(0, np.uint64)))
        committed = set(job.committed)
        if not loaded <= committed:  # an input vanished from the registry: trust nothing loaded
            loaded, known = set(), np.zeros(0, np.uint64)
        todo = sorted(committed - loaded)
        if todo:
            parts = [known] + [read_hashes(store, job.corpus, k)["hash"].to_numpy() for k in todo]
            known = np.unique(np.concatenate(parts))
            loaded = loaded | set(todo)
        self.known[which] = (loaded, known)
        return known


_WORKER = _Worker()


def read_hashes(store: Store, corpus: str, key: str) -> pa.Table:
    rel = naming.input_hashes(corpus, key)
    try:
        with store.open_input(rel) as fh:
            table = pq.read_table(fh)
        if not table.schema.equals(HASHES_SCHEMA, check_metadata=False):
            raise ValueError(f"schema {table.schema.to_string(show_schema_metadata=False)!r} is not the sidecar's")
        return table
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise IntegrityError(
            f"the document hashes of input {key} ({rel}) are unreadable: {str(exc).splitlines()[0]}",
            hint=f"run: nlpzk corpus verify {corpus}; re-ingest into a new corpus, or delete and re-ingest this one",
        ) from None


def _in_sorted(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    if not len(sorted_hashes):
        return np.zeros(len(hashes), bool)
    pos = np.minimum(np.searchsorted(sorted_hashes, hashes), len(sorted_hashes) - 1)
    return sorted_hashes[pos] == hashes


class _HashSet:
    """Hashes of one input's documents so far: a sorted array (8 bytes each) plus a small recent set.

    A Python set of ints costs about 60 bytes an entry; this keeps within-file dedup memory at about
    8 bytes a document (checked a batch at a time), so large files do not grow memory much.
    """

    def __init__(self, merge_at: int = 1 << 16) -> None:
        self.sorted = np.zeros(0, np.uint64)
        self.recent: set[int] = set()
        self.merge_at = merge_at

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        return _in_sorted(self.sorted, hashes)

    def add(self, h: int) -> None:
        self.recent.add(h)

    def settle(self, force: bool = False) -> None:
        """Between batches (never within one: :meth:`contains` answered for the batch before it)."""
        if self.recent and (force or len(self.recent) >= self.merge_at):
            self.sorted = np.union1d(self.sorted, np.fromiter(self.recent, np.uint64, len(self.recent)))
            self.recent = set()


class _Roller:
    """Shards of one input: filled in order, closed at the first document boundary past ``shard_tokens``.

    Parquet encoding and zstd run on one background thread (pyarrow releases the GIL there), so
    they overlap with tokenizing the next batch; the thread works through its queue in order.
    """

    MAX_QUEUED = 4  # batches waiting for the writer thread, at most (bounds memory)

    def __init__(self, store: Store, job: Job, fence: Callable[[], None]) -> None:
        self.store = store
        self.job = job
        self.fence = fence
        self.metadata = {"nlpzk.options": json.dumps(job.options, sort_keys=True), "nlpzk.input": job.key}
        self.writer: ShardWriter | None = None
        self.tokens = 0  # in the open shard (counted here: the writer thread may lag behind)
        self.infos: list[ShardInfo] = []
        self._io = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlpzk-shard-writer")
        self._queued: collections.deque[cf.Future] = collections.deque()

    def _background(self, fn: Callable, *args: Any) -> None:
        while self._queued and (self._queued[0].done() or len(self._queued) >= self.MAX_QUEUED):
            self._queued.popleft().result()  # re-raises a failure of the writer thread here
        self._queued.append(self._io.submit(fn, *args))

    def _drain(self) -> None:
        while self._queued:
            self._queued.popleft().result()

    def add(self, doc_ids: list[str], tokens: pa.Array, offsets: np.ndarray, sentence_doc: np.ndarray) -> None:
        n = len(sentence_doc)
        if not n:
            return
        sent_tokens = np.diff(offsets)
        ids = pa.array(doc_ids, pa.string())
        s0 = 0
        while s0 < n:
            if self.writer is None:
                self.writer = ShardWriter(self.store, self.job.corpus, naming.shard_id(self.job.key, len(self.infos)), batch_rows=65536, metadata=self.metadata)
                self.tokens = 0
                self._background(self.writer.__enter__)
            cum = np.cumsum(sent_tokens[s0:])
            hit = int(np.searchsorted(cum, self.job.shard_tokens - self.tokens))
            if hit >= len(cum):
                self._write(ids, tokens, offsets, sentence_doc, s0, n)
                return
            last_doc = sentence_doc[s0 + hit]
            e = int(np.searchsorted(sentence_doc, last_doc, side="right"))
            self._write(ids, tokens, offsets, sentence_doc, s0, e)
            self.close()
            s0 = e

    def _write(self, ids, tokens, offsets, sentence_doc, s0: int, e: int) -> None:
        lo, hi = int(offsets[s0]), int(offsets[e])
        lists = pa.ListArray.from_arrays(pa.array(offsets[s0 : e + 1] - lo, pa.int32()), tokens.slice(lo, hi - lo))
        docs = sentence_doc[s0:e]
        self.tokens += hi - lo
        self._background(self.writer.add_batch, ids.take(pa.array(docs)), self.job.file.source, lists, int(np.count_nonzero(np.diff(docs))) + 1)

    def close(self) -> None:
        """Finish the open shard (if any): wait for the writer thread, check the fence, publish."""
        if self.writer is not None:
            self._drain()
            self.fence()
            w, self.writer = self.writer, None
            w.__exit__(None, None, None)
            self.infos.append(w.info)

    def finish(self) -> None:
        try:
            self.close()
        finally:
            self._io.shutdown(wait=True)

    def abort(self, exc: BaseException) -> None:
        try:
            self._drain()
        except Exception:  # the original error is the one to report
            pass
        self._io.shutdown(wait=True)
        if self.writer is not None:
            w, self.writer = self.writer, None
            try:
                w.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary file
            except Exception:
                pass


class Tokenizers:
    """Tokenizer batches for one ingest: in this process, and with ``processes > 1`` also in workers.

    Batches go to ``processes - 1`` spawned workers (``spawn``, not ``fork``: this process runs
    kazoo's threads) while they have fewer than two queued each, otherwise this process tokenizes
    the batch itself; results are consumed strictly in submission order. Everything else (reading,
    dedup, shards, ZooKeeper) stays in this process, so the output is the same for any ``processes``.
    """

    def __init__(self, options: dict[str, Any], processes: int = 1) -> None:
        self.options = options
        self.local = _WORKER.tokenizer(options)
        self.pool = None
        self.slots = 2 * (processes - 1)
        self._pending: list[cf.Future] = []
        if processes > 1:
            ctx = multiprocessing.get_context("spawn")
            self.pool = cf.ProcessPoolExecutor(max_workers=processes - 1, mp_context=ctx, initializer=_init_pool_worker, initargs=(options, os.getpid()))
            for _ in range(processes - 1):  # the pool starts workers lazily: start them all now
                self.pool.submit(os.getpid)

    def submit(self, texts: list[str]) -> cf.Future:
        self._pending = [f for f in self._pending if not f.done()]
        if self.pool is not None and len(self._pending) < self.slots:
            fut = self.pool.submit(_pool_batch, self.options, texts)
            self._pending.append(fut)
            return fut
        fut = cf.Future()
        fut.set_result(self.local.batch(texts))
        return fut

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _init_pool_worker(options: dict[str, Any], parent_pid: int) -> None:
    from .._children import die_with_parent

    die_with_parent(parent_pid)  # a killed ingest leaves no pool workers behind
    # Ctrl-C reaches the whole process group: the main process handles it and shuts the pool down;
    # workers printing their own KeyboardInterrupt tracebacks would only bury its one error line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER.tokenizer(options)  # build spaCy's pipeline while the main process starts reading


def _pool_batch(options: dict[str, Any], texts: list[str]) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    return _WORKER.tokenizer(options).batch(texts)


class _Input:
    """One input on its way through: read and deduplicated here, tokenized by :class:`Tokenizers`,
    its batches handed back in order to its shard roller, then finished into an :class:`InputResult`.

    ``seen_in_run`` holds the kept document hashes of the inputs this run read before this one (they
    commit before it), so inputs can overlap in the pipeline without a rewrite between them.
    """

    def __init__(self, job: Job, fence: Callable[[], None], seen_in_run: _HashSet | None = None) -> None:
        self.job = job
        self.t0 = time.perf_counter()
        self.store = _WORKER.store(job.store_uri)
        self.known = _WORKER.known_hashes(job, self.store)
        self.seen_in_run = seen_in_run
        self.fence = fence
        self.reader = DocumentReader(job.file, job.read, job.sha256)
        self.roller = _Roller(self.store, job, fence)
        self.result = InputResult(job.key, job.file.source, [])
        self.mine = _HashSet()
        self.kept_records = array.array("Q")  # 8 bytes a document, not a Python int each
        self.kept_hashes = array.array("Q")
        self.prefix = f"{job.key}:"
        self.batches_open = 0  # submitted, not yet handed to the roller

    def batches(self) -> Iterator[tuple[list[int], list[str]]]:
        records: list[int] = []
        texts: list[str] = []
        chars = 0
        for rec, text in self.reader:
            records.append(rec)
            texts.append(text)
            chars += len(text)
            if len(texts) >= BATCH_DOCS or chars >= BATCH_CHARS:
                yield records, texts
                records, texts, chars = [], [], 0
        if texts:
            yield records, texts

    def dedup(self, records: list[int], texts: list[str]) -> tuple[list[str], list[str]]:
        """Drop documents already in the corpus, in this run, or earlier in this input: (ids, texts) kept."""
        hashes = doc_hashes(texts)
        seen_before = _in_sorted(self.known, hashes) | self.mine.contains(hashes)
        if self.seen_in_run is not None:
            seen_before |= self.seen_in_run.contains(hashes)
        run_recent = self.seen_in_run.recent if self.seen_in_run is not None else ()
        keep_texts, keep_ids = [], []
        for rec, text, h, old in zip(records, texts, hashes.tolist(), seen_before.tolist()):
            if old or h in self.mine.recent or h in run_recent:
                self.result.duplicates += 1
                continue
            self.mine.add(h)
            self.kept_records.append(rec)
            self.kept_hashes.append(h)
            keep_texts.append(text)
            keep_ids.append(self.prefix + str(rec))
        self.mine.settle()
        self.result.documents += len(keep_texts)
        return keep_ids, keep_texts

    def take(self, ids: list[str], batch: tuple[pa.Array, np.ndarray, np.ndarray]) -> None:
        tokens, offsets, sentence_doc = batch
        self.roller.add(ids, tokens, offsets, sentence_doc)
        self.result.sentences += len(sentence_doc)
        self.result.tokens += len(tokens)
        self.batches_open -= 1

    def finish(self) -> InputResult:
        """Close the last shard and write the hash sidecar (nothing is registered here)."""
        self.roller.finish()
        result, store, job = self.result, self.store, self.job
        result.replaced = self.reader.replaced
        result.shards = self.roller.infos
        result.bytes = sum(s.bytes for s in self.roller.infos)
        result.hashes = np.frombuffer(self.kept_hashes, np.uint64) if self.kept_hashes else np.zeros(0, np.uint64)
        records = np.frombuffer(self.kept_records, np.uint64) if self.kept_records else np.zeros(0, np.uint64)
        table = pa.table([pa.array(records), pa.array(result.hashes)], schema=HASHES_SCHEMA)
        self.fence()
        with store.atomic_output(naming.input_hashes(job.corpus, job.key)) as out:
            pq.write_table(table, out, compression="zstd")
        result.hashes_sha256, result.hashes_bytes = out.sha256, out.bytes
        result.seconds = time.perf_counter() - self.t0
        return result

    def abort(self, exc: BaseException) -> None:
        self.roller.abort(exc)


class _Pipeline:
    """Inputs flow through in order: read + dedup here, tokenize (here or in workers), shards, commit.

    While the workers tokenize the last batches of one input, the next input is already being read,
    so many small files keep the workers as busy as one large file. Batches are consumed strictly in
    submission order, inputs are finished and committed in reading order.
    """

    def __init__(self, tokenizers: Tokenizers, on_finished: Callable[[_Input], None], progress: Progress | None) -> None:
        self.tokenizers = tokenizers
        self.on_finished = on_finished
        self.progress = progress
        self.batches: collections.deque[tuple[_Input, list[str], cf.Future]] = collections.deque()
        self.inputs: collections.deque[_Input] = collections.deque()  # read (or being read), not finished
        self.seen_in_run = _HashSet()
        # Batches this process may run ahead of the oldest unfinished one: enough to keep tokenizing
        # here while a worker is busy (or still starting) instead of waiting for it; bounded for memory.
        self.ahead = 2 * tokenizers.slots + 2

    def run(self, item: _Input) -> None:
        """Read all of ``item`` into the pipeline; finishes (and commits) earlier inputs as they complete."""
        self.inputs.append(item)
        try:
            for records, texts in item.batches():
                ids, kept = item.dedup(records, texts)
                if kept:
                    item.batches_open += 1
                    self.batches.append((item, ids, self.tokenizers.submit(kept)))
                self._consume(wait_for=self.ahead)
        except InvalidInputError:
            # this input is bad; the inputs read before it are not: finish and commit them first
            while self.batches and self.batches[0][0] is not item:
                self._take_head()
            self._finish_ready()
            raise
        for h in np.frombuffer(item.kept_hashes, np.uint64).tolist() if item.kept_hashes else ():
            self.seen_in_run.add(h)
        self.seen_in_run.settle()
        item.read_all = True
        self._consume(wait_for=self.ahead)

    def drain(self) -> None:
        self._consume(wait_for=0)

    def _consume(self, wait_for: int) -> None:
        while self.batches and (self.batches[0][2].done() or len(self.batches) > wait_for):
            self._take_head()
        self._finish_ready()

    def _take_head(self) -> None:
        item, ids, fut = self.batches.popleft()
        batch = fut.result()
        item.take(ids, batch)
        if self.progress is not None:
            self.progress({"documents": len(ids), "tokens": len(batch[0])})
        self._finish_ready()

    def _finish_ready(self) -> None:
        while self.inputs and getattr(self.inputs[0], "read_all", False) and self.inputs[0].batches_open == 0:
            self.on_finished(self.inputs.popleft())

    def abort(self, exc: BaseException) -> list[_Input]:
        for item in self.inputs:
            item.abort(exc)
        return list(self.inputs)


def run_job(job: Job, tokenizers: Tokenizers, progress: Progress | None = None, fence: Callable[[], None] | None = None) -> InputResult:
    """Tokenize one input into shards and its hash sidecar (nothing is registered here)."""
    item = _Input(job, fence or (lambda: None))
    done: list[InputResult] = []
    pipe = _Pipeline(tokenizers, lambda i: done.append(i.finish()), progress)
    try:
        pipe.run(item)
        pipe.drain()
    except cf.BrokenExecutor as exc:
        pipe.abort(exc)
        raise _worker_died(job) from None
    except BaseException as exc:
        pipe.abort(exc)
        raise
    return done[0]


def _worker_died(job: Job | None) -> NlpzkError:
    where = f" while ingesting {job.file.path}" if job is not None else ""
    return NlpzkError(
        f"a tokenizer worker process died{where} (killed, or out of memory)",
        hint="run the same command again, perhaps with fewer --processes; nothing of this file was registered",
    )


# -- the coordinating side --------------------------------------------------------------------------


@dataclasses.dataclass
class Summary:
    corpus: str
    files: int = 0  # inputs considered
    ingested: int = 0  # inputs this run tokenized and registered
    already_done: int = 0  # inputs found done (earlier runs or other ingesters)
    same_content: int = 0  # inputs whose bytes equal another input of this run
    skipped_empty: list[str] = dataclasses.field(default_factory=list)
    documents: int = 0
    duplicates: int = 0
    sentences: int = 0
    tokens: int = 0
    shards: int = 0
    bytes: int = 0
    replaced_bytes: int = 0  # invalid UTF-8 sequences replaced by U+FFFD
    redone: int = 0  # inputs rewritten without documents a concurrently committed input holds
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tokens_per_s"] = round(self.tokens / self.seconds) if self.seconds > 0 else 0
        d["seconds"] = round(self.seconds, 3)
        return d


def ingest(
    cluster: Cluster,
    name: str,
    inputs: list[str],
    *,
    options: dict[str, Any] | None = None,
    read: ReadOptions | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    processes: int = 1,
    progress: Progress | None = None,
    wait_timeout: float = 1.0,
) -> Summary:
    """Ingest ``inputs`` (files, directories, globs) into corpus ``name``; returns what was done.

    Safe to re-run and to run concurrently (on one or many machines) on the same inputs: inputs
    already done are skipped, inputs claimed by another live ingester are waited for.
    """
    t0 = time.perf_counter()
    opts = tokenizer_options(options)
    read = read or ReadOptions()
    if shard_tokens < 1:
        raise InvalidInputError(f"--shard-tokens must be positive, not {shard_tokens}", hint="give the tokens per shard, e.g. --shard-tokens 1000000 (the default)")
    cores = os.cpu_count() or 1
    if processes < 1:
        raise InvalidInputError(f"--processes must be at least 1, not {processes}", hint=f"use --processes 1 to tokenize in this process only, or up to the number of cores ({cores})")
    if processes > MAX_PROCESSES_PER_CORE * cores:
        # each is a spaCy process of ~300 MB started up front: thousands of them take the machine's memory
        raise InvalidInputError(
            f"--processes {processes} is more than {MAX_PROCESSES_PER_CORE} per core ({cores} core(s) here)", hint=f"use up to the number of cores ({cores}); more only add memory"
        )
    # Everything that can be refused without side effects is refused before touching ZooKeeper.
    _WORKER.tokenizer(opts)  # an unknown language or missing lemma table fails here; kept for the run
    summary = Summary(corpus=name)
    files: list[InputFile] = []
    for f in readers.discover(inputs):
        try:
            readers.sniff(f)
        except InvalidInputError:
            if f.explicit or f.size != 0:
                raise
            summary.skipped_empty.append(f.source)
            continue
        files.append(f)
    if not files:
        raise InvalidInputError(f"no input to ingest: every file found is empty ({', '.join(summary.skipped_empty[:3])})")
    summary.files = len(files)
    if progress is not None:
        progress({"total_files": len(files)})

    existed = cluster.zk.exists(paths.corpus(name)) is not None
    generation = str(Corpus.create(cluster, name, opts).info["created"])
    claims = InputClaims(cluster.zk, name)
    claims.join()
    lost = threading.Event()  # this run's session ended (the cluster's own flag stays set for ever)

    def on_state(state: str) -> None:
        if state == "LOST":
            lost.set()

    def fence() -> None:
        if lost.is_set() or not claims.alive():
            raise FencedError("this ingest lost its ZooKeeper session; its claims may belong to another ingester now", hint="run the same command again")

    cluster.watch.add(on_state)
    tokenizers: Tokenizers | None = None
    pipe: _Pipeline | None = None
    shas: dict[str, str] = {}
    keys_seen: set[str] = set()
    claimed: dict[str, Job] = {}  # claimed by this run and not committed yet
    committed_here: set[str] = set()
    todo = collections.deque(files)
    waiting: list[InputFile] = []

    def finished(item: _Input) -> None:
        result = item.finish()
        registered = _commit(cluster, claims, item.job, result, summary, fence, committed_here)
        committed_here.add(item.job.key)
        del claimed[item.job.key]
        if progress is not None:  # documents and tokens were reported per batch; a rewrite corrects them
            progress({"files": 1, "duplicates": registered.duplicates, "documents": registered.documents - result.documents, "tokens": registered.tokens - result.tokens})

    ok = False
    try:
        tokenizers = Tokenizers(opts, processes)
        pipe = _Pipeline(tokenizers, finished, progress)
        while todo or waiting:
            if not todo:
                # the rest is claimed by other live ingesters: finish ours, then wait for theirs
                pipe.drain()
                if progress is not None:
                    progress({"waiting": len(waiting)})
                claims.wait_for_change(wait_timeout)
                todo.extend(waiting)
                waiting = []
                continue
            fence()  # claims taken after losing the session would not be fenced by old ones
            f = todo.popleft()
            if f.path not in shas:
                shas[f.path] = readers.content_sha256(f)
            key = input_key(shas[f.path], f.format, read)
            if key in keys_seen:
                summary.same_content += 1
                continue
            if claims.done(key) is not None:
                keys_seen.add(key)
                summary.already_done += 1
                continue
            if not claims.try_claim(key, {"source": f.source}):
                waiting.append(f)
                continue
            keys_seen.add(key)
            job = Job(name, cluster.store.uri, opts, read, f, key, shas[f.path], shard_tokens, tuple(claims.done_keys()), generation)
            claimed[key] = job
            pipe.run(_Input(job, fence, pipe.seen_in_run))
        pipe.drain()
        ok = True
    except cf.BrokenExecutor:
        raise _worker_died(next(iter(claimed.values()), None)) from None
    finally:
        cluster.watch.remove(on_state)
        if not ok and pipe is not None:
            pipe.abort(RuntimeError("ingest failed"))
        if tokenizers is not None:
            tokenizers.close()
        if not ok:
            _clean_up(cluster, claims, name, list(claimed.values()), existed)
        else:
            claims.leave()
    summary.seconds = time.perf_counter() - t0
    return summary


def _commit(
    cluster: Cluster, claims: InputClaims, job: Job, result: InputResult, summary: Summary, fence: Callable[[], None], ours: set[str] = frozenset()
) -> InputResult:
    """Register ``result`` (rewritten first if a newer commit shares documents); returns what was registered.

    ``ours``: inputs this run committed since ``job`` started; it was deduplicated against them already.
    """
    store = cluster.store
    while True:
        version, done = claims.commit_point()
        newer = [k for k in done if k not in set(job.committed) and k != job.key and k not in ours]
        if newer and len(result.hashes):
            theirs = np.concatenate([read_hashes(store, job.corpus, k)["hash"].to_numpy() for k in newer])
            shared = np.isin(result.hashes, theirs)
            if shared.any():
                # A concurrently committed input holds some of our documents: they are its now.
                # Rewrite our shards without them: the same bytes as if we had started after it.
                result = _rewrite(store, job, result, result.hashes[shared], fence)
                summary.redone += 1
        job = dataclasses.replace(job, committed=tuple(done))
        if claims.commit(job.key, [(s.id, result.shard_doc(s)) for s in result.shards], result.done_doc(job), version):
            break
    summary.ingested += 1
    summary.documents += result.documents
    summary.duplicates += result.duplicates
    summary.sentences += result.sentences
    summary.tokens += result.tokens
    summary.shards += len(result.shards)
    summary.bytes += result.bytes
    summary.replaced_bytes += result.replaced
    return result


def _rewrite(store: Store, job: Job, result: InputResult, drop: np.ndarray, fence: Callable[[], None]) -> InputResult:
    """``result`` without the documents whose hashes are in ``drop``: shards re-rolled, sidecar rewritten.

    The old shard files are first moved to temporary names (nothing registered points at them), then
    streamed shard by shard through the same roller that wrote them, so rolling and row groups come
    out exactly as a run that had dropped those documents while reading.
    """
    t0 = time.perf_counter()
    sidecar = read_hashes(store, job.corpus, job.key)
    gone = np.isin(sidecar["hash"].to_numpy(), drop)
    gone_ids = pa.array([f"{job.key}:{r}" for r in sidecar["record"].to_numpy()[gone].tolist()], pa.string())
    moved = []
    for info in result.shards:
        tmp = f"{posixpath.dirname(info.path)}/{TMP_PREFIX}rewrite-{posixpath.basename(info.path)}"
        store.move(info.path, tmp)
        moved.append(tmp)
    roller = _Roller(store, job, fence)
    try:
        for tmp in moved:
            with store.open_input(tmp) as fh:
                table = pq.read_table(fh, columns=["doc_id", "tokens"])
            table = table.filter(pc.invert(pc.is_in(table.column("doc_id"), value_set=gone_ids)))
            if not table.num_rows:
                continue
            doc_col = table.column("doc_id").combine_chunks()
            tokens = table.column("tokens").combine_chunks()
            starts = np.flatnonzero(np.concatenate([[True], pc.not_equal(doc_col.slice(1), doc_col.slice(0, len(doc_col) - 1)).to_numpy(zero_copy_only=False)]))
            sentence_doc = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(doc_col))))
            lengths = pc.list_value_length(tokens).to_numpy(zero_copy_only=False)
            offsets = np.zeros(len(lengths) + 1, np.int32)
            np.cumsum(lengths, out=offsets[1:])
            roller.add(doc_col.take(pa.array(starts)).to_pylist(), tokens.flatten(), offsets, sentence_doc)
        roller.finish()
    except BaseException as exc:
        roller.abort(exc)
        raise
    for tmp in moved:
        store.delete(tmp)
    for seq in range(len(roller.infos), len(result.shards)):
        store.delete(naming.shard_file(job.corpus, naming.shard_id(job.key, seq)))
    keep = ~gone
    table = pa.table([sidecar["record"].filter(pa.array(keep)), sidecar["hash"].filter(pa.array(keep))], schema=HASHES_SCHEMA)
    fence()
    with store.atomic_output(naming.input_hashes(job.corpus, job.key)) as out:
        pq.write_table(table, out, compression="zstd")
    dropped = int(gone.sum())
    return dataclasses.replace(
        result,
        shards=roller.infos,
        documents=result.documents - dropped,
        duplicates=result.duplicates + dropped,
        sentences=sum(i.sentences for i in roller.infos),
        tokens=sum(i.tokens for i in roller.infos),
        bytes=sum(i.bytes for i in roller.infos),
        hashes=np.asarray(table.column("hash").to_numpy(), np.uint64),
        hashes_sha256=out.sha256,
        hashes_bytes=out.bytes,
        seconds=result.seconds + time.perf_counter() - t0,
    )


def _clean_up(cluster: Cluster, claims: InputClaims, name: str, jobs: list[Job], existed: bool) -> None:
    """After a failure: drop our unregistered files and claims; remove a corpus this run created empty."""
    if not cluster.watch.connected.is_set():
        # Without a connection every request waits REQUEST_TIMEOUT (120 s) for its reply: the failure
        # would be reported twice as late. Touch nothing: the claims are ephemeral and go with the
        # session, and the unregistered files cannot be known to be ours any more (nlpzk gc's).
        return
    try:
        if claims.alive():  # if the session was lost, the names may be another ingester's now: touch nothing
            for job in jobs:
                if claims.done(job.key) is None:
                    _delete_unregistered(cluster.store, name, job.key)
                claims.release(job.key)
        claims.leave()
        if not existed and claims.remove_if_empty():
            cluster.store.delete_empty_dirs(naming.corpus_dir(name))  # the folders its shard writers made
    except Exception:  # best effort: the original error is what the user must see
        pass


def _delete_unregistered(store: Store, corpus: str, key: str) -> None:
    seq = 0
    while store.delete(naming.shard_file(corpus, naming.shard_id(key, seq))):
        seq += 1
    store.delete(naming.input_hashes(corpus, key))


public_functions(globals(), ["ingest"])  # called from outside nlpzk, it raises only NlpzkError
