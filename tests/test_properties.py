"""Property-based tests (hypothesis) of the ingest front end on arbitrary bytes and unicode.

* the readers, given any bytes under any supported name, either yield clean documents or raise
  ``InvalidInputError`` naming the file, never anything else; valid text is read back exactly;
* the tokenizer never crashes, yields no empty or whitespace-only token, is deterministic (also
  across fresh instances and batchings), and lower-cases when asked;
* ``ShardWriter`` rows read back exactly, with matching counts and checksum, and the same rows give
  the same bytes however they were batched.

``max_examples`` stays modest so the module runs in seconds; each property is still able to fail
(hypothesis shrinks the counter-example into the report).
"""

from __future__ import annotations

import json
import os
import tempfile

import pyarrow as pa
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from nlpzk.corpus import ShardWriter, read_shard
from nlpzk.errors import InvalidInputError
from nlpzk.ingest import make_tokenizer
from nlpzk.ingest.readers import DocumentReader, ReadOptions, discover, sniff
from nlpzk.store import Store

# no example database: nothing is written into the checkout; a failure prints its falsifying example
SETTINGS = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# -- readers -----------------------------------------------------------------------------------------

_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40))
_json_value = st.recursive(_json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@st.composite
def _jsonish_line(draw) -> bytes:
    """A JSONL-looking line: a real object with or without ``text``, sometimes cut short."""
    obj = draw(st.one_of(st.fixed_dictionaries({"text": _json_value}), _json_value))
    line = json.dumps(obj, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.booleans()):
        line = line[: draw(st.integers(0, len(line)))]
    return line


_lines_of_bytes = st.lists(st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode), _jsonish_line()), max_size=8).map(b"\n".join)
_file_bytes = st.one_of(st.binary(max_size=600), _lines_of_bytes)


def _read(data: bytes, suffix: str, options: ReadOptions) -> tuple[list[tuple[int, str]], int, str]:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"input{suffix}")
        with open(path, "wb") as fh:
            fh.write(data)
        (f,) = discover([path])
        sniff(f)
        reader = DocumentReader(f, options)
        return list(reader), reader.replaced, path


@SETTINGS
@given(
    data=_file_bytes,
    suffix=st.sampled_from([".txt", ".jsonl", ".csv", ".tsv", ".unknownext"]),
    strict=st.booleans(),
    paragraphs=st.booleans(),
    max_line_bytes=st.sampled_from([8, 64, 1_000_000]),
)
# found by this test: a quoted CSV header holding a newline made a two-line error message
@example(data=b'"\n', suffix=".csv", strict=False, paragraphs=False, max_line_bytes=8)
@example(data=b'{"a\\nb": 1}\n', suffix=".jsonl", strict=False, paragraphs=False, max_line_bytes=64)
def test_any_bytes_give_documents_or_invalid_input_error(data, suffix, strict, paragraphs, max_line_bytes):
    options = ReadOptions(doc_mode="paragraph" if paragraphs else "line", strict=strict, max_line_bytes=max_line_bytes)
    try:
        docs, replaced, _ = _read(data, suffix, options)
    except InvalidInputError as exc:
        assert "input" in exc.line() and "\n" not in exc.line()  # names the file, fits one line
        return
    numbers = [n for n, _ in docs]
    assert all(n >= 1 for n in numbers) and numbers == sorted(numbers)
    for _, text in docs:
        assert isinstance(text, str) and text and text == text.strip()
    assert replaced >= 0
    if strict:
        assert replaced == 0
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        assert replaced == 0
    if replaced == 0:
        # no bad bytes replaced: no U+FFFD appears that the input did not contain itself
        assert all("\ufffd" not in t for _, t in docs) or "\ufffd".encode() in data


_line_text = st.text(alphabet=st.characters(blacklist_characters="\n\r\x00", blacklist_categories=("Cs",)), max_size=40)


@SETTINGS
@given(lines=st.lists(_line_text, min_size=1, max_size=12), ends=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=12, max_size=12))
def test_valid_text_lines_are_read_back_exactly(lines, ends):
    """Whatever ends each line: LF, CR LF or a lone CR (old Mac files), as Python's universal newlines."""
    # a lone CR, an empty line, an LF: that is one CR LF (one line end), as in any reader of such files
    assume(not any(a == "\r" and line == "" and b == "\n" for a, line, b in zip(ends, lines[1:], ends[1:])))
    data = "".join(line + end for line, end in zip(lines, ends)).encode()
    assume(data.strip(b"\r\n"))  # an empty file is refused on purpose (tested in test_ingest_bad_input)
    try:
        docs, replaced, _ = _read(data, ".txt", ReadOptions(strict=True))
    except InvalidInputError as exc:
        assert "file is empty" in exc.line() and not data
        return
    first = lines[0][1:] if lines[0].startswith("\ufeff") else lines[0]
    expected = [(i + 1, line.strip()) for i, line in enumerate([first, *lines[1:]]) if line.strip()]
    assert docs == expected and replaced == 0


@SETTINGS
@given(texts=st.lists(st.one_of(st.text(max_size=40), st.none()), min_size=1, max_size=10))
def test_jsonl_text_fields_are_read_back_exactly(texts):
    data = "\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(texts)).encode()
    docs, replaced, _ = _read(data, ".jsonl", ReadOptions(strict=True))
    assert docs == [(i + 1, t.strip()) for i, t in enumerate(texts) if t is not None and t.strip()]
    assert replaced == 0


