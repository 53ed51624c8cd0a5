"""Merge rules: how the workers' contributions of a round become the next global parameters.

Every contribution is a delta ``local - global`` of shape ``(2, V, D)`` plus the number of times each
word occurred in the data it was trained on. Rules:

* ``mean``  — words-weighted mean of the deltas (Spark MLlib style model averaging).
* ``wmean`` — per-word weighted mean: row ``i`` averages only the contributions whose data contained
  word ``i``, weighted by its count there (rows nobody saw fall back to ``mean``). A word that
  occurred in one worker's data keeps that worker's full step instead of 1/K of it.
* ``sum``   — sum of the deltas (as if the workers' steps had been applied one after another).
* ``bmuf`` / ``bmuf-wmean`` — block momentum (BMUF, SlowMo): ``step = eta * previous step + G``
  with ``G`` the ``mean`` (or ``wmean``) delta, applied as is; the step is kept in the parameters
  as ``[2:4]``.
* ``nbmuf`` / ``nbmuf-wmean`` — the same with a Nesterov look-ahead: the parameters move by
  ``eta * step + G`` (BMUF's Nesterov variant), so the next round starts where the momentum is going.
* ``adasum`` — per-row Adasum (Maleki et al., 2021): two deltas ``a``, ``b`` of one word's row become
  ``(1 - a.b / 2|a|^2) a + (1 - a.b / 2|b|^2) b``, reduced pairwise over the contributions. Rows
  that point in independent directions are summed (a word seen by one worker keeps its whole step,
  like sequential SGD), rows that agree are averaged (a frequent word every worker moved the same
  way does not overshoot). It needs no K: workers joining or leaving do not change its scale.
* ``bmuf-adasum`` / ``nbmuf-adasum`` — block momentum over the Adasum-combined delta.

The merge streams row blocks: it holds one block of every contribution at a time, never K full
copies, reading through the store's random access (``read_at``), so it works on any store.
"""

from __future__ import annotations

import dataclasses
import io
import math
import threading
import tokenize
import zipfile
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import IntegrityError, InvalidInputError, NlpzkError, StoreError
from ..store import Store

#: how a contribution's delta is stored (the job spec's ``delta_dtype``): float32, or bfloat16 (the
#: upper 16 bits of float32, rounded to nearest even; stored as uint16): half the bytes to write,
#: sync and read per round, each value within a relative 2**-8 (what a round's step loses, not the
#: parameters: the merge adds the step to the float32 global parameters). PyTorch's DDP offers the same
#: compression for gradients (``bf16_compress_hook``). Jobs created before the choice store float32.
DELTA_DTYPES = ("bfloat16", "float32")
_STORED = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(np.uint16)}

RULES = ("mean", "wmean", "sum", "adasum", "bmuf", "bmuf-wmean", "bmuf-adasum", "nbmuf", "nbmuf-wmean", "nbmuf-adasum")
DEFAULT_RULE = "nbmuf-adasum"
BLOCK_ROWS = 16384


def needs_counts(rule: str) -> bool:
    """Whether the rule reads the contributions' per-word counts (only the ``*wmean`` rules do)."""
    return rule.endswith("wmean")


def delta_dtype_of(spec: dict[str, Any]) -> str:
    """How a job's contributions store their deltas (float32 for jobs created before the choice)."""
    return str(spec.get("delta_dtype") or "float32")


def stored_dtypes() -> tuple[np.dtype, ...]:
    """The dtypes a contribution's delta file may hold (uint16: bfloat16)."""
    return tuple(_STORED.values())


