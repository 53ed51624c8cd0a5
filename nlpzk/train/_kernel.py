"""nlpzk's skip-gram kernel: negative sampling with the negatives shared by a window (``kernel="batched"``).

gensim's kernel (``word2vec_inner.train_batch_sg``) trains one (context, centre) pair at a time:
for each pair it draws ``negative`` output rows afresh and makes ~19 BLAS calls on 100 floats (dot
products and axpys, each through a function pointer). This one trains a centre word with its whole
window at once, as Ji et al. do ("Parallelizing Word2Vec in Shared and Distributed Memory", 2016,
their pWord2Vec): the window's C context rows (input vectors, ``syn0``) against the centre's output
row and ``negative`` output rows drawn **once for the window** (``syn1neg``). The block's C x (1 + K)
scores and gradients all come from the rows as they were before it; then each row is updated once.
K/(1+K) fewer random rows are fetched, the loops are compiled by numba to SIMD code, and on this
project's machine it trains ~3x the words per second of gensim's kernel on one thread with the same
scores (docs/benchmarks.md).

What is kept from gensim, so a job trains the same model: the vocabulary's ``sample_int``
downsampling and ``cum_table`` negative-sampling tables (built by gensim, see ``_model``), the
reduced window (a random ``b`` in ``[0, window)`` per centre, the window ``window - b`` each side),
sentences cut at 10,000 kept words, gensim's 48-bit linear congruential generator, its sigmoid and
log-sigmoid tables (1,000 points of [-6, 6); scores outside give no gradient and no loss) and a
learning rate going linearly over the words given. What differs: negatives shared by a window, a
block's updates made together (gensim's output rows move pair by pair), and the learning rate moving
per sentence instead of per 10,000-word batch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: gensim's MAX_WORDS_IN_BATCH: a longer sentence is cut there
MAX_SENTENCE = 10000
_MAX_EXP = np.float32(6.0)
_TABLE_SIZE = 1000
_TABLE_SCALE = np.float32(_TABLE_SIZE / 6.0 / 2)
# gensim's EXP_TABLE and LOG_TABLE: sigmoid and log-sigmoid at 1000 points of [-6, 6)
_x = (np.arange(_TABLE_SIZE, dtype=np.float64) / _TABLE_SIZE * 2 - 1) * 6.0
EXP_TABLE = (np.exp(_x) / (np.exp(_x) + 1)).astype(np.float32)
LOG_TABLE = np.log(EXP_TABLE).astype(np.float32)


@njit(inline="always")
def _next(state: np.ndarray) -> np.uint64:
    """gensim's (and word2vec.c's) generator: 48 bits, multiplier 25214903917, increment 11."""
    state[0] = (state[0] * np.uint64(25214903917) + np.uint64(11)) & np.uint64(281474976710655)
    return state[0]


@njit(fastmath=True, nogil=True, cache=True)
def train_sg(syn0, syn1neg, flat, offsets, sample_int, cum_table, window, negative, a0, a1, total, state, compute_loss, exp_table, log_table):  # pragma: no cover - compiled
    """Train skip-gram with negative sampling on sentences ``offsets[s]:offsets[s+1]`` of ``flat``.

    ``flat``: vocabulary ids (int32); ``total``: the words over which the learning rate goes from
    ``a0`` to ``a1`` (the words given here unless the caller splits a span between threads);
    ``state``: a one-element uint64 array, the generator's state, advanced in place; ``exp_table``,
    ``log_table``: :data:`EXP_TABLE`, :data:`LOG_TABLE` (arguments, not defaults: numba keys its disk
    cache on an omitted argument's value, so a default array compiled anew in every process).
    Returns ``(effective words, loss)``: the words kept by downsampling, the summed ``-log sigmoid``
    of every scored pair (0 unless ``compute_loss``). Releases the GIL: threads may train the same arrays at once (Hogwild).
    """
    dim = syn0.shape[1]
    T = negative + 1
    most = 2 * window
    X = np.empty((most, dim), np.float32)
    dX = np.empty((most, dim), np.float32)
    G = np.empty((most, T), np.float32)
    ctx = np.empty(most, np.int64)
    tgt = np.empty(T, np.int64)
    idx = np.empty(MAX_SENTENCE, np.int64)
    n_cum = cum_table.shape[0]
    cum_last = np.uint64(cum_table[n_cum - 1])
    done = 0
    effective = 0
    loss = 0.0
    for s in range(offsets.shape[0] - 1):
        start = offsets[s]
        end = offsets[s + 1]
        alpha = np.float32(a0 - (a0 - a1) * min(1.0, done / max(total, 1)))
        done += end - start
        n = 0
        for p in range(start, end):
            w = flat[p]
            if w < 0:
                continue
            if np.uint64(sample_int[w]) < ((_next(state) >> np.uint64(16)) & np.uint64(0xFFFFFFFF)):
                continue
            idx[n] = w
            n += 1
            if n == MAX_SENTENCE:
                break
        effective += n
        for i in range(n):
            b = np.int64((_next(state) >> np.uint64(16)) % np.uint64(window))
            lo = max(0, i - window + b)
            hi = min(n, i + window + 1 - b)
            C = 0
            for j in range(lo, hi):
                if j != i:
                    ctx[C] = idx[j]
                    C += 1
            if C == 0:
                continue
            centre = idx[i]
            tgt[0] = centre
            for k in range(1, T):
                r = (_next(state) >> np.uint64(16)) % cum_last
                left = 0
                right = n_cum
                while left < right:  # bisect_left, as gensim
                    mid = (left + right) >> 1
                    if np.uint64(cum_table[mid]) < r:
                        left = mid + 1
                    else:
                        right = mid
                tgt[k] = -1 if left == centre else left  # gensim skips a draw of the centre itself
            # the block's scores and gradients, all from the parameters as they were before it
            for c in range(C):
                row = syn0[ctx[c]]
                for d in range(dim):
                    X[c, d] = row[d]
                    dX[c, d] = 0.0
            for t in range(T):
                ti = tgt[t]
                label = np.float32(1.0) if t == 0 else np.float32(0.0)
                for c in range(C):
                    G[c, t] = 0.0
                if ti < 0:
                    continue
                y = syn1neg[ti]
                for c in range(C):
                    f = np.float32(0.0)
                    for d in range(dim):
                        f += X[c, d] * y[d]
                    if f <= -_MAX_EXP or f >= _MAX_EXP:
                        continue
                    k = min(int((f + _MAX_EXP) * _TABLE_SCALE), _TABLE_SIZE - 1)  # f just below 6 may round up
                    G[c, t] = (label - exp_table[k]) * alpha
                    if compute_loss:
                        loss -= log_table[k] if t == 0 else log_table[_TABLE_SIZE - 1 - k]
            # then the updates: the contexts' from the output rows as they were, then the outputs'
            # (two passes: one pass per output row trains the same speed here but lets a negative
            # drawn twice in a block give the contexts its already-updated row)
            for t in range(T):
                ti = tgt[t]
                if ti < 0:
                    continue
                y = syn1neg[ti]
                for c in range(C):
                    g = G[c, t]
                    if g != 0.0:
                        for d in range(dim):
                            dX[c, d] += g * y[d]
            for t in range(T):
                ti = tgt[t]
                if ti < 0:
                    continue
                y = syn1neg[ti]
                for c in range(C):
                    g = G[c, t]
                    if g != 0.0:
                        for d in range(dim):
                            y[d] += g * X[c, d]
            for c in range(C):
                row = syn0[ctx[c]]
                for d in range(dim):
                    row[d] += dX[c, d]
    return effective, loss


@njit(inline="always")
def _adasum_row(x, y, out):  # pragma: no cover - compiled
    dot = 0.0
    na = 0.0
    nb = 0.0
    for d in range(x.shape[0]):
        p = np.float64(x[d])
        q = np.float64(y[d])
        dot += p * q
        na += p * p
        nb += q * q
    ca = np.float32(1.0 - dot / (2.0 * na)) if na > 0 else np.float32(1.0)
    cb = np.float32(1.0 - dot / (2.0 * nb)) if nb > 0 else np.float32(1.0)
    for d in range(x.shape[0]):
        out[d] = ca * x[d] + cb * y[d]


@njit(fastmath=True, nogil=True, cache=True)
def adasum_pair(a, b, out):  # pragma: no cover - compiled
    """Per-row Adasum of two ``(rows, D)`` float32 blocks into ``out``: row ``i`` becomes
    ``(1 - a.b / 2|a|^2) a + (1 - a.b / 2|b|^2) b`` (a zero row's coefficient is 1).

    One pass over the rows with the dot products in float64; numpy's version made seven passes and
    four temporaries (~55 ms of a 2-worker round's ~75 ms merge here)."""
    for i in range(a.shape[0]):
        _adasum_row(a[i], b[i], out[i])


@njit(fastmath=True, nogil=True, cache=True)
def adasum_pair_bf16(a, b, out):  # pragma: no cover - compiled
    """:func:`adasum_pair` of two bfloat16 blocks (``uint16``), each row widened to float32 as it
    is read (exact: the 16 bits become the upper half), instead of a numpy pass per block first."""
    x = np.empty(a.shape[1], np.uint32)
    y = np.empty(a.shape[1], np.uint32)
    xf = x.view(np.float32)
    yf = y.view(np.float32)
    for i in range(a.shape[0]):
        for d in range(a.shape[1]):
            x[d] = np.uint32(a[i, d]) << np.uint32(16)
            y[d] = np.uint32(b[i, d]) << np.uint32(16)
        _adasum_row(xf, yf, out[i])


@njit(nogil=True, cache=True)
def momentum_step(g, glob, prev, eta, has_prev, nesterov, step):  # pragma: no cover - compiled
    """Block momentum over one block, in place: ``step = eta * prev + g`` (``g`` alone without a
    previous step), then ``g = glob + (eta * step + g)`` (Nesterov) or ``glob + step``.

    Not fastmath: float32 operations in numpy's order and roundings (no fused multiply-adds), so
    the result is what the numpy expressions give, in one pass instead of four."""
    for i in range(g.shape[0]):
        for d in range(g.shape[1]):
            x = g[i, d]
            s = eta * prev[i, d] + x if has_prev else x
            step[i, d] = s
            move = x + eta * s if nesterov else s
            g[i, d] = move + glob[i, d]


@njit(nogil=True, cache=True)
def bf16_encode(bits, out):  # pragma: no cover - compiled
    """float32 values (their bits, ``uint32``) to bfloat16 (``uint16``): the upper half rounded to
    nearest, ties to even; a NaN stays a (quiet) NaN, infinities stay infinite."""
    for i in range(bits.shape[0]):
        u = np.uint32(bits[i])
        if (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
            out[i] = np.uint16((u >> np.uint32(16)) | np.uint32(0x40))
        else:
            out[i] = np.uint16((np.uint64(u) + np.uint64(0x7FFF) + np.uint64((u >> np.uint32(16)) & np.uint32(1))) >> np.uint64(16))
