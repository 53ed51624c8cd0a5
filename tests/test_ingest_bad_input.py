"""Bad input: one clear error line naming the file (and line), a non-zero exit, nothing registered."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from _helpers import ROOT, one_line_error
from nlpzk.corpus import Corpus
from nlpzk.errors import InvalidInputError
from nlpzk.ingest import ingest, pipeline, readers
from nlpzk.zk import paths

GOOD = "A good line of text.\n"
TOO_MANY = 4 * (os.cpu_count() or 1) + 1
NOISE = bytes(np.random.default_rng(5).integers(1, 256, 20_000, dtype=np.uint8))  # random bytes 1-255: no NUL, most not UTF-8
MANY = "".join(f"line {i} of {i * 7919 % 10007} words\n" for i in range(20_000)).encode()  # several zstd blocks


def _parquet_bytes(values: list[bytes]) -> bytes:
    """A Parquet file whose string column ``text`` holds these bytes as they are (valid UTF-8 or not)."""
    raw = pa.array(values, pa.binary())
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())}), sink)
    return sink.getvalue().to_pybytes()


def _binary_parquet() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": pa.array([b"fine"], pa.binary())}), sink)
    return sink.getvalue().to_pybytes()


def _nothing_registered(cluster, name: str) -> None:
    assert cluster.zk.exists(paths.corpus(name)) is None
    corpora = cluster.store.local_path("corpora")
    # not even an empty folder: a failed first ingest whose shard writer had started left corpora/NAME/shards/
    assert name not in (os.listdir(corpora) if os.path.isdir(corpora) else []), os.listdir(corpora)


def _bad(tmp_path):
    """name -> (files to write, path argument, extra flags, expected message fragment)."""
    return {
        "missing": ({}, "nope.txt", [], "nope.txt: no such file or directory"),
        "no_readable_files": ({"d/pic.png": b"\x89PNG\r\n", "d/.hidden.txt": GOOD.encode()}, "d", [], "d: directory has no readable input files"),
        "binary": ({"bin.txt": b"abc\x00\x01\x02def\n"}, "bin.txt", [], "bin.txt: looks binary (NUL byte at offset 3)"),
        # random bytes 1-255: no NUL, but most of them not UTF-8
        "binary_no_nul": ({"noise.txt": NOISE}, "noise.txt", [], "noise.txt: looks binary ("),
        # past the first 8 KiB the sniff reads, such bytes became U+FFFD tokens: the whole file is judged too
        "binary_no_nul_late": ({"late.txt": GOOD.encode() * 1000 + NOISE}, "late.txt", [], "late.txt: looks binary ("),
        "binary_no_nul_late_gz": ({"late.txt.gz": gzip.compress(GOOD.encode() * 1000 + NOISE)}, "late.txt.gz", [], "late.txt.gz: looks binary (8,390 invalid UTF-8 sequences in its 41,000 bytes)"),
        "empty": ({"empty.txt": b""}, "empty.txt", [], "empty.txt: file is empty"),
        "invalid_utf8_strict": ({"latin.txt": GOOD.encode() + "café\n".encode("latin-1")}, "latin.txt", ["--strict"], "latin.txt:2: invalid UTF-8 (byte 4 of the line)"),
        "huge_line": ({"huge.txt": GOOD.encode() + b"word " * 220_000 + b"\n"}, "huge.txt", [], "huge.txt:2: line is longer than 1000000 bytes"),
        "jsonl_not_json": ({"x.jsonl": b'{"text": "fine"}\n{"text": oops}\n'}, "x.jsonl", [], "x.jsonl:2: not valid JSON"),
        "jsonl_no_field": ({"y.jsonl": b'{"text": "fine"}\n{"body": "no text"}\n'}, "y.jsonl", [], "y.jsonl:2: no 'text' field (found: body)"),
        "unknown_lang": ({"ok.txt": GOOD.encode()}, "ok.txt", ["--lang", "qq"], "unknown language 'qq'"),
        "corrupt_gzip": ({"z.txt.gz": b"\x1f\x8b\x08\x00garbage-not-deflate"}, "z.txt.gz", [], "z.txt.gz: corrupt gzip data"),
        "glob_matches_nothing": ({"ok.txt": GOOD.encode()}, "*.nomatch", [], "*.nomatch: no file matches this pattern"),
        "jsonl_number_text": ({"typ.jsonl": b'{"text": 42}\n'}, "typ.jsonl", [], "typ.jsonl:1: field 'text' is a number, not a string"),
        "jsonl_object_text": ({"obj.jsonl": b'{"text": {"en": "hi"}}\n'}, "obj.jsonl", [], "obj.jsonl:1: field 'text' is an object, not a string"),
        "max_line_bytes_0": ({"ok.txt": GOOD.encode()}, "ok.txt", ["--max-line-bytes", "0"], "--max-line-bytes must be positive, not 0"),
        "processes_0": ({"ok.txt": GOOD.encode()}, "ok.txt", ["--processes", "0"], "--processes must be at least 1, not 0"),
        "max_token_length_0": ({"ok.txt": GOOD.encode()}, "ok.txt", ["--max-token-length", "0"], "--max-token-length must be an integer >= 1, not 0"),
        # a .zst cut short (an interrupted download) was read up to the cut and registered as if whole
        "truncated_zstd": ({"cut.txt.zst": zstandard.ZstdCompressor().compress(MANY)[:40_000]}, "cut.txt.zst", [], "cut.txt.zst: corrupt zstd data (the file ends inside"),
        "truncated_small_zstd": ({"cut1.txt.zst": zstandard.ZstdCompressor().compress(MANY)[:500]}, "cut1.txt.zst", [], "cut1.txt.zst: corrupt zstd data (the file ends inside"),
        # each of these four ended in a traceback
        "jsonl_deeply_nested": ({"deep.jsonl": b'{"text": "fine"}\n{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"}, "deep.jsonl", [], "deep.jsonl:2: not valid JSON (nested too deeply)"),
        "jsonl_huge_number": ({"num.jsonl": b'{"text": "fine"}\n{"text": ' + b"9" * 5000 + b"}\n"}, "num.jsonl", [], "num.jsonl:2: not valid JSON (Exceeds the limit (4300 digits)"),
        "jsonl_lone_surrogate_strict": ({"sur.jsonl": b'{"text": "cut emoji \\ud83d here"}\n'}, "sur.jsonl", ["--strict"], "sur.jsonl:1: field 'text' holds a lone surrogate (\\ud83d), not valid Unicode"),
        "parquet_invalid_utf8_strict": ({"bad.parquet": _parquet_bytes([b"fine", b"caf\xe9"])}, "bad.parquet", ["--strict"], "bad.parquet: row 2: invalid UTF-8 (byte 4 of the row)"),
        # these said what is wrong but not what to do
        "csv_short_row": ({"short.csv": b"id,title,text\n1,a,hello\n2,b\n"}, "short.csv", [], "short.csv:3: row has 2 fields, the header has 3"),
        "parquet_cut": ({"cut.parquet": _parquet_bytes([b"fine"] * 100)[:300]}, "cut.parquet", [], "cut.parquet: not a readable Parquet file"),
        "parquet_binary_column": ({"bin.parquet": _binary_parquet()}, "bin.parquet", [], "bin.parquet: column 'text' is binary, not text"),
        # a NUL past the first 8 KiB that the binary sniff reads (cli.md: a file with a NUL byte is refused)
        "nul_late": ({"late.txt": GOOD.encode() * 1000 + b"a \x00 b\n"}, "late.txt", [], "late.txt:1001: NUL byte (binary data), not UTF-8 text"),
        # found after a whole batch of documents went to the shard writer (which made the corpus's folders)
        "nul_after_a_batch": ({"later.txt": GOOD.encode() * 5000 + b"a \x00 b\n"}, "later.txt", [], "later.txt:5001: NUL byte (binary data), not UTF-8 text"),
        "invalid_utf8_strict_after_a_batch": ({"lat2.txt": GOOD.encode() * 5000 + "café\n".encode("latin-1")}, "lat2.txt", ["--strict"], "lat2.txt:5001: invalid UTF-8"),
        "max_line_bytes_huge": ({"ok.txt": GOOD.encode()}, "ok.txt", ["--max-line-bytes", str(2**63)], "--max-line-bytes must be at most 2147483647"),
        # the smallest refused value (a huge one started that many spaCy processes: the machine ran out of memory)
        "processes_too_many": ({"ok.txt": GOOD.encode()}, "ok.txt", ["--processes", str(TOO_MANY)], f"--processes {TOO_MANY} is more than 4 per core"),
    }


@pytest.mark.parametrize("case", list(_bad(None)))
def test_bad_input_gives_one_error_line_and_registers_nothing(case, cli, cluster, tmp_path, monkeypatch):
    files, arg, flags, message = _bad(tmp_path)[case]
    for rel, data in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    monkeypatch.chdir(tmp_path)  # messages name the path as given
    res = cli("corpus", "ingest", "bad", arg, *flags)
    assert res.exit_code != 0
    line = one_line_error(res.stderr)
    assert message in line, line
    assert " — " in line.partition(message)[2], f"no hint (what to do) after the message: {line}"
    _nothing_registered(cluster, "bad")


def test_invalid_utf8_is_replaced_and_counted_by_default(cli, cluster, tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes(GOOD.encode() + "café crème\n".encode("latin-1"))
    res = cli("corpus", "ingest", "lat", str(p), "--json")
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["replaced_bytes"] == 2 and summary["documents"] == 2
    # a legacy encoding's accents past the first 8 KiB are a few per cent of the file: text, not binary
    (tmp_path / "late.txt").write_bytes(GOOD.encode() * 400 + b"".join(f"Un café crème {i}.\n".encode("latin-1") for i in range(300)))
    res = cli("corpus", "ingest", "lat", str(tmp_path / "late.txt"), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["replaced_bytes"] == 600
    from nlpzk.corpus import Corpus

    assert ["caf", "\ufffd", "cr", "\ufffd", "me"] in list(Corpus.open("lat", cluster=cluster).sentences())


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_bad_file_after_good_ones_keeps_the_good_ones_whole(processes, cli, cluster, tmp_path):
    """Inputs commit one by one: the good file stays registered, the bad one leaves nothing behind."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_text(GOOD + "Another one.\n")
    (d / "b.jsonl").write_text('{"text": "fine"}\n' * 3 + "not json\n")
    res = cli("corpus", "ingest", "half", str(d), "--processes", processes)
    assert res.exit_code == 5
    assert f"{d / 'b.jsonl'}:4: not valid JSON" in one_line_error(res.stderr)
    from nlpzk.corpus import Corpus

    corpus = Corpus.open("half", cluster=cluster)
    assert [doc["source"] for doc in corpus.inputs().values()] == [str(d / "a.txt")]
    assert corpus.verify()["stray"] == [] and corpus.verify()["ok"]
    assert corpus.ingesters() == [] and cluster.zk.get_children(paths.claims("half")) == []