def to_bfloat16(arr: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``arr`` (float32) as bfloat16 bits in ``out`` (uint16, same shape), rounded to nearest even."""
    from ._model import compiled

    compiled().bf16_encode(np.ascontiguousarray(arr).reshape(-1).view(np.uint32), out.reshape(-1))
    return out


def from_bfloat16(bits: np.ndarray, out: np.ndarray) -> np.ndarray:
    """bfloat16 ``bits`` (uint16) as float32 in ``out`` (same shape): exact, one pass."""
    np.left_shift(bits, 16, out=out.view(np.uint32), dtype=np.uint32)
    return out


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InvalidInputError(f"unknown merge rule {rule!r}", hint=f"use one of: {', '.join(RULES)}")
    return rule


def default_eta(k: int, rule: str = DEFAULT_RULE) -> float:
    """Block momentum for ``k`` contributions, as the quality benchmark chose it (docs/benchmarks.md).

    BMUF's classical ``1 - 1/k`` for ``bmuf*``; ``1 - 0.6/k`` for ``nbmuf``/``nbmuf-wmean`` (best at
    k = 4); ``0.8 * (1 - 1/k)`` over Adasum, which already sums what the workers learned
    independently and so needs less (0.4 at k = 2, 0.6 at k = 4). No momentum for one worker.
    """
    if k <= 1 or "bmuf" not in rule:
        return 0.0
    if rule.endswith("adasum"):
        return 0.8 * (1.0 - 1.0 / k)
    return 1.0 - (0.6 if rule.startswith("nbmuf") else 1.0) / k


#: What numpy's header parsing raises on a damaged or foreign header (a cut-off literal is a
#: tokenize.TokenError, not a ValueError; a descr of another type a TypeError or a KeyError).
_BAD_HEADER = (ValueError, TypeError, KeyError, IndexError, SyntaxError, tokenize.TokenError, EOFError, OverflowError)


def _damaged(rel: str, problem: str) -> IntegrityError:
    return IntegrityError(f"store file {rel} is not a readable parameter array: {problem}", hint="the job's files were damaged; train the job again under a new name")


class NpyReader:
    """Random access to rows of a C-ordered ``.npy`` file in the store, without loading it whole.

    Only what nlpzk writes is accepted: a 1-d or 3-d C-ordered array of plain numbers. Any other
    header (cut short, Fortran order, a structured, object or string dtype, a shape of negative or
    non-integer sizes) is IntegrityError, like a file missing (the file is damaged or foreign)."""

    def __init__(self, store: Store, rel: str, *, mmap: bool = False) -> None:
        self.rel = rel
        self._fh = store.open_input(rel)
        self._map: np.ndarray | None = None
        try:
            self.shape, self.dtype, self._offset = self._header(rel)
            local = store.local_path(rel) if mmap else None
            if local is not None and self.complete() and math.prod(self.shape) > 0:
                # rows straight from the page cache: no copy, no fresh buffer to fault in (reading a
                # 17 MB block with read_at took ~10 ms here, mapping it ~1.5 ms). Our files are
                # renamed into place complete and never rewritten; a deleted one stays mapped.
                self._map = np.memmap(local, dtype=self.dtype, mode="r", offset=self._offset, shape=self.shape)
        except BaseException:
            self._fh.close()
            raise
        self._row_bytes = (self.shape[2] if len(self.shape) == 3 else 1) * self.dtype.itemsize

    def _header(self, rel: str) -> tuple[tuple[int, ...], np.dtype, int]:
        buf = io.BytesIO(self._fh.read(min(4096, self._fh.size())))  # our headers take 128 bytes
        try:
            version = np.lib.format.read_magic(buf)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy format version {version}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(buf)
            dtype = np.dtype(dtype)
        except _BAD_HEADER as exc:
            raise _damaged(rel, f"{type(exc).__name__}: {exc}") from None
        if fortran is not False:
            raise _damaged(rel, "it is Fortran-ordered; expected C order")
        if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0:
            raise _damaged(rel, f"it holds {dtype}, not plain numbers")
        if len(shape) not in (1, 3) or not all(type(n) is int and n >= 0 for n in shape):
            raise _damaged(rel, f"its shape {shape} is not 1-d or 3-d sizes")
        return tuple(shape), dtype, buf.tell()

    def complete(self) -> bool:
        """The file holds every byte its header announces (a truncated file does not)."""
        return self._fh.size() == self._offset + math.prod(self.shape) * self.dtype.itemsize

    def rows(self, m: int | None, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` of matrix ``m`` (for 3-d files) or elements ``a:b`` (for 1-d files).

        Read-only; a view of the file when it is memory-mapped."""
        if self._map is not None:
            return self._map[a:b] if len(self.shape) == 1 else self._map[m, a:b]
        if len(self.shape) == 1:
            start, size = self._offset + a * self.dtype.itemsize, (b - a) * self.dtype.itemsize
        else:
            start, size = self._offset + (m * self.shape[1] + a) * self._row_bytes, (b - a) * self._row_bytes
        data = self._fh.read_at(size, start)
        if len(data) != size:
            raise _damaged(self.rel, f"it ends before byte {start + size} its header announces")
        return np.frombuffer(data, dtype=self.dtype).reshape(b - a, *self.shape[2:])

    def close(self) -> None:
        self._map = None
        self._fh.close()


