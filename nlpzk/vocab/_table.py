"""The version table and its id rules, as pure functions on Arrow tables (no ZooKeeper, no store).

A version table has one row per id, in id order::

    id      int32    dense row index into embedding matrices
    token   string
    count   int64    occurrences in the corpus the version was counted from
    active  bool     False for a token kept only because an ancestor had it (count < min_count)

Id rules (pinned by golden-value tests):

* without a parent: specials first (in the order given), then tokens with ``count >= min_count`` by
  descending count, ties broken by the token's UTF-8 bytes ascending;
* with a parent: every parent row keeps its id (count updated, marked inactive when under
  ``min_count``; specials stay active), then specials the parent lacks, then new tokens by the same
  order as above. Ids are never reused or renumbered.

``max_size`` caps the number of rows; parent rows and specials are always kept.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import IntegrityError, InvalidInputError

_INT64_MAX = 2**63 - 1

TABLE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int32(), nullable=False),
        pa.field("token", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("active", pa.bool_(), nullable=False),
    ]
)


def check_params(min_count: int, max_size: int | None, specials: Sequence[str]) -> list[str]:
    """Validate build parameters; return the specials as a list of distinct non-empty strings."""
    if not isinstance(min_count, int) or min_count < 1:
        raise InvalidInputError(
            f"--min-count must be an integer >= 1, not {min_count!r}", hint="--min-count N leaves out tokens seen fewer than N times; 1 (the default) keeps every token"
        )
    specials = list(specials)
    if any(not isinstance(s, str) or not s for s in specials):
        raise InvalidInputError(f"--specials must be non-empty strings: {specials!r}", hint='give them comma-separated, e.g. --specials "<unk>,<pad>"')
    spaced = [s for s in specials if any(ch.isspace() for ch in s)]
    if spaced:
        # a token holding whitespace is never produced by the tokenizer, and no txt/freq export can hold it
        raise InvalidInputError(f"special token {spaced[0]!r} contains whitespace", hint='give tokens without spaces, comma-separated, e.g. --specials "<unk>,<pad>"')
    if len(set(specials)) != len(specials):
        repeated = sorted({s for s in specials if specials.count(s) > 1})
        raise InvalidInputError(
            f"--specials list {', '.join(repeated)} more than once: {specials!r}", hint='list each special token once, e.g. --specials "<unk>,<pad>"'
        )
    if max_size is not None and (not isinstance(max_size, int) or max_size < max(1, len(specials))):
        raise InvalidInputError(
            f"--max-size must be an integer >= {max(1, len(specials))} (room for the specials), not {max_size!r}", hint="give the most ids to keep, or leave --max-size out for no limit"
        )
    return specials


def _ranked(counts: pa.Table) -> pa.Table:
    """Counts ordered by descending count, then token bytes ascending (a total, deterministic order)."""
    order = pc.sort_indices(counts, sort_keys=[("count", "descending"), ("token", "ascending")])
    return counts.take(order)


def assign_ids(
    counts: pa.Table,
    *,
    min_count: int = 1,
    max_size: int | None = None,
    specials: Sequence[str] = (),
    parent: pa.Table | None = None,
    parent_specials: Sequence[str] = (),
) -> pa.Table:
    """Turn ``(token, count)`` counts into a version table following the id rules above."""
    specials = check_params(min_count, max_size, specials)
    # counts are int64: a larger threshold or cap means the same as the largest int64 (Arrow and
    # numpy refuse to compare with a bigger Python int)
    min_count = min(min_count, _INT64_MAX)
    max_size = None if max_size is None else min(max_size, _INT64_MAX)
    token_col = counts["token"].combine_chunks() if counts.num_rows else pa.array([], pa.string())
    count_col = counts["count"].combine_chunks() if counts.num_rows else pa.array([], pa.int64())

    def count_of(tokens: pa.Array) -> np.ndarray:
        pos = pc.index_in(tokens, value_set=token_col)
        got = pc.take(count_col, pc.fill_null(pos, 0)) if len(token_col) else pa.nulls(len(tokens), pa.int64())
        return pc.if_else(pc.is_null(pos), 0, got).to_numpy(zero_copy_only=False).astype(np.int64)

    head_tokens: list[pa.Array] = []
    head_counts: list[np.ndarray] = []
    head_active: list[np.ndarray] = []
    all_specials = pa.array(merged_specials(parent_specials, specials), pa.string())
    known: set[str] = set()
    if parent is not None:
        ptokens = parent["token"].combine_chunks()
        pcounts = count_of(ptokens)
        is_special = pc.is_in(ptokens, value_set=all_specials).to_numpy(zero_copy_only=False)
        head_tokens.append(ptokens)
        head_counts.append(pcounts)
        head_active.append((pcounts >= min_count) | is_special)
        known = set(pc.filter(ptokens, pc.is_in(ptokens, value_set=pa.array(specials, pa.string()))).to_pylist())
    new_specials = [s for s in specials if s not in known]
    if new_specials:
        sp = pa.array(new_specials, pa.string())
        head_tokens.append(sp)
        head_counts.append(count_of(sp))
        head_active.append(np.ones(len(sp), bool))
    taken = pa.concat_arrays(head_tokens) if head_tokens else pa.array([], pa.string())

    fresh = counts.filter(pc.greater_equal(counts["count"], min_count)) if counts.num_rows else counts
    if len(taken) and fresh.num_rows:
        fresh = fresh.filter(pc.invert(pc.is_in(fresh["token"], value_set=taken)))
    fresh = _ranked(fresh)
    if max_size is not None:
        fresh = fresh.slice(0, max(0, max_size - len(taken)))

    tokens = pa.concat_arrays([taken.cast(pa.string()), fresh["token"].combine_chunks().cast(pa.string())]) if fresh.num_rows else taken
    count_arr = np.concatenate(head_counts + [fresh["count"].to_numpy()]) if head_counts or fresh.num_rows else np.zeros(0, np.int64)
    active = np.concatenate(head_active + [np.ones(fresh.num_rows, bool)]) if head_active or fresh.num_rows else np.zeros(0, bool)
    n = len(tokens)
    if n >= 2**31 - 1:
        raise InvalidInputError(f"a vocabulary of {n} tokens does not fit int32 ids", hint="use --max-size")
    return pa.table(
        [pa.array(np.arange(n, dtype=np.int32)), tokens, pa.array(count_arr.astype(np.int64)), pa.array(active)], schema=TABLE_SCHEMA
    )


def merged_specials(parent_specials: Sequence[str], specials: Sequence[str]) -> list[str]:
    """The specials of a child: the parent's, then the new ones (a parent token named again stays where it is)."""
    out = list(parent_specials)
    out.extend(s for s in specials if s not in out)
    return out


def fingerprint(params: dict[str, Any]) -> str:
    """A stable hash of build inputs (sorted-key JSON), stored inside the file instead of a timestamp."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_table(table: pa.Table, out, metadata: dict[str, str]) -> None:
    """Write ``table`` as Parquet to the file object ``out``, byte-for-byte reproducible.

    Only deterministic metadata goes in (no timestamps), so the same inputs give the same sha256.
    """
    schema = table.schema.with_metadata({k.encode(): v.encode() for k, v in sorted(metadata.items())})
    pq.write_table(table.cast(schema), out, compression="zstd", use_dictionary=False, write_statistics=False, row_group_size=1 << 22)


def read_table(source) -> pa.Table:
    """Read a version table from a path, buffer or file object; raise IntegrityError if it is not one."""
    try:
        table = pq.read_table(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IntegrityError(f"vocabulary table cannot be read: {exc}", hint="the file is corrupt; rebuild the version") from None
    if not table.schema.remove_metadata().equals(TABLE_SCHEMA):
        raise IntegrityError(f"vocabulary table has schema {table.schema.remove_metadata()}, expected {TABLE_SCHEMA}")
    return table
