"""Tokenization: spaCy's tokenizer, spaCy's sentencizer rule, lower-casing, lookup lemmas, filters.

The options a corpus was ingested with are stored in its znode (``Corpus.options``);
:func:`make_tokenizer` rebuilds exactly that tokenization from them, so ``vocab encode`` and queries
see text the way the corpus was written.

Speed: spaCy's tokenizer (with its cache warm) produces about 3M tokens/s, so anything per token in
Python would dominate. Tokens are therefore handled as arrays: each document gives its ORTH hashes
(``Doc.to_array``), the hashes are mapped to dense type ids with one Arrow hash lookup per batch, and
sentence boundaries, filters and the output strings are numpy/Arrow operations over the whole batch.
Per token there is no Python code at all; per new *type* (string never seen before) there is a little.

>>> tok = make_tokenizer({"lang": "en"})
>>> tok("Hello world. It works!")
[['hello', 'world'], ['it', 'works']]
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError, InvalidInputError, MissingDependencyError, TokenizerOptionError

#: Bumped whenever the same options would tokenize differently; stored with the options.
SCHEME = 1

DEFAULTS: dict[str, Any] = {
    "scheme": SCHEME,
    "lang": "en",
    "lowercase": True,
    "lemmatize": False,
    "drop_punct": True,
    "drop_numbers": False,
    "drop_urls": True,
    "max_token_length": 50,
    "min_sentence_tokens": 1,
}

# A "pure number": digits with optional sign and inner separators (12, -3.5, 1,000, 10:30, 1/2).
_NUMBER = re.compile(r"[+\-]?\d+(?:[.,:/]\d+)*%?")

# Token kinds for the sentencizer rule.
_NORMAL, _PUNCT, _SENT_END = 0, 1, 2


def tokenizer_options(options: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The complete, validated option dict (defaults filled in) that a corpus stores.

    >>> tokenizer_options(lang="de")["lowercase"]
    True
    """
    opts = dict(DEFAULTS)
    given = dict(options or {})
    given.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise TokenizerOptionError(f"unknown tokenizer option(s): {', '.join(sorted(unknown))}", hint=f"known: {', '.join(DEFAULTS)}")
    opts.update(given)
    if opts["scheme"] != SCHEME:
        raise ConfigError(f"tokenizer scheme {opts['scheme']} is not supported by this nlpzk (it writes scheme {SCHEME})")
    for flag in ("lowercase", "lemmatize", "drop_punct", "drop_numbers", "drop_urls"):
        if not isinstance(opts[flag], bool):
            raise TokenizerOptionError(f"tokenizer option {flag} must be true or false, not {opts[flag]!r}")
    for num, what in (("max_token_length", "the longest token to keep, in characters"), ("min_sentence_tokens", "the fewest tokens a sentence needs to be kept")):
        if not isinstance(opts[num], int) or isinstance(opts[num], bool) or opts[num] < 1:
            flag = "--" + num.replace("_", "-")
            raise TokenizerOptionError(f"tokenizer option {flag} must be an integer >= 1, not {opts[num]!r}", hint=f"give {what}, e.g. {flag} {DEFAULTS[num]} (the default)")
    if not isinstance(opts["lang"], str) or not opts["lang"]:
        raise TokenizerOptionError(f"tokenizer option --lang must be a language code, not {opts['lang']!r}", hint="use a spaCy language code such as en, de, fr, es, xx")
    return opts


def load_blank(lang: str):
    """A blank spaCy pipeline for ``lang`` (no model download), or a clear error for an unknown code."""
    import spacy

    try:
        return spacy.blank(lang)
    except (ImportError, ValueError, KeyError) as exc:
        if "E048" in str(exc) or "E002" in str(exc):
            raise InvalidInputError(f"unknown language {lang!r}: spaCy has no tokenizer for it", hint="use a spaCy language code such as en, de, fr, es, xx") from None
        if isinstance(exc, ImportError):
            # spaCy has the language, but its tokenizer needs a library of its own (ja: SudachiPy,
            # ko: mecab-ko, th: PyThaiNLP, vi: pyvi); spaCy's message names it
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInputError(
                f"spaCy's tokenizer for {lang!r} needs a library that is not installed: {first}",
                hint="install it into nlpzk's virtualenv (.venv/bin/pip install ...), or use --lang xx (multi-language rules)",
            ) from None
        raise