class ParamsReader:
    """Rows of global parameters stored as consecutive row-range parts (one ``.npy`` per part)."""

    def __init__(self, store: Store, parts: Sequence[str], *, mmap: bool = False) -> None:
        self._parts = [NpyReader(store, p, mmap=mmap) for p in parts]
        self._starts = np.cumsum([0] + [p.shape[1] for p in self._parts])
        first = self._parts[0].shape
        self.shape = (first[0], int(self._starts[-1]), first[2])

    def rows(self, m: int, a: int, b: int) -> np.ndarray:
        pieces = []
        for i, part in enumerate(self._parts):
            lo, hi = int(self._starts[i]), int(self._starts[i + 1])
            if hi <= a or lo >= b:
                continue
            pieces.append(part.rows(m, max(a, lo) - lo, min(b, hi) - lo))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def close(self) -> None:
        for p in self._parts:
            p.close()


def readable(store: Store, rel: str, shape: tuple[int, ...], dtype: Any) -> bool:
    """Whether ``rel`` is a complete ``.npy`` of ``shape`` and ``dtype`` (one, or a tuple of those
    allowed; header and size only).

    False only for what shows the file itself is bad: missing, not an ``.npy`` header, another
    shape, or fewer bytes than its header announces. An error reading it (permission denied, an
    I/O or network error, a store this process cannot reach as the others do) says nothing about
    the file and is raised as StoreError: the caller un-commits what is unreadable, and must not
    throw away another worker's committed work over its own trouble reading it.
    """
    try:
        r = NpyReader(store, rel)
    except IntegrityError:  # missing, or not a .npy as nlpzk writes them (a header cut short, garbage)
        return False
    except StoreError:
        raise
    except (NlpzkError, OSError) as exc:
        raise StoreError(f"store error while reading {rel}: {exc}") from None
    try:
        dtypes = [np.dtype(t) for t in (dtype if isinstance(dtype, tuple) else (dtype,))]
        return tuple(r.shape) == tuple(shape) and r.dtype in dtypes and r.complete()
    except OSError as exc:
        raise StoreError(f"store error while reading {rel}: {exc}") from None
    finally:
        r.close()


def word_sum(arr: np.ndarray) -> str:
    """A quick checksum of an array's bytes: their sum as little-endian 64-bit words, modulo 2**64
    (the last partial word as one), in hex. ~10 GB/s here, a pass numpy does without a copy.

    Not a hash against tampering: it tells a file whose pages an OS crash left zero or stale
    (written, never flushed) from the one that was written (a changed page changes the sum
    unless its words' sum happens to be 0 modulo 2**64)."""
    b = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    n8 = len(b) // 8 * 8
    total = int(np.add.reduce(b[:n8].view(np.uint64), dtype=np.uint64)) if n8 else 0
    total += int.from_bytes(b[n8:].tobytes(), "little")
    return f"{total % 2**64:016x}"


class WordSum:
    """:func:`word_sum` of a sequence of arrays' bytes, fed one at a time (``update``): equal to
    ``word_sum`` of their concatenation, whatever their sizes (bytes left over from a block that
    does not end on a word boundary start the next one's first word)."""

    def __init__(self) -> None:
        self._total = 0
        self._carry = b""  # the bytes of a word still being filled, < 8

    def update(self, arr: np.ndarray) -> None:
        b = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        at = 0
        if self._carry:
            at = min(len(b), 8 - len(self._carry))
            word = self._carry + b[:at].tobytes()
            if len(word) < 8:
                self._carry = word
                return
            self._total += int.from_bytes(word, "little")
            self._carry = b""
        n8 = (len(b) - at) // 8 * 8
        if n8:
            self._total += int(np.add.reduce(b[at:at + n8].view(np.uint64), dtype=np.uint64))
        self._carry = b[at + n8:].tobytes()

    def hexdigest(self) -> str:
        return f"{(self._total + int.from_bytes(self._carry, 'little')) % 2**64:016x}"


