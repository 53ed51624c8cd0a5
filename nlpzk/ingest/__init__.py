"""Corpus ingest: text files in, tokenized Parquet shards out, every shard registered in ZooKeeper.

Public surface::

    from nlpzk.ingest import make_tokenizer, tokenizer_options
    tok = make_tokenizer(corpus.options)      # the exact tokenization the corpus was built with
    tok("Some text. More text.")               # -> [['some', 'text'], ['more', 'text']]
"""

from __future__ import annotations

from .tokenize import DEFAULTS, Tokenizer, make_tokenizer, tokenizer_options


def __getattr__(name: str):
    # the pipeline pulls in the cluster and store layers; a tokenizer-only user does not need them
    if name in ("ingest", "Summary", "DEFAULT_SHARD_TOKENS"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "ReadOptions":
        from .readers import ReadOptions

        return ReadOptions
    raise AttributeError(f"module 'nlpzk.ingest' has no attribute {name!r}")


__all__ = ["make_tokenizer", "tokenizer_options", "Tokenizer", "DEFAULTS", "ingest", "Summary", "ReadOptions", "DEFAULT_SHARD_TOKENS"]