@SETTINGS
@given(good=st.lists(_line_text, min_size=1, max_size=5), bad=st.binary(min_size=1, max_size=8))
def test_invalid_utf8_is_replaced_and_counted_or_refused_with_strict(good, bad):
    assume(b"\x00" not in bad and b"\n" not in bad and b"\r" not in bad)
    try:
        bad.decode("utf-8")
        assume(False)
    except UnicodeDecodeError:
        pass
    data = "\n".join(good).encode() + b"\n" + bad + b"x\n"
    docs, replaced, _ = _read(data, ".txt", ReadOptions())
    assert replaced >= 1 and "\ufffd" in docs[-1][1]
    assert docs[-1][0] == len(good) + 1
    try:
        _read(data, ".txt", ReadOptions(strict=True))
    except InvalidInputError as exc:
        assert f":{len(good) + 1}: invalid UTF-8" in exc.line()
    else:
        raise AssertionError("--strict accepted invalid UTF-8")


# -- tokenizer ------------------------------------------------------------------------------------

_TOKENIZERS = {
    "default": make_tokenizer({"lang": "en"}),
    "cased": make_tokenizer({"lang": "en", "lowercase": False, "drop_punct": False, "drop_urls": False}),
    "filtered": make_tokenizer({"lang": "en", "drop_numbers": True, "max_token_length": 5, "min_sentence_tokens": 2}),
}
_text = st.text(max_size=200) | st.lists(st.sampled_from(["Dr.", "U.S.", "e-mail", "http://x.io/a?b=1", "İSTANBUL", "ǅ", "ß", "3.5", "...", "!", "\n", "\t", " ", "\u00a0", "\u200b", "\u2028", "😀", "a@b.co", "'s", "n't", "-", "Ⅷ"]), max_size=30).map("".join)


@SETTINGS
@given(text=_text, which=st.sampled_from(sorted(_TOKENIZERS)))
def test_tokenizer_never_crashes_and_yields_no_empty_tokens(text, which):
    tok = _TOKENIZERS[which]
    sentences = tok(text)
    opts = tok.options
    for sentence in sentences:
        assert len(sentence) >= opts["min_sentence_tokens"]
        for token in sentence:
            assert isinstance(token, str) and token and token.strip(), (text, sentences)
            if not opts["lowercase"]:
                assert len(token) <= opts["max_token_length"]
            if opts["lowercase"]:
                assert token == token.lower(), (text, token)


@SETTINGS
@given(texts=st.lists(_text, min_size=1, max_size=6))
def test_tokenizer_is_deterministic_across_instances_and_batches(texts):
    tok = _TOKENIZERS["default"]
    one_by_one = [tok(t) for t in texts]
    assert list(tok.pipe(texts)) == one_by_one
    assert [tok(t) for t in texts] == one_by_one
    fresh = make_tokenizer({"lang": "en"})
    assert list(fresh.pipe(reversed(texts))) == one_by_one[::-1]


def test_tokenizer_fresh_state_after_type_bound_changes_nothing():
    """The type tables are dropped every ``max_types`` types; output must not depend on when."""
    from nlpzk.ingest import Tokenizer

    texts = [f"word{i} Shared words. Another{i % 7}!" for i in range(300)]
    small = Tokenizer({"lang": "en"}, max_types=16)
    assert [s for chunk in [texts[i : i + 10] for i in range(0, 300, 10)] for s in small.pipe(chunk, batch_size=10)] == list(_TOKENIZERS["default"].pipe(texts))
    assert small.resets > 0


# -- ShardWriter ------------------------------------------------------------------------------------

_token = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
_rows = st.lists(st.tuples(st.sampled_from(["d1", "d2", "d3", "d4"]), st.lists(_token, max_size=8)), min_size=1, max_size=40)


def _write(store: Store, shard_id: str, rows, chunks: list[int] | None, batch_rows: int):
    with ShardWriter(store, "props", shard_id, batch_rows=batch_rows) as w:
        if chunks is None:
            for doc, tokens in rows:
                w.add(doc, "src.txt", tokens)
        else:
            i = 0
            for size in chunks + [len(rows)]:
                part = rows[i : i + size]
                i += len(part)
                if part:
                    w.add_batch(pa.array([d for d, _ in part], pa.string()), "src.txt", pa.array([t for _, t in part], pa.list_(pa.string())), len({d for d, _ in part}))
    return w.info


@SETTINGS
@given(rows=_rows, chunks=st.lists(st.integers(1, 10), max_size=6), batch_rows=st.sampled_from([1, 3, 8192]))
def test_shard_rows_round_trip_and_batching_does_not_change_bytes(rows, chunks, batch_rows):
    with tempfile.TemporaryDirectory() as d:
        store = Store(d)
        info = _write(store, "one-by-one", rows, None, batch_rows)
        table = read_shard(store, info, verify=True)
        assert table.column("doc_id").to_pylist() == [doc for doc, _ in rows]
        assert table.column("tokens").to_pylist() == [tokens for _, tokens in rows]
        assert set(table.column("source").to_pylist()) == {"src.txt"}
        assert (info.sentences, info.tokens) == (len(rows), sum(len(t) for _, t in rows))
        assert info.bytes == store.size(info.path) and info.sha256 == store.sha256(info.path)
        # a whole batch vs arbitrary chunks: the same rows, the same file
        whole = _write(store, "whole", rows, [len(rows)], batch_rows)
        chunked = _write(store, "chunked", rows, chunks, batch_rows)
        assert whole.sha256 == chunked.sha256
        assert read_shard(store, chunked).column("tokens").to_pylist() == [tokens for _, tokens in rows]