def data_sum(store: Store, rel: str) -> str:
    """:func:`word_sum` of the array in ``.npy`` file ``rel`` (memory-mapped on a local store)."""
    return word_sum(load_array(store, rel))


def part_bounds(v: int, parts: int) -> list[tuple[int, int]]:
    """Split ``v`` rows into ``parts`` contiguous ranges of (nearly) equal size."""
    parts = max(1, min(parts, v))
    return [(i * v // parts, (i + 1) * v // parts) for i in range(parts)]


def load_params(store: Store, parts: Sequence[str]) -> np.ndarray:
    """The model's matrices ``(2, V, D)`` from the parts (momentum left out); a single local part
    comes back memory-mapped. (A worker loads its model from :func:`param_parts` directly.)"""
    arrays = [np.asarray(load_array(store, p)[:2]) for p in parts]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)


def param_parts(store: Store, parts: Sequence[str], rows: int, dim: int) -> list[np.ndarray]:
    """The parts of a round's global parameters as arrays (each ``(M >= 2, rows, dim)`` float32,
    memory-mapped on a local store), checked to be float32 and to cover ``rows`` rows together."""
    arrays = [load_array(store, p) for p in parts]
    for rel, a in zip(parts, arrays):
        if a.ndim != 3 or a.shape[0] < 2 or a.shape[2] != dim or a.dtype != np.float32:
            raise IntegrityError(f"store file {rel} holds a {a.dtype} array of shape {a.shape}, not the job's float32 (2+, rows, {dim}) parameters", hint="the job's files were damaged; train the job again under a new name")
    got = sum(a.shape[1] for a in arrays)
    if got != rows:
        raise InvalidInputError(f"parameter parts hold {got} rows; the model has {rows}")
    return arrays


@dataclasses.dataclass(frozen=True)
class Contribution:
    delta: str
    counts: str
    words: int


def _blocks(lo: int, hi: int, block: int) -> Iterator[tuple[int, int]]:
    for a in range(lo, hi, block):
        yield a, min(hi, a + block)


def merge(
    store: Store,
    global_parts: str | Sequence[str],
    contributions: Sequence[Contribution],
    rule: str,
    out_path: str,
    *,
    rows: tuple[int, int] | None = None,
    eta: float | None = None,
    block_rows: int = BLOCK_ROWS,
    checksum: bool = True,
    durable: bool = True,
    reuse: Sequence[str] = (),
) -> tuple[str | None, int, str]:
    """Write rows ``rows`` (default: all) of the next global parameters to ``out_path``.

    Returns ``(sha256, bytes, sum)``: ``sum`` is :func:`word_sum` of the array's data, taken as it
    is written (what :func:`data_sum` of the file gives while it is intact). Each worker can reduce
    its own row range (reduce-scatter): the output is one part of the next parameters, read back
    with :class:`ParamsReader`. ``durable``, ``reuse``: as :meth:`Store.atomic_output`.
    """
    check_rule(rule)
    if not contributions:
        raise InvalidInputError("nothing to merge: the round has no contributions")
    nesterov = rule.startswith("nbmuf")
    glob = ParamsReader(store, [global_parts] if isinstance(global_parts, str) else global_parts, mmap=True)
    deltas = [NpyReader(store, c.delta, mmap=True) for c in contributions]
    counts = [NpyReader(store, c.counts, mmap=True) for c in contributions] if needs_counts(rule) else []
    try:
        v_all, d = glob.shape[1], glob.shape[2]
        lo, hi = rows or (0, v_all)
        v = hi - lo
        momentum = "bmuf" in rule
        if eta is None:
            eta = default_eta(len(contributions), rule)
        eta32 = np.float32(eta)
        words = np.array([max(1, c.words) for c in contributions], dtype=np.float64)
        wshare = (words / words.sum()).astype(np.float32)
        m_out = 4 if momentum else 2
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (m_out, v, d)}
        scratch = _SCRATCH if store.local else _Fresh()
        total = WordSum()
        with store.atomic_output(out_path, checksum=checksum, durable=durable, reuse=reuse) as out:
            np.lib.format.write_array_header_1_0(out, header)
            # the (M, V, D) file is written matrix by matrix; each block needs every contribution's
            # rows. On a local store the blocks' buffers are kept for the next merge (same shapes
            # every round): fresh ones cost a page fault per 4 KiB here, ~1/4 of a merge's time.
            steps: list[np.ndarray] = []
            for m in (0, 1):
                for a, b in _blocks(lo, hi, block_rows):
                    # Adasum widens bfloat16 deltas as it reads them; the other rules first
                    blocks = [r.rows(m, a, b) for r in deltas]
                    if not rule.endswith("adasum"):
                        blocks = [_as_float32(blk, scratch, f"delta{i}") for i, blk in enumerate(blocks)]
                    g = _combine(rule, blocks, [c.rows(None, a, b) for c in counts], wshare, scratch.get("g", (b - a, d)))
                    if momentum:
                        # step = eta * prev + g; the parameters move by step (bmuf) or eta * step + g
                        # (nbmuf), in float32 with numpy's roundings, in one compiled pass
                        step = scratch.get(f"step{len(steps)}", (b - a, d))
                        prev = glob.rows(m + 2, a, b) if glob.shape[0] >= 4 else g
                        _apply_momentum(g, glob.rows(m, a, b), prev, eta32, glob.shape[0] >= 4, nesterov, step)
                        steps.append(step)
                    else:
                        g += glob.rows(m, a, b)
                    out.write(g)
                    total.update(g)
            for step in steps:
                out.write(step)
                total.update(step)
        return out.sha256, out.bytes, total.hexdigest()
    finally:
        for r in [glob, *deltas, *counts]:
            r.close()


