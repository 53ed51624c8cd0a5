"""Vocabulary versions: immutable numbered tables with stable ids, movable tags, fast lookups.

>>> view = build(cluster, "wiki", "wiki-2024", min_count=5, specials=["<unk>"])   # doctest: +SKIP
>>> view.version, view["the"], view.encode(["the", "cat"])                       # doctest: +SKIP
>>> stable = Vocabulary.open("wiki:stable", cluster=cluster).follow("stable")     # doctest: +SKIP
"""

from ..cluster import public_functions
from ._build import build, shard_set_hash
from ._count import count_shards
from ._ops import EXPORT_FORMATS, delete, diff, export, tag, untag, users, verify, version_document, versions, vocabularies, write_export
from ._table import TABLE_SCHEMA, assign_ids
from ._view import UNK, VocabView, Vocabulary, parse_spec, resolve

__all__ = [
    "Vocabulary",
    "VocabView",
    "build",
    "parse_spec",
    "resolve",
    "versions",
    "version_document",
    "vocabularies",
    "tag",
    "untag",
    "delete",
    "users",
    "verify",
    "diff",
    "export",
    "write_export",
    "EXPORT_FORMATS",
    "count_shards",
    "assign_ids",
    "shard_set_hash",
    "TABLE_SCHEMA",
    "UNK",
]

public_functions(globals(), __all__)  # called from outside nlpzk, they raise only NlpzkError