def test_lone_surrogates_in_json_and_invalid_utf8_in_parquet_are_replaced_and_counted(cli, cluster, tmp_path):
    """Both used to end in a traceback (pyarrow and the document hash cannot encode them)."""
    (tmp_path / "sur.jsonl").write_bytes(b'{"text": "cut emoji \\ud83d here"}\n{"text": "a pair \\ud83d\\ude00 is fine"}\n')
    (tmp_path / "bad.parquet").write_bytes(_parquet_bytes([b"fine row", b"caf\xe9 row"]))
    res = cli("corpus", "ingest", "sur", str(tmp_path / "sur.jsonl"), str(tmp_path / "bad.parquet"), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["replaced_bytes"] == 2
    from nlpzk.corpus import Corpus

    sentences = list(Corpus.open("sur", cluster=cluster).sentences())
    assert ["cut", "emoji", "\ufffd", "here"] in sentences and ["caf", "\ufffd", "row"] in sentences
    assert any("\U0001f600" in s for s in sentences), sentences


def test_a_dictionary_encoded_parquet_text_column_is_text(cli, cluster, tmp_path):
    """pandas writes a categorical column as dictionary<string>: it used to be refused as "not text"."""
    pq.write_table(pa.table({"text": pa.array(["first row here", "second row", "first row here"]).dictionary_encode()}), tmp_path / "cat.parquet")
    res = cli("corpus", "ingest", "cat", str(tmp_path / "cat.parquet"), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["documents"] == 2 and json.loads(res.stdout)["duplicates"] == 1


def test_file_names_that_are_not_utf8_or_hold_a_newline(cli, cluster, tmp_path):
    """A name with bytes that are not UTF-8 ended in a traceback (the shard's source column is a string);
    a bad file whose name holds a newline made the error two lines."""
    d = tmp_path / "in"
    d.mkdir()
    with open(os.path.join(os.fsencode(d), b"caf\xe9.txt"), "wb") as fh:
        fh.write(GOOD.encode())
    (d / "new\nline.txt").write_text("Another good line.\n")
    res = cli("corpus", "ingest", "names", str(d), "--json")
    assert res.exit_code == 0, res.stderr
    from nlpzk.corpus import Corpus

    corpus = Corpus.open("names", cluster=cluster)
    assert sorted(i["source"] for i in corpus.inputs().values()) == [str(d / "caf\\xe9.txt"), str(d / "new\nline.txt")]
    assert {src for s in corpus.shards for src in s.sources} == {str(d / "caf\\xe9.txt"), str(d / "new\nline.txt")}
    assert cli("corpus", "show", "names").exit_code == 0
    (d / "bad\nname.jsonl").write_text("not json\n")
    res = cli("corpus", "ingest", "names", str(d / "bad\nname.jsonl"))
    assert res.exit_code == 5
    assert "bad\\nname.jsonl:1: not valid JSON" in one_line_error(res.stderr)


def test_an_unreadable_subdirectory_is_an_error_not_skipped(cli_env, tmp_path):
    """os.walk ignored the directory it could not list: its files were left out and the run said ok."""
    d = tmp_path / "in"
    (d / "locked").mkdir(parents=True)
    (d / "a.txt").write_text(GOOD)
    (d / "locked" / "b.txt").write_text("Another good line.\n")
    (d / "locked").chmod(0)
    # root reads any directory: run it without the capabilities that let it (as any other user would)
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    try:
        res = subprocess.run([*drop, sys.executable, "-m", "nlpzk", "corpus", "ingest", "locked", str(d)], env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        (d / "locked").chmod(0o755)
    assert res.returncode == 5, res.stdout + res.stderr
    assert f"{d / 'locked'}: cannot list this directory (Permission denied)" in one_line_error(res.stderr)


def test_a_broken_symbolic_link_in_a_directory_says_what_to_do(cli, cluster, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_text(GOOD)
    (d / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    res = cli("corpus", "ingest", "links", str(d))
    assert res.exit_code == 5
    assert f"{d / 'gone.txt'}: cannot read (No such file or directory) — fix or remove it" in one_line_error(res.stderr)
    _nothing_registered(cluster, "links")


def test_a_symbolic_link_named_on_the_command_line_that_cannot_be_followed_says_why(cli, cluster, tmp_path):
    """A dangling link or a loop named as an input was "no such file or directory", though the
    path is there (`ls` shows it): the line now says it is a link, and where it points."""
    (tmp_path / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "loop1.txt").symlink_to(tmp_path / "loop2.txt")
    (tmp_path / "loop2.txt").symlink_to(tmp_path / "loop1.txt")
    res = cli("corpus", "ingest", "links", str(tmp_path / "gone.txt"))
    assert res.exit_code == 5
    assert f"{tmp_path / 'gone.txt'}: a symbolic link that points to '{tmp_path / 'nowhere.txt'}', which does not exist" in one_line_error(res.stderr)
    res = cli("corpus", "ingest", "links", str(tmp_path / "loop1.txt"))
    assert res.exit_code == 5
    assert f"{tmp_path / 'loop1.txt'}: a symbolic link that is a loop of symbolic links" in one_line_error(res.stderr)
    _nothing_registered(cluster, "links")


def _grow(path) -> None:
    """Change a file as a writer still at work would: text appended, a gzip member added, a Parquet file re-exported in place."""
    if path.suffix == ".parquet":
        with open(path, "r+b") as fh:  # the same file (inode), truncated and rewritten
            fh.truncate(0)
            fh.write(_parquet_bytes([b"fine", b"A row written later."]))
    else:
        with open(path, "ab") as fh:
            fh.write(gzip.compress(b"A line written later.\n") if path.suffix == ".gz" else b"A line written later.\n")


@pytest.mark.parametrize("name", ["log.txt", "log.txt.gz", "log.parquet"])
@pytest.mark.parametrize("moment", ["after_hashing", "while_reading"])
def test_a_file_written_to_while_it_is_ingested_is_refused(name, moment, cluster, tmp_path, monkeypatch):
    """The input's sha256 (its key, and the one its done-marker records) was taken before its
    documents were read: a file appended to in between was registered as the earlier content with
    the later documents, and once written whole it would be skipped as done. The bytes read are now
    hashed as they are read (a Parquet file: through the handle it is parsed from, and its size and
    time checked once parsed) and must be the ones hashed first."""
    path = tmp_path / name
    path.write_bytes(_parquet_bytes([b"fine"]) if name.endswith(".parquet") else gzip.compress(GOOD.encode() * 3) if name.endswith(".gz") else GOOD.encode() * 3)
    if moment == "after_hashing":
        real = readers.content_sha256

        def hash_then_grow(f):
            sha = real(f)
            _grow(path)
            return sha

        monkeypatch.setattr(readers, "content_sha256", hash_then_grow)
    else:

        class GrowsAfterTheFirstDocument(readers.DocumentReader):
            def __iter__(self):
                for i, doc in enumerate(super().__iter__()):
                    yield doc
                    if i == 0:
                        _grow(path)

        monkeypatch.setattr(pipeline, "DocumentReader", GrowsAfterTheFirstDocument)
    with pytest.raises(InvalidInputError) as exc:
        ingest(cluster, "grown", [str(path)])
    assert exc.value.line() == f"{path}: changed while it was being ingested (appended to or rewritten) — ingest it once it is complete (write it elsewhere, then move it into place); nothing of it was registered"
    _nothing_registered(cluster, "grown")
    monkeypatch.undo()  # complete now: ingested whole, under the hash of what was read
    summary = ingest(cluster, "grown", [str(path)])
    assert summary.documents == 2
    (done,) = Corpus.open("grown", cluster=cluster).inputs().values()
    assert done["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