def _as_float32(block: np.ndarray, scratch: Any, name: str) -> np.ndarray:
    """A contribution's block as float32: as it is, or decoded from bfloat16 into a scratch buffer."""
    if block.dtype == np.float32:
        return block
    if block.dtype != np.uint16:
        raise InvalidInputError(f"a contribution holds {block.dtype} deltas; expected float32 or bfloat16 (uint16)")
    return from_bfloat16(block, scratch.get(name, block.shape))


class _Scratch(threading.local):
    """Buffers a thread's merges reuse, by name (the last shape asked for under each name).

    At most ``LIMIT`` bytes are kept between merges (a part's momentum steps are held until its
    parameters are written: for a very large model they are allocated afresh each merge instead)."""

    LIMIT = 256 << 20

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        buf = self.buffers.get(name)
        if buf is not None and buf.shape == shape:
            return buf
        self.buffers.pop(name, None)
        buf = np.empty(shape, np.float32)
        if sum(b.nbytes for b in self.buffers.values()) + buf.nbytes <= self.LIMIT:
            self.buffers[name] = buf
        return buf


class _Fresh:
    """New buffers every time, for stores whose output streams may keep a written buffer to upload
    later (pyarrow's S3 stream takes large writes without copying them)."""

    def get(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        return np.empty(shape, np.float32)


_SCRATCH = _Scratch()


def _apply_momentum(g: np.ndarray, glob: np.ndarray, prev: np.ndarray, eta: np.float32, has_prev: bool, nesterov: bool, step: np.ndarray) -> None:
    from ._model import compiled

    compiled().momentum_step(g, np.ascontiguousarray(glob), np.ascontiguousarray(prev), eta, has_prev, nesterov, step)


def _adasum_pair(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    from ._model import compiled

    out = np.empty(a.shape, dtype=np.float32) if out is None else out
    if a.dtype == b.dtype == np.uint16:  # two bfloat16 deltas: widened row by row in the kernel
        compiled().adasum_pair_bf16(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    else:
        compiled().adasum_pair(_float32(a), _float32(b), out)
    return out


def _float32(block: np.ndarray) -> np.ndarray:
    """A float32 block as it is; a bfloat16 one (``uint16``) widened into a new array."""
    if block.dtype == np.uint16:
        return from_bfloat16(block, np.empty(block.shape, np.float32))
    return np.ascontiguousarray(block, dtype=np.float32)


def adasum(blocks: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Per-row Adasum of ``blocks`` (each ``(rows, D)``, float32 or bfloat16 as ``uint16``), reduced
    as a balanced binary tree in the given order.

    The result (float32) is ``out`` if given, else a new array (the caller may change it in place);
    never one of ``blocks``.
    """
    xs = list(blocks)
    if len(xs) == 1:
        one = _float32(xs[0])
        if out is None:
            return one.copy() if one is xs[0] or np.shares_memory(one, xs[0]) else one
        out[...] = one
        return out
    while len(xs) > 2:
        xs = [_adasum_pair(xs[i], xs[i + 1]) if i + 1 < len(xs) else xs[i] for i in range(0, len(xs), 2)]
    return _adasum_pair(xs[0], xs[1], out)


def _combine(rule: str, blocks: list[np.ndarray], counts: list[np.ndarray], wshare: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The rule's combined delta of one block, written into ``out`` (or, for ``*wmean``, a new array)."""
    if rule.endswith("adasum"):
        return adasum(blocks, out)
    # accumulate in place: no (K, rows, D) stack, one pass over each contribution's block
    if rule == "sum" or not rule.endswith("wmean"):
        acc = out
        acc[...] = 0
        for share, blk in zip(wshare, blocks):
            if rule == "sum":
                acc += blk
            else:
                acc += np.float32(share) * blk
        return acc
    total = np.zeros(blocks[0].shape[0], dtype=np.float32)
    weighted = np.zeros_like(blocks[0], dtype=np.float32)
    mean = np.zeros_like(blocks[0], dtype=np.float32)
    for share, blk, n in zip(wshare, blocks, counts):
        n = n.astype(np.float32)
        total += n
        weighted += n[:, None] * blk
        mean += np.float32(share) * blk
    seen = total > 0
    weighted /= np.where(seen, total, np.float32(1))[:, None]
    return np.where(seen[:, None], weighted, mean)


def save_array(store: Store, rel: str, arr: np.ndarray, *, checksum: bool = True, durable: bool = True, reuse: Sequence[str] = ()) -> tuple[str | None, int]:
    """Write ``arr`` as ``.npy`` through the store (atomic; ``durable``, ``reuse`` as ``Store.atomic_output``).

    The array's buffer goes to the file as it is (``np.save`` would copy it into chunks first).
    """
    arr = np.ascontiguousarray(arr)
    with store.atomic_output(rel, checksum=checksum, durable=durable, reuse=reuse) as out:
        np.lib.format.write_array_header_1_0(out, np.lib.format.header_data_from_array_1_0(arr))
        out.write(arr.reshape(-1).view(np.uint8))
    return out.sha256, out.bytes


def load_array(store: Store, rel: str) -> np.ndarray:
    """Read a whole ``.npy`` (memory-mapped when the store is local)."""
    local = store.local_path(rel)
    try:
        array = None
        if local is not None:
            try:
                array = np.load(local, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                store.open_input(rel)  # raises the store's IntegrityError for a missing file
        if array is None:
            array = np.load(io.BytesIO(store.read_bytes(rel)), allow_pickle=False)
    except (*_BAD_HEADER, zipfile.BadZipFile, IsADirectoryError) as exc:  # truncated, not .npy, a directory in its place
        raise _damaged(rel, str(exc)) from None
    except OSError as exc:  # permission denied, an I/O error: says nothing about the file itself
        raise StoreError(f"store error while reading {rel}: {exc}", hint="check the store (permissions, the disk or mount); nothing is lost: resume the job once it reads again") from None
    if not isinstance(array, np.ndarray):  # np.load also opens .npz (zip) archives
        raise _damaged(rel, "it is an .npz archive, not one array")
    return array
