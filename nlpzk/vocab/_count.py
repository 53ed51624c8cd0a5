"""Counting tokens over corpus shards, in one process or spread over several, with an exact merge.

Shards store sentences as dictionary-encoded ``list<string>`` pages. Reading the column back as
``list<dictionary<string>>`` keeps the strings in the (small) dictionary and the tokens as int32
indices, so a shard is counted with one ``bincount`` over the indices instead of one Python call per
token. Per-chunk ``(token, count)`` tables are summed with an Arrow group-by, which is exact, so the
result does not depend on how shards were split over processes.
"""

from __future__ import annotations

import hashlib
import os
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import IntegrityError
from ..store import Store, verify_hint

COUNTS_SCHEMA = pa.schema([pa.field("token", pa.string()), pa.field("count", pa.int64())])


def _count_chunk(chunk: pa.Array) -> pa.Table:
    flat = chunk.flatten()
    if flat.null_count:
        flat = pc.drop_null(flat)
    if not isinstance(flat, pa.DictionaryArray):  # a shard written without dictionary pages
        flat = pc.dictionary_encode(flat)
    counts = np.bincount(flat.indices.to_numpy(zero_copy_only=False), minlength=len(flat.dictionary))
    seen = np.flatnonzero(counts)
    return pa.table(
        [pc.take(flat.dictionary, pa.array(seen)).cast(pa.string()), pa.array(counts[seen], pa.int64())], schema=COUNTS_SCHEMA
    )


def merge_counts(parts: Sequence[pa.Table]) -> pa.Table:
    """Sum ``(token, count)`` tables into one, a row per distinct token (in no particular order)."""
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return COUNTS_SCHEMA.empty_table()
    if len(parts) == 1 and pc.count_distinct(parts[0]["token"]).as_py() == parts[0].num_rows:
        return parts[0]
    summed = pa.concat_tables(parts).group_by("token").aggregate([("count", "sum")])
    return pa.table([summed["token"], summed["count_sum"]], schema=COUNTS_SCHEMA)


def count_file(store: Store, path: str, sha256: str | None = None) -> pa.Table:
    """``(token, count)`` of one shard file; with ``sha256``, the bytes are checked against it first."""
    try:
        with store.open_input(path) as fh:
            data = fh.read_buffer()
    except IntegrityError:
        raise
    except OSError as exc:
        raise IntegrityError(f"shard {path} cannot be read: {exc}", hint=verify_hint(path)) from None
    if sha256 is not None and hashlib.sha256(memoryview(data)).hexdigest() != sha256:
        raise IntegrityError(f"shard {path} fails its checksum", hint=verify_hint(path))
    try:
        table = pq.read_table(pa.BufferReader(data), columns=["tokens"], read_dictionary=["tokens.list.element"])
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise IntegrityError(f"shard {path} cannot be read: {exc}", hint=verify_hint(path)) from None
    return merge_counts([_count_chunk(c) for c in table.column("tokens").chunks])


def _count_files(store_uri: str, files: Sequence[tuple[str, str | None]]) -> pa.Table:
    store = Store(store_uri)
    return merge_counts([count_file(store, p, h) for p, h in files])


def count_shards(
    store: Store,
    paths: Sequence[str],
    *,
    processes: int = 1,
    weights: Sequence[int] | None = None,
    sha256s: Sequence[str] | None = None,
) -> pa.Table:
    """Exact token counts over ``paths``; with ``processes > 1`` the files are split over worker processes.

    ``weights`` (e.g. token counts per shard) balance the split: each worker gets about the same work.
    ``sha256s`` (the registered checksums) make every file be checked before it is counted.
    """
    files = list(zip(paths, sha256s if sha256s is not None else [None] * len(paths)))
    processes = max(1, min(processes, len(files)))
    if processes == 1:
        return merge_counts([count_file(store, p, h) for p, h in files])
    groups: list[list[tuple[str, str | None]]] = [[] for _ in range(processes)]
    loads = [0] * processes
    order = sorted(range(len(files)), key=lambda i: -(weights[i] if weights else 1))
    for i in order:  # greedy: biggest shard to the least loaded worker
        k = loads.index(min(loads))
        groups[k].append(files[i])
        loads[k] += weights[i] if weights else 1
    # spawn, not fork: the parent runs kazoo and Arrow thread pools, which must not be forked mid-flight.
    ctx = multiprocessing.get_context("spawn")
    from .._children import die_with_parent

    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        parts = list(pool.map(_count_files, [store.uri] * processes, groups))
    return merge_counts(parts)
