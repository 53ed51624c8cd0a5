"""Corpus ingest: text files in, tokenized Parquet shards out, every shard registered in ZooKeeper.

Public surface::

    from nlpzk.ingest import make_tokenizer, tokenizer_options
    tok = make_tokenizer(corpus.options)      # the exact tokenization the corpus was built with
    tok("Some text. More text.")               # -> [['some', 'text'], ['more', 'text']]
"""

from __future__ import annotations

from .tokenize import DEFAULTS, Tokenizer, make_tokenizer, tokenizer_options

__all__ = ["make_tokenizer", "tokenizer_options", "Tokenizer", "DEFAULTS"]
