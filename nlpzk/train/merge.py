"""Merge rules: how the workers' contributions of a round become the next global parameters.

Every contribution is a delta ``local - global`` of shape ``(2, V, D)`` plus the number of times each
word occurred in the data it was trained on. Rules:

* ``mean``  — words-weighted mean of the deltas (Spark MLlib style model averaging).
* ``wmean`` — per-word weighted mean: row ``i`` averages only the contributions whose data contained
  word ``i``, weighted by its count there (rows nobody saw fall back to ``mean``). A word that
  occurred in one worker's data keeps that worker's full step instead of 1/K of it.
* ``sum``   — sum of the deltas (as if the workers' steps had been applied one after another).
* ``bmuf`` / ``bmuf-wmean`` — block momentum (BMUF, SlowMo): ``step = eta * previous step + G``
  with ``G`` the ``mean`` (or ``wmean``) delta; the step is kept in the parameters as ``[2:4]``.

The merge streams row blocks: it holds one block of every contribution at a time, never K full
copies, reading through the store's random access (``read_at``), so it works on any store.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Iterator, Sequence

import numpy as np

from ..errors import InvalidInputError
from ..store import Store

RULES = ("mean", "wmean", "sum", "bmuf", "bmuf-wmean")
DEFAULT_RULE = "bmuf-wmean"
BLOCK_ROWS = 16384


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InvalidInputError(f"unknown merge rule {rule!r}", hint=f"use one of: {', '.join(RULES)}")
    return rule


def default_eta(k: int) -> float:
    """Block momentum for ``k`` contributions: 1 - 1/k (BMUF's recommendation)."""
    return max(0.0, 1.0 - 1.0 / max(1, k))


class NpyReader:
    """Random access to rows of a C-ordered ``.npy`` file in the store, without loading it whole."""

    def __init__(self, store: Store, rel: str) -> None:
        self._fh = store.open_input(rel)
        head = self._fh.read(min(4096, self._fh.size()))
        buf = io.BytesIO(head)
        version = np.lib.format.read_magic(buf)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(buf)
        if fortran:
            raise InvalidInputError(f"{rel} is Fortran-ordered; expected C order")
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._offset = buf.tell()
        self._row_bytes = (shape[2] if len(shape) == 3 else 1) * self.dtype.itemsize

    def rows(self, m: int | None, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` of matrix ``m`` (for 3-d files) or elements ``a:b`` (for 1-d files)."""
        if len(self.shape) == 1:
            start = self._offset + a * self.dtype.itemsize
            data = self._fh.read_at((b - a) * self.dtype.itemsize, start)
            return np.frombuffer(data, dtype=self.dtype)
        v = self.shape[1]
        start = self._offset + (m * v + a) * self._row_bytes
        data = self._fh.read_at((b - a) * self._row_bytes, start)
        return np.frombuffer(data, dtype=self.dtype).reshape(b - a, *self.shape[2:])

    def close(self) -> None:
        self._fh.close()


@dataclasses.dataclass(frozen=True)
class Contribution:
    delta: str
    counts: str
    words: int


def _blocks(v: int, block: int) -> Iterator[tuple[int, int]]:
    for a in range(0, v, block):
        yield a, min(v, a + block)


def merge(
    store: Store,
    global_path: str,
    contributions: Sequence[Contribution],
    rule: str,
    out_path: str,
    *,
    eta: float | None = None,
    block_rows: int = BLOCK_ROWS,
) -> tuple[str, int]:
    """Write the next global parameters to ``out_path``; returns ``(sha256, bytes)``."""
    check_rule(rule)
    if not contributions:
        raise InvalidInputError("nothing to merge: the round has no contributions")
    glob = NpyReader(store, global_path)
    deltas = [NpyReader(store, c.delta) for c in contributions]
    counts = [NpyReader(store, c.counts) for c in contributions] if rule.endswith("wmean") else []
    try:
        _, v, d = glob.shape[0], glob.shape[1], glob.shape[2]
        momentum = rule.startswith("bmuf")
        if eta is None:
            eta = default_eta(len(contributions))
        words = np.array([max(1, c.words) for c in contributions], dtype=np.float64)
        wshare = (words / words.sum()).astype(np.float32)
        m_out = 4 if momentum else 2
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (m_out, v, d)}
        with store.atomic_output(out_path) as out:
            np.lib.format.write_array_header_1_0(out, header)
            # the (M, V, D) file is written matrix by matrix; each block needs every contribution's rows
            steps: dict[tuple[int, int], np.ndarray] = {}
            for m in (0, 1):
                for a, b in _blocks(v, block_rows):
                    g = _combine(rule, [r.rows(m, a, b) for r in deltas], [c.rows(None, a, b) for c in counts], wshare)
                    if momentum:
                        prev = glob.rows(m + 2, a, b) if glob.shape[0] >= 4 else np.zeros((b - a, d), np.float32)
                        g = eta * prev + g
                        steps[(m, a)] = g.astype(np.float32, copy=False)
                    out.write(np.ascontiguousarray(glob.rows(m, a, b) + g, dtype=np.float32).tobytes())
            if momentum:
                for m in (0, 1):
                    for a, _b in _blocks(v, block_rows):
                        out.write(steps.pop((m, a)).tobytes())
        return out.sha256, out.bytes
    finally:
        for r in [glob, *deltas, *counts]:
            r.close()


def _combine(rule: str, blocks: list[np.ndarray], counts: list[np.ndarray], wshare: np.ndarray) -> np.ndarray:
    if rule == "sum":
        return np.sum(blocks, axis=0, dtype=np.float32)
    mean = np.tensordot(wshare, np.stack(blocks), axes=1).astype(np.float32)
    if not rule.endswith("wmean"):
        return mean
    n = np.stack(counts).astype(np.float32)  # (K, rows)
    total = n.sum(axis=0)
    seen = total > 0
    weighted = np.einsum("kr,krd->rd", n, np.stack(blocks)) / np.where(seen, total, 1.0)[:, None]
    return np.where(seen[:, None], weighted, mean).astype(np.float32)


def save_array(store: Store, rel: str, arr: np.ndarray) -> tuple[str, int]:
    """Write ``arr`` as ``.npy`` through the store (atomic)."""
    with store.atomic_output(rel) as out:
        np.lib.format.write_array(out, np.ascontiguousarray(arr), allow_pickle=False)
    return out.sha256, out.bytes


def load_array(store: Store, rel: str) -> np.ndarray:
    """Read a whole ``.npy`` (memory-mapped when the store is local)."""
    local = store.local_path(rel)
    if local is not None:
        try:
            return np.load(local, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            store.open_input(rel)  # raises the store's IntegrityError for a missing file
    return np.load(io.BytesIO(store.read_bytes(rel)), allow_pickle=False)