def _load_lemmas(lang: str):
    try:
        from spacy.lookups import load_lookups

        return load_lookups(lang, ["lemma_lookup"]).get_table("lemma_lookup")
    except ImportError:
        raise MissingDependencyError("--lemmatize needs the spacy-lookups-data package", hint="pip install spacy-lookups-data") from None
    except ValueError:
        raise InvalidInputError(f"there is no lookup lemmatizer table for language {lang!r}", hint="drop --lemmatize or pick a language spacy-lookups-data covers") from None


class Tokenizer:
    """Text -> sentences of tokens, following ``options`` (see :func:`tokenizer_options`).

    :meth:`batch` is the fast path used by ingest (Arrow arrays out); calling the object gives lists.
    """

    def __init__(self, options: dict[str, Any], *, max_types: int = 200_000) -> None:
        from spacy.pipeline.sentencizer import Sentencizer

        self.options = tokenizer_options(options)
        self.max_types = max_types
        self._lemmas = _load_lemmas(self.options["lang"]) if self.options["lemmatize"] else None
        self._punct_chars = frozenset(Sentencizer.default_punct_chars)
        self.resets = 0
        self._reset()

    def _reset(self) -> None:
        """A fresh spaCy pipeline and empty type tables.

        spaCy's vocabulary and tokenizer cache grow with every new string (about 0.7 KB per type,
        some 140 MB at the default bound), so memory would grow with the input; starting afresh
        once ``max_types`` types were seen keeps it flat. Output does not change: tokenization does not depend on that state.
        """
        self.nlp = load_blank(self.options["lang"])
        self._tokenizer = self.nlp.tokenizer
        # Per type (dense id): ORTH hash, sentencizer kind, kept-by-filters, output string.
        self._hash_set = pa.array([], pa.uint64())
        self._kind = np.zeros(0, np.int8)
        self._keep = np.zeros(0, bool)
        self._out_arrow = pa.array([], pa.string())

    # -- per type --------------------------------------------------------------------------------

    def _describe(self, orth: int) -> tuple[int, bool, str]:
        o = self.options
        lex = self.nlp.vocab[orth]
        text = lex.orth_
        kind = _SENT_END if text in self._punct_chars else (_PUNCT if lex.is_punct else _NORMAL)
        keep = not (
            lex.is_space
            or not text.strip()
            or (o["drop_punct"] and (lex.is_punct or text in self._punct_chars))
            or (o["drop_urls"] and (lex.like_url or lex.like_email))
            or (o["drop_numbers"] and _NUMBER.fullmatch(text) is not None)
            or len(text) > o["max_token_length"]
        )
        out = text
        if self._lemmas is not None:
            # spaCy's lookup mode looks up the exact text only; falling back to the lower-cased text
            # also lemmatizes sentence-initial words ("Dogs" -> "dog"), which the table lacks.
            lemma = self._lemmas.get(text) or self._lemmas.get(text.lower()) or text
            out = lemma if isinstance(lemma, str) else text
        if o["lowercase"]:
            out = out.lower()
        return kind, keep, out

    def _type_ids(self, orths: np.ndarray) -> np.ndarray:
        keys = pa.array(orths, pa.uint64())
        ids = pc.index_in(keys, value_set=self._hash_set)
        if not ids.null_count:
            return ids.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        missing = np.asarray(ids.is_null())
        new = np.unique(orths[missing])
        described = [self._describe(h) for h in new.tolist()]
        base = len(self._hash_set)
        # Append only the new types: no table is rebuilt from Python objects per batch.
        self._hash_set = pa.concat_arrays([self._hash_set, pa.array(new, pa.uint64())])
        self._kind = np.concatenate([self._kind, np.fromiter((d[0] for d in described), np.int8, len(described))])
        self._keep = np.concatenate([self._keep, np.fromiter((d[1] for d in described), bool, len(described))])
        self._out_arrow = pa.concat_arrays([self._out_arrow, pa.array([d[2] for d in described], pa.string())])
        out = ids.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        out[missing] = base + np.searchsorted(new, orths[missing])
        return out

    # -- batches ---------------------------------------------------------------------------------

    def batch(self, texts: Sequence[str]) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """Tokenize ``texts`` together.

        Returns ``(tokens, sentence_offsets, sentence_doc)``: ``tokens`` is one string array of every
        kept token; sentence ``s`` is ``tokens[offsets[s]:offsets[s+1]]`` and belongs to text
        ``sentence_doc[s]``. Sentences emptier than ``min_sentence_tokens`` are left out.
        """
        from spacy.attrs import ORTH

        if len(self._hash_set) > self.max_types:
            self._reset()
            self.resets += 1
        tok = self._tokenizer
        arrays = [tok(t).to_array(ORTH) for t in texts]
        lengths = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
        if not lengths.sum():
            return pa.array([], pa.string()), np.zeros(1, np.int32), np.zeros(0, np.int64)
        orths = np.concatenate(arrays)
        ids = self._type_ids(orths)
        n = len(ids)
        kind = self._kind[ids]

        # spaCy's Sentencizer: a sentence starts at the first token that is neither punctuation nor a
        # sentence-final character after a sentence-final character; every document starts one.
        doc_starts = np.zeros(len(lengths), np.int64)
        np.cumsum(lengths[:-1], out=doc_starts[1:])
        doc_of_token = np.repeat(np.arange(len(lengths)), lengths)
        ends_before = np.zeros(n + 1, np.int64)
        np.cumsum(kind == _SENT_END, out=ends_before[1:])
        normal = np.flatnonzero(kind == _NORMAL)
        prev = np.empty_like(normal)
        if len(normal):
            prev[0] = -1
            prev[1:] = normal[:-1]
        lo = np.maximum(prev + 1, doc_starts[doc_of_token[normal]])
        starts = np.zeros(n, bool)
        starts[normal[ends_before[normal] > ends_before[lo]]] = True
        starts[doc_starts[lengths > 0]] = True

        sentence_of_token = np.cumsum(starts) - 1
        sentence_doc = doc_of_token[starts]
        keep = self._keep[ids]
        counts = np.bincount(sentence_of_token[keep], minlength=len(sentence_doc))
        long_enough = counts >= self.options["min_sentence_tokens"]
        keep &= long_enough[sentence_of_token]
        offsets = np.zeros(int(long_enough.sum()) + 1, np.int32)
        np.cumsum(counts[long_enough], out=offsets[1:])
        tokens = self._out_arrow.take(pa.array(ids[keep]))
        return tokens, offsets, sentence_doc[long_enough]

    def pipe(self, texts: Iterable[str], batch_size: int = 256) -> Iterable[list[list[str]]]:
        """Sentences of tokens for each text, as Python lists (for queries, not bulk work)."""
        chunk: list[str] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) >= batch_size:
                yield from self._lists(chunk)
                chunk = []
        if chunk:
            yield from self._lists(chunk)

    def _lists(self, texts: list[str]) -> list[list[list[str]]]:
        tokens, offsets, sentence_doc = self.batch(texts)
        flat = tokens.to_pylist()
        out: list[list[list[str]]] = [[] for _ in texts]
        for s, d in enumerate(sentence_doc.tolist()):
            out[d].append(flat[offsets[s] : offsets[s + 1]])
        return out

    def __call__(self, text: str) -> list[list[str]]:
        return self._lists([text])[0]


def make_tokenizer(options: dict[str, Any]) -> Tokenizer:
    """A callable ``text -> [[token, ...], ...]`` reproducing a corpus's tokenization.

    >>> tok = make_tokenizer(corpus.options)     # doctest: +SKIP
    >>> tok("Dogs were barking. Then silence.")  # doctest: +SKIP
    [['dogs', 'were', 'barking'], ['then', 'silence']]
    """
    return Tokenizer(options)
