"""gensim Word2Vec with the vocabulary fixed to a vocabulary version's ids, and its parameters as one array.

Parameters travel as one float32 array of shape ``(M, V, D)``: ``[0]`` the input vectors (``syn0``,
``wv.vectors``), ``[1]`` the output vectors (``syn1neg``); merges that keep state append more
matrices (block momentum keeps its previous global step as ``[2]``, ``[3]``). Row ``i`` is vocab id ``i``.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import logging
import threading
from typing import Any, Iterator, Sequence

import numpy as np
from gensim.models import KeyedVectors, Word2Vec

from ..errors import TrainingError

log = logging.getLogger("nlpzk.train")


@dataclasses.dataclass(frozen=True)
class VocabData:
    """What training needs from a vocabulary version (tokens in id order and their corpus counts)."""

    name: str
    version: int
    tokens: list[str]
    counts: np.ndarray
    corpus: str | None = None
    view: Any = dataclasses.field(default=None, compare=False, repr=False)  # the VocabView it came from (its lookups)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


def build_model(spec: dict[str, Any], vocab: VocabData, *, threads: int = 1, seed: int | None = None) -> Word2Vec:
    """A Word2Vec whose ``wv.index_to_key`` is exactly the version's tokens in id order.

    The tables are what gensim's ``build_vocab_from_freq`` builds with ``sorted_vocab=0`` and
    ``min_count=1`` (the given order kept; downsampling thresholds ``sample_int`` from the counts;
    the negative-sampling ``cum_table``; seeded weights), filled with numpy instead of gensim's
    per-word loops (:func:`_build_vocab_tables`; equal bit for bit, tested). Counts below 1
    (specials, ids kept only for stability) are raised to 1 so no row is dropped.
    """
    model = Word2Vec(
        vector_size=int(spec["dim"]),
        window=int(spec["window"]),
        min_count=1,
        sample=float(spec["sample"]),
        sg=1 if spec["sg"] else 0,
        hs=0,
        negative=int(spec["negative"]),
        alpha=float(spec["alpha"]),
        min_alpha=float(spec["min_alpha"]),
        seed=int(spec["seed"] if seed is None else seed),
        workers=max(1, int(threads)),
        sorted_vocab=0,
        epochs=1,
    )
    counts = np.maximum(np.asarray(vocab.counts, dtype=np.int64), 1)
    freq = dict(zip(vocab.tokens, (int(c) for c in counts)))
    if len(freq) != len(vocab.tokens):
        raise TrainingError(f"vocabulary {vocab.ref} has duplicate tokens", hint="rebuild the vocabulary")
    if _FAST_TABLES:
        _build_vocab_tables(model, list(vocab.tokens), counts)
    else:
        model.build_vocab_from_freq(freq, corpus_count=0)
    if model.wv.index_to_key != vocab.tokens:
        raise TrainingError(f"gensim reordered vocabulary {vocab.ref}; ids would not match rows")
    return model


#: False: build the tables with gensim's own ``build_vocab_from_freq`` (the tests compare both).
_FAST_TABLES = True


def _build_vocab_tables(model: Word2Vec, tokens: list[str], counts: np.ndarray) -> None:
    """What ``build_vocab_from_freq(freq, corpus_count=0)`` does for ``min_count=1``, no ``hs``,
    ``sorted_vocab=0`` and no ``max_final_vocab``, without its per-word Python calls (~0.3 s per
    worker start at 42k words): the same ``sample_int``, ``cum_table`` and seeded weights, bit for
    bit (gensim's own loops are mirrored: the same float64 operations in the same order)."""
    wv = model.wv
    model.corpus_count = 0
    model.raw_vocab = collections.defaultdict(int)  # what gensim leaves after deleting the raw counts
    model.effective_min_count = model.min_count
    wv.index_to_key = tokens
    wv.key_to_index = {t: i for i, t in enumerate(tokens)}
    wv.allocate_vecattrs(attrs=["count", "sample_int"], types=[type(0), np.uint32])
    wv.expandos["count"][:] = counts
    retain_total = int(counts.sum())
    sample = model.sample
    if not sample:
        threshold = float(retain_total)
    elif sample < 1.0:
        threshold = sample * retain_total
    else:
        threshold = float(int(sample * (3 + np.sqrt(5)) / 2))
    v = counts.astype(np.float64)
    prob = (np.sqrt(v / threshold) + 1) * (threshold / v)
    prob = np.where(prob < 1.0, prob, 1.0)
    wv.expandos["sample_int"][:] = (prob * (2**32 - 1)).astype(np.uint32)
    if model.negative:
        # gensim: count ** float(ns_exponent) per word (Python floats), summed in order
        power = float(model.ns_exponent)
        cumulative = np.cumsum(np.array([c ** power for c in counts.tolist()], dtype=np.float64))
        domain = 2**31 - 1
        model.cum_table = np.rint(cumulative / cumulative[-1] * domain).astype(np.uint32) if len(tokens) else np.zeros(0, np.uint32)
    model.prepare_weights()


def initial_params(spec: dict[str, Any], vocab: VocabData) -> np.ndarray:
    """The seeded starting point every worker shares: gensim's own initialisation for ``spec['seed']``."""
    model = build_model(spec, vocab)
    return np.stack([model.wv.vectors, model.syn1neg]).astype(np.float32, copy=False)


def set_params(model: Word2Vec, params: np.ndarray | Sequence[np.ndarray]) -> None:
    """Copy the global parameters into the model (in place: gensim holds references to these arrays).

    ``params``: one ``(2+, V, D)`` array, or consecutive row-range parts of it (each ``(2+, rows, D)``,
    e.g. the round's memory-mapped parameter files: copied straight in, no buffer between)."""
    at = 0
    for part in [params] if isinstance(params, np.ndarray) else params:
        n = part.shape[1]
        model.wv.vectors[at : at + n] = part[0]
        model.syn1neg[at : at + n] = part[1]
        at += n
    model.wv.norms = None


def get_params(model: Word2Vec) -> np.ndarray:
    return np.stack([model.wv.vectors, model.syn1neg])


#: rows per block of :func:`delta_to`: a float32 block of 4096 x 100 is 1.6 MB, in the CPU's caches
#: when the bfloat16 rounding reads it back
DELTA_BLOCK = 4096


def delta_to(model: Word2Vec, params: np.ndarray | Sequence[np.ndarray], out: np.ndarray) -> np.ndarray:
    """``local - params`` into ``out`` (``(2, V, D)``: float32, or bfloat16 bits as uint16), returned.

    ``params`` as :func:`set_params` takes them. For bfloat16 the difference goes through a small
    float32 block and is rounded from there: one pass over the model and the parameters, no
    model-sized float32 delta in between (bit for bit what rounding that would give)."""
    from .merge import to_bfloat16

    tmp = None if out.dtype == np.float32 else np.empty((DELTA_BLOCK, out.shape[2]), np.float32)
    mats = (model.wv.vectors, model.syn1neg)
    at = 0
    for part in [params] if isinstance(params, np.ndarray) else params:
        n = part.shape[1]
        for m in (0, 1):
            if tmp is None:
                np.subtract(mats[m][at : at + n], part[m], out=out[m, at : at + n])
                continue
            for a in range(0, n, DELTA_BLOCK):
                b = min(n, a + DELTA_BLOCK)
                block = np.subtract(mats[m][at + a : at + b], part[m, a:b], out=tmp[: b - a])
                to_bfloat16(block, out[m, at + a : at + b])
        at += n
    return out


def train_slice(model: Word2Vec, sentences: Sequence[list[str]], words: int, start_alpha: float, end_alpha: float) -> tuple[int, int, float]:
    """Train one pass over ``sentences`` with the learning rate going linearly from start to end.

    ``words``: the tokens in ``sentences`` (what the learning rate's progress is counted in).
    Returns ``(effective words, words passed to gensim, loss)``. The batches go straight to gensim's
    Cython kernels (``train_batch_sg``/``train_batch_cbow``): the same batches of at most 10,000
    words and the same per-batch learning rate as ``Word2Vec.train``, without its producer thread,
    job queue and the GIL hand-offs between them (6-7 % faster on one core, measured in
    docs/benchmarks.md). With ``model.workers`` > 1, that many threads take the batches in turn and
    train the one model copy together (Hogwild, as gensim's own threads do); each thread tallies its
    own loss (gensim's threads share one tally and lose updates to each other).
    """
    if not sentences:
        return 0, 0, 0.0
    return _train_kernel(model, sentences, max(1, words), start_alpha, end_alpha, max(1, int(model.workers)))


#: the kernels a job can train with (its spec's ``kernel``): nlpzk's own, negatives shared by a window
#: (``_kernel``, skip-gram only, the default for skip-gram), or gensim's Cython one, pair by pair
KERNELS = ("batched", "gensim")


def kernel_of(spec: dict[str, Any]) -> str:
    """The kernel a job trains with: its spec's, or gensim's for jobs created before there was a choice."""
    return str(spec.get("kernel") or "gensim")


def train_ids(model: Word2Vec, flat: np.ndarray, offsets: np.ndarray, total: int, start_alpha: float, end_alpha: float) -> tuple[int, int, float]:
    """:func:`train_slice` with nlpzk's batched skip-gram kernel (:mod:`._kernel`), on one thread.

    ``flat``: the sentences' in-vocabulary ids (int32) end to end; ``offsets``: where each sentence
    starts in ``flat``, and its end (``len = sentences + 1``); ``total``: the words over which the
    learning rate goes from start to end (``len(flat)``). Returns ``(effective words, words, loss)``.
    """
    words = int(offsets[-1] - offsets[0]) if len(offsets) else 0
    if not words:
        return 0, 0, 0.0
    eff, loss = _run_batched(model, flat, offsets, max(1, total), start_alpha, end_alpha, _state(model))
    model.running_training_loss = loss
    model.wv.norms = None
    return int(eff), words, float(loss)


def _state(model: Word2Vec) -> np.ndarray:
    """A generator state for the batched kernel, drawn from the model's seeded ``random``."""
    return np.array([model.random.randint(0, 2**31 - 1)], dtype=np.uint64)


def compiled() -> Any:
    """nlpzk's numba-compiled kernels (:mod:`._kernel`: the batched skip-gram kernel, the merge's
    Adasum), or one TrainingError line when numba does not import."""
    try:
        from . import _kernel
    except ImportError as exc:  # numba missing, or built for another numpy
        raise TrainingError(f"nlpzk's compiled kernels need numba, which does not import here ({exc})", hint="pip install -U numba (./run.sh setup installs it)") from None
    return _kernel


def _run_batched(model: Word2Vec, flat: np.ndarray, offsets: np.ndarray, total: int, a0: float, a1: float, state: np.ndarray) -> tuple[int, float]:
    _kernel = compiled()
    if not model.sg or model.hs or not model.negative:
        raise TrainingError("the batched kernel trains skip-gram with negative sampling only", hint="use --kernel gensim")
    return _kernel.train_sg(
        model.wv.vectors, model.syn1neg, np.asarray(flat, dtype=np.int32), np.asarray(offsets, dtype=np.int64),
        model.wv.expandos["sample_int"], model.cum_table, int(model.window), int(model.negative),
        float(a0), float(a1), int(total), state, True, _kernel.EXP_TABLE, _kernel.LOG_TABLE,
    )


def _id_jobs(flat: np.ndarray, offsets: np.ndarray, total: int, a0: float, a1: float) -> Iterator[tuple[np.ndarray, np.ndarray, int, float, float]]:
    """The batched kernel's jobs for a pool: runs of whole sentences of about 10,000 words, each
    with its own stretch of the learning rate (``(flat, offsets, words, start, end)``)."""
    from gensim.models.word2vec_inner import MAX_WORDS_IN_BATCH

    base = int(offsets[0])
    n = len(offsets) - 1
    i = 0
    while i < n:
        # the first sentence end at least MAX_WORDS_IN_BATCH words on (or the last)
        j = int(np.searchsorted(offsets, offsets[i] + MAX_WORDS_IN_BATCH, side="left"))
        j = min(n, max(i + 1, j))
        lo, hi = int(offsets[i]), int(offsets[j])
        s0 = a0 - (a0 - a1) * min(1.0, (lo - base) / total)
        s1 = a0 - (a0 - a1) * min(1.0, (hi - base) / total)
        yield flat, offsets[i : j + 1], hi - lo, s0, s1
        i = j


def _batches(model: Word2Vec, sentences: Sequence[list[str]]) -> Iterator[tuple[list[list[str]], int]]:
    """gensim's jobs: runs of whole sentences of at most ``batch_words`` (10,000) words, with their size."""
    from gensim.models.word2vec_inner import MAX_WORDS_IN_BATCH

    cap = min(int(model.batch_words), MAX_WORDS_IN_BATCH)
    batch: list[list[str]] = []
    size = 0
    for sentence in sentences:
        n = len(sentence)
        if size + n <= cap or not batch:
            batch.append(sentence)
            size += n
            continue
        yield batch, size
        batch, size = [sentence], n
    if batch:
        yield batch, size


def _train_kernel(model: Word2Vec, sentences: Sequence[list[str]], total: int, a0: float, a1: float, threads: int) -> tuple[int, int, float]:
    """gensim's kernel on the batches of ``sentences``: inline for one thread, else from a :class:`KernelPool`."""
    if threads > 1:
        with KernelPool(model, threads) as pool:
            pool.submit(sentences, total, a0, a1)
            return pool.finish()
    from gensim.models.word2vec_inner import train_batch_cbow, train_batch_sg

    twin = _twin(model)  # the same arrays and tables, its own loss tally and random generator
    work = np.zeros(model.layer1_size, dtype=np.float32)
    neu1 = np.zeros(model.layer1_size, dtype=np.float32)
    effective = pushed = 0
    for batch, size in _batches(model, sentences):
        # gensim's producer: a job's learning rate is where the schedule is when it is queued
        alpha = a0 - (a0 - a1) * min(1.0, pushed / total)
        pushed += size
        if model.sg:
            effective += train_batch_sg(twin, batch, alpha, work, True)
        else:
            effective += train_batch_cbow(twin, batch, alpha, work, neu1, True)
    model.running_training_loss = twin.running_training_loss
    model.wv.norms = None
    return int(effective), int(pushed), float(twin.running_training_loss)


def _twin(model: Word2Vec) -> Word2Vec:
    """A shallow copy of ``model`` for one training thread: the same parameter arrays and tables,
    its own loss tally (gensim's threads share one and lose updates to each other) and its own
    random generator, seeded from the model's."""
    twin = copy.copy(model)
    twin.running_training_loss = 0.0
    twin.random = np.random.RandomState(model.random.randint(0, 2**31 - 1))
    return twin


class KernelPool:
    """``threads`` threads training one model copy together (Hogwild, as gensim's own threads do),
    taking gensim's 10,000-word jobs from a queue.

    A worker keeps one pool for a whole round: it submits a batch of leased units and, while the
    threads train it, leases and slices the next (:meth:`wait_below` keeps it from leasing far
    ahead of the training, which would take units the other workers could train). The threads then
    never wait for the leasing and slicing between batches, and their tails (threads done while one
    finishes its last job) come once a round instead of once a batch.
    """

    def __init__(self, model: Word2Vec, threads: int) -> None:
        from gensim.models.word2vec_inner import train_batch_cbow, train_batch_sg

        self.model = model
        self._kernel = train_batch_sg if model.sg else train_batch_cbow
        self._jobs: collections.deque[tuple[Any, ...] | None] = collections.deque()  # (sentences, alpha) or an ids job
        self._cond = threading.Condition()
        self._effective = self._pushed = 0
        self._loss = 0.0
        self._errors: list[BaseException] = []
        self._abort = False
        self._threads = [threading.Thread(target=self._loop, args=(_twin(model),), name="nlpzk-train", daemon=True) for _ in range(max(1, threads))]
        for t in self._threads:
            t.start()

    def submit(self, sentences: Sequence[list[str]], total: int, a0: float, a1: float) -> None:
        """Queue a batch, its learning rate going from ``a0`` to ``a1`` over its ``total`` words."""
        jobs, pushed = [], 0
        for batch, size in _batches(self.model, sentences):
            # gensim's producer: a job's learning rate is where the schedule is when it is queued
            jobs.append((batch, a0 - (a0 - a1) * min(1.0, pushed / max(1, total))))
            pushed += size
        with self._cond:
            self._jobs.extend(jobs)
            self._pushed += pushed
            self._cond.notify_all()

    def submit_ids(self, flat: np.ndarray, offsets: np.ndarray, total: int, a0: float, a1: float) -> None:
        """:meth:`submit` for the batched kernel: sentences as ids (see :func:`train_ids`)."""
        jobs, pushed = [], 0
        for job in _id_jobs(flat, offsets, max(1, total), a0, a1):
            jobs.append(job)
            pushed += job[2]
        with self._cond:
            self._jobs.extend(jobs)
            self._pushed += pushed
            self._cond.notify_all()

    def wait_below(self, jobs: int) -> None:
        """Block until fewer than ``jobs`` jobs are waiting; raises what a training thread raised."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._jobs) < jobs or bool(self._errors))
            if self._errors:
                raise self._errors[0]

    def finish(self) -> tuple[int, int, float]:
        """Wait for every queued job; ``(effective words, words passed to gensim, loss)``."""
        self._stop(abort=False)
        if self._errors:
            raise self._errors[0]
        self.model.running_training_loss = self._loss
        self.model.wv.norms = None
        return int(self._effective), int(self._pushed), float(self._loss)

    def close(self) -> None:
        """Drop what is still queued and stop the threads (after an error in the caller)."""
        self._stop(abort=True)

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop(self, abort: bool) -> None:
        with self._cond:
            if abort:
                self._abort = True
                self._jobs.clear()
            self._jobs.extend([None] * len(self._threads))
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []

    def _loop(self, twin: Word2Vec) -> None:
        work = np.zeros(self.model.layer1_size, dtype=np.float32)
        neu1 = np.zeros(self.model.layer1_size, dtype=np.float32)
        state = _state(twin)  # the batched kernel's generator, this thread's own
        effective = 0
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: bool(self._jobs))
                    job = self._jobs.popleft()
                    self._cond.notify_all()  # wait_below
                if job is None or self._abort:
                    break
                if len(job) == 5:  # the batched kernel's: ids
                    flat, offsets, size, s0, s1 = job
                    eff, loss = _run_batched(self.model, flat, offsets, size, s0, s1, state)
                    effective += eff
                    twin.running_training_loss += loss
                    continue
                batch, alpha = job
                if self.model.sg:
                    effective += self._kernel(twin, batch, alpha, work, True)
                else:
                    effective += self._kernel(twin, batch, alpha, work, neu1, True)
        except BaseException as exc:  # re-raised by finish()
            with self._cond:
                self._errors.append(exc)
                self._abort = True
                self._jobs.clear()
                self._cond.notify_all()
        with self._cond:
            self._effective += effective
            self._loss += twin.running_training_loss


def keyed_vectors(vocab: VocabData, vectors: np.ndarray) -> KeyedVectors:
    """gensim KeyedVectors for the final input vectors, with the version's tokens and counts."""
    kv = KeyedVectors(vector_size=vectors.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(vocab.tokens, np.ascontiguousarray(vectors, dtype=np.float32))
    kv.allocate_vecattrs(attrs=["count"], types=[np.int64])
    kv.expandos["count"][:] = np.asarray(vocab.counts, dtype=np.int64)
    return kv


def evaluate(kv: KeyedVectors, restrict_vocab: int = 30000) -> dict[str, float]:
    """WS353 and SimLex-999 Spearman, Google analogies accuracy, with OOV percentages.

    Scored by :mod:`nlpzk.eval.benchmarks` (equal to gensim's ``evaluate_word_pairs`` /
    ``evaluate_word_analogies``, batched so the end of a job is not held up for long).
    """
    from ..eval import benchmarks as bm

    out: dict[str, float] = {}
    for key, name in (("ws353", "wordsim353"), ("simlex", "simlex999")):
        res = bm.word_pairs(kv, bm.datapath(bm.PAIR_SETS[name]), restrict_vocab=restrict_vocab)
        out[key] = None if res["spearman"] is None or not np.isfinite(res["spearman"]) else round(res["spearman"], 4)
        out[f"{key}_oov_pct"] = round(float(res["oov_ratio"]), 2)
    res = bm.analogies(kv, bm.datapath(bm.ANALOGIES), restrict_vocab=restrict_vocab)
    out["analogy"] = round(float(res["accuracy"]), 4)
    out["analogy_questions"] = int(res["evaluated"])
    return out
