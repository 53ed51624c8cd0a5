"""Ingest end to end against real ZooKeeper, spaCy and Parquet: formats, dedup, re-runs, verify."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from nlpzk.corpus import Corpus
from nlpzk.ingest import ReadOptions, ingest, make_tokenizer
from nlpzk.ingest.pipeline import input_key
from nlpzk.store import naming
from nlpzk.zk import paths, registry

DOCS = [
    "The cat sat on the mat. It was happy.",
    "Dogs bark at night! The neighbours complain.",
    "ZooKeeper keeps the registry small. Shards hold the bulk.",
    "A fourth document, with one sentence",
]


def _all_sentences(corpus: Corpus) -> list[list[str]]:
    return list(corpus.sentences())


def _write_formats(d) -> list[str]:
    """The same four documents in every format and compression; each file also holds a unique line."""
    files = []

    def txt(extra):
        return ("\n".join(DOCS + [extra]) + "\n").encode()

    for name, opener in [("a.txt", open), ("b.txt.gz", gzip.open), ("c.txt.bz2", bz2.open), ("d.txt.xz", lzma.open)]:
        with opener(d / name, "wb") as fh:
            fh.write(txt(f"Only in {name.split('.')[0]} file."))
        files.append(name)
    (d / "e.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(txt("Only in e file.")))
    lines = [json.dumps({"id": i, "text": t}) for i, t in enumerate(DOCS + ["Only in f file."])]
    (d / "f.jsonl").write_text("\n".join(lines) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "text"])
    for i, t in enumerate(DOCS + ['Only in g file, with "quotes",\nand a newline.']):
        w.writerow([i, t])
    (d / "g.csv").write_text(buf.getvalue())
    pq.write_table(pa.table({"text": DOCS + ["Only in h file."]}), d / "h.parquet")
    with open(d / "h.parquet", "rb") as src, gzip.open(d / "i.parquet.gz", "wb") as dst:
        dst.write(src.read())
    return files + ["e.txt.zst", "f.jsonl", "g.csv", "h.parquet", "i.parquet.gz"]


def test_every_format_and_compression_with_dedup_across_files(cluster, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    _write_formats(d)
    # i.parquet.gz holds the same documents as h.parquet, so all five of its documents are duplicates
    summary = ingest(cluster, "fmt", [str(d)], shard_tokens=10_000)
    assert summary.files == 9 and summary.ingested == 9
    # 4 shared documents kept once, plus one unique line per file (h and i share theirs)
    assert summary.documents == 4 + 8
    assert summary.duplicates == 9 * 5 - 12
    corpus = Corpus.open("fmt", cluster=cluster)
    sentences = _all_sentences(corpus)
    tok = make_tokenizer(corpus.options)
    expected_shared = [s for t in DOCS for s in tok(t)]
    assert sum(1 for s in sentences if s in expected_shared) == len(expected_shared)
    assert ["only", "in", "g", "file", "with", "quotes", "and", "a", "newline"] in sentences  # CSV quoting and embedded newline
    flat = {tuple(s) for s in sentences}
    for letter in "abcdefgh":
        assert ("only", "in", letter, "file") in flat or letter == "g"
    # every shard registered with counts that match the file
    assert summary.shards == len(corpus.shards)
    assert sum(s.tokens for s in corpus.shards) == summary.tokens == sum(len(s) for s in sentences)
    assert Corpus.open("fmt", cluster=cluster).verify()["ok"]


def test_rerun_ingests_nothing_and_dedup_spans_runs(cluster, tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("\n".join(DOCS) + "\n")
    first = ingest(cluster, "runs", [str(a)])
    assert (first.ingested, first.documents) == (1, 4)
    before = {(s.id, s.sha256) for s in Corpus.open("runs", cluster=cluster).shards}
    again = ingest(cluster, "runs", [str(a)])
    assert (again.ingested, again.already_done, again.documents, again.shards) == (0, 1, 0, 0)
    # a new file that repeats two old documents: only its new document is kept
    b = tmp_path / "b.txt"
    b.write_text(DOCS[0] + "\n" + "Something new entirely.\n" + DOCS[2] + "\n")
    third = ingest(cluster, "runs", [str(a), str(b)])
    assert (third.ingested, third.already_done, third.documents, third.duplicates) == (1, 1, 1, 2)
    after = {(s.id, s.sha256) for s in Corpus.open("runs", cluster=cluster).shards}
    assert before < after and len(after) == 2


def test_shard_ids_are_golden_and_rolled_at_document_boundaries(cluster, tmp_path):
    a = tmp_path / "a.txt"
    a.write_bytes(("\n".join(DOCS) + "\n").encode())
    summary = ingest(cluster, "ids", [str(a)], shard_tokens=8)
    key = input_key(__import__("hashlib").sha256(a.read_bytes()).hexdigest(), "txt", ReadOptions())
    corpus = Corpus.open("ids", cluster=cluster)
    shards = corpus.shards
    assert [s.id for s in shards] == [naming.shard_id(key, i) for i in range(len(shards))]
    assert key == "21637b4fe607cfad51a7"  # golden: the key (and so every shard name) must not drift
    # 8-token shards close after the document that crosses 8 tokens: every document is whole
    table = pa.concat_tables([corpus.read(s) for s in shards])
    doc_ids = table.column("doc_id").to_pylist()
    per_shard = [set(corpus.read(s).column("doc_id").to_pylist()) for s in shards]
    assert all(a.isdisjoint(b) for i, a in enumerate(per_shard) for b in per_shard[i + 1 :])
    assert doc_ids[0] == f"{key}:1" and summary.shards == len(shards) >= 2
    assert set(table.column("source").to_pylist()) == {str(a)}


def test_verify_detects_corrupt_shard_missing_file_and_strays(cluster, tmp_path, cli):
    a = tmp_path / "a.txt"
    a.write_text("\n".join(DOCS * 1) + "\n" + "\n".join(f"Line number {i} here." for i in range(200)) + "\n")
    ingest(cluster, "ver", [str(a)], shard_tokens=200)
    corpus = Corpus.open("ver", cluster=cluster)
    shards = corpus.shards
    assert len(shards) >= 3 and corpus.verify()["ok"]
    store = cluster.store
    path0 = store.local_path(shards[0].path)
    data = bytearray(open(path0, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path0, "wb").write(bytes(data))
    os.remove(store.local_path(shards[1].path))
    store.write_bytes(naming.shard_file("ver", "stray-00000"), b"junk")
    report = corpus.verify()
    assert not report["ok"]
    assert [c["shard"] for c in report["corrupt"]] == [shards[0].id]
    assert [m["shard"] for m in report["missing"]] == [shards[1].id]
    assert report["stray"] == [naming.shard_file("ver", "stray-00000")]
    res = cli.run_process("corpus", "verify", "ver")
    assert res.returncode == 7 and "corrupt" in res.stdout and "missing" in res.stdout
    assert res.stderr.strip().startswith("error: corpus 'ver': 1 missing and 1 corrupt")


def _two_files_sharing_documents(d):
    d.mkdir()
    (d / "a.txt").write_text(DOCS[0] + "\n" + DOCS[1] + "\n" + DOCS[3] + "\n")
    own = [f"Sentence number {i} of file b. It has two parts." for i in range(12)]
    b_docs = own[:3] + [DOCS[1]] + own[3:8] + [DOCS[3], DOCS[2]] + own[8:]
    (d / "b.txt").write_text("\n".join(b_docs) + "\n")


def test_processes_do_not_change_the_result(cluster, tmp_path):
    _two_files_sharing_documents(tmp_path / "in")
    par = ingest(cluster, "par", [str(tmp_path / "in")], processes=2, shard_tokens=20)
    seq = ingest(cluster, "seq", [str(tmp_path / "in")], processes=1, shard_tokens=20)
    assert (par.documents, par.duplicates) == (seq.documents, seq.duplicates) == (3 + 13, 2)
    assert par.shards == seq.shards >= 4 and par.tokens == seq.tokens
    # the same shard set with the same rows (bytes differ only by the corpus name in the metadata)
    par_c, seq_c = Corpus.open("par", cluster=cluster), Corpus.open("seq", cluster=cluster)
    assert [s.id for s in par_c.shards] == [s.id for s in seq_c.shards]
    assert all(par_c.read(a).equals(seq_c.read(b)) for a, b in zip(par_c.shards, seq_c.shards))


def test_rewrite_when_a_concurrently_committed_input_shares_documents(cluster, tmp_path):
    """Ingester 1 tokenizes b.txt; meanwhile ingester 2 commits a.txt, which shares two documents.
    Ingester 1's commit must drop them, giving exactly what a run after a.txt would have written."""
    from nlpzk.ingest import pipeline, tokenizer_options
    from nlpzk.zk.claims import InputClaims

    d = tmp_path / "in"
    _two_files_sharing_documents(d)
    expected = ingest(cluster, "after", [str(d / "a.txt")], shard_tokens=20)
    expected = ingest(cluster, "after", [str(d / "b.txt")], shard_tokens=20)

    opts = tokenizer_options()
    Corpus.create(cluster, "race", opts)
    claims = InputClaims(cluster.zk, "race")
    claims.join()
    b = next(f for f in pipeline.readers.discover([str(d / "b.txt")]))
    sha = pipeline.readers.content_sha256(b)
    key = input_key(sha, "txt", ReadOptions())
    assert claims.try_claim(key, {"source": b.path})
    job = pipeline.Job("race", cluster.store.uri, opts, ReadOptions(), b, key, sha, 20, committed=())
    result = pipeline.run_job(job, pipeline.Tokenizers(opts))
    assert result.documents == 15  # it knew nothing of a.txt
    ingest(cluster, "race", [str(d / "a.txt")], shard_tokens=20)  # the other ingester commits first
    summary = pipeline.Summary("race")
    registered = pipeline._commit(cluster, claims, job, result, summary, fence=lambda: None)
    claims.leave()
    assert summary.redone == 1 and (registered.documents, registered.duplicates) == (13, 2)
    assert (registered.tokens, len(registered.shards)) == (expected.tokens, expected.shards)
    race, after = Corpus.open("race", cluster=cluster), Corpus.open("after", cluster=cluster)
    assert [s.id for s in race.shards] == [s.id for s in after.shards]
    assert all(race.read(x).equals(after.read(y)) for x, y in zip(race.shards, after.shards))
    report = race.verify()
    assert report["ok"] and report["stray"] == [] and report["temporary"] == []


def test_cli_ingest_list_show_delete(cli, tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("\n".join(DOCS) + "\n" + DOCS[0] + "\n")
    res = cli("corpus", "ingest", "c1", str(a), "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert (s["documents"], s["duplicates"], s["shards"]) == (4, 1, 1)
    assert s["tokens"] == 31
    listed = json.loads(cli("corpus", "list", "--json").stdout)
    assert [(c["name"], c["tokens"], c["shards"]) for c in listed] == [("c1", 31, 1)]
    shown = json.loads(cli("corpus", "show", "c1", "--json").stdout)
    assert shown["options"]["lang"] == "en" and shown["shard_list"][0]["tokens"] == 31
    assert shown["input_list"][0]["source"] == str(a)
    human = cli("corpus", "show", "c1")
    assert "lowercase=True" in human.stdout and "c1" in human.stdout
    res = cli("corpus", "delete", "c1", "--yes")
    assert res.exit_code == 0 and "deleted corpus c1" in res.stdout
    assert json.loads(cli("corpus", "list", "--json").stdout) == []


def test_ingest_refuses_other_options_for_an_existing_corpus(cli, tmp_path):
    a = tmp_path / "a.txt"
    a.write_text(DOCS[0] + "\n")
    assert cli("corpus", "ingest", "opt", str(a)).exit_code == 0
    res = cli("corpus", "ingest", "opt", str(a), "--no-lowercase")
    assert res.exit_code == 6 and "exists with other options" in res.stderr


def test_sample_corpus_ingests_with_known_totals(cluster):
    """Golden totals of corpora/sample with default options: a change here changes every demo and doc."""
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "corpora" / "sample"
    s = ingest(cluster, "sample", [str(sample)])
    assert (s.files, s.documents, s.duplicates, s.sentences, s.tokens, s.shards) == (3, 2064, 36, 10295, 87519, 3)


def test_gc_keeps_every_file_an_ingest_registered(cluster, tmp_path):
    """nlpzk gc deletes store files no registry document names: shards and hash sidecars must be named."""
    from nlpzk import gc

    a = tmp_path / "a.txt"
    a.write_text("\n".join(DOCS) + "\n")
    ingest(cluster, "kept", [str(a)], shard_tokens=10)
    assert gc.find_garbage(cluster, older_than=0) == []
    assert Corpus.open("kept", cluster=cluster).verify()["ok"]


def test_paragraph_mode_tsv_ndjson_and_lemmas(cli, cluster, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "p.txt").write_text("The dogs were\nbarking loudly.\n\n\nCats slept.\nThey dreamt.\n")
    (d / "t.tsv").write_text("id\tbody\n1\tMice ran away.\n")
    (d / "n.ndjson").write_text(json.dumps({"body": "Geese flew south."}) + "\n")
    res = cli("corpus", "ingest", "para", str(d), "--paragraphs", "--text-field", "body", "--lemmatize", "--json")
    assert res.exit_code == 0, res.stderr
    s = json.loads(res.stdout)
    assert (s["files"], s["documents"]) == (3, 4)
    corpus = Corpus.open("para", cluster=cluster)
    got = {tuple(x) for x in corpus.sentences()}
    assert got == {("the", "dog", "be", "bark", "loudly"), ("cat", "sleep"), ("they", "dream"), ("mouse", "run", "away"), ("goose", "fly", "south")}
    doc_ids = {r for sh in corpus.shards for r in corpus.read(sh).column("doc_id").to_pylist()}
    assert any(i.endswith(":1") for i in doc_ids) and any(i.endswith(":5") for i in doc_ids)  # paragraphs start at lines 1 and 5
    assert corpus.options["lemmatize"] is True
    bad = cli("corpus", "ingest", "para2", str(d / "p.txt"), "--lemmatize", "--lang", "xx")
    assert bad.exit_code == 5 and "no lookup lemmatizer table for language 'xx'" in bad.stderr


def test_lone_cr_and_cr_lf_end_lines_as_lf_does(cluster, tmp_path):
    """A file with old-Mac line ends (a lone CR) was read as one line: one document, a CSV refused, or
    the whole file refused past --max-line-bytes. CR LF and a lone CR now end lines as LF does."""
    read = ReadOptions(max_line_bytes=100)  # every line fits; every file is longer
    results = {}
    for end in ("\n", "\r\n", "\r"):
        d = tmp_path / f"ends-{len(end)}-{ord(end[0])}"
        d.mkdir()
        (d / "a.txt").write_bytes(end.join(DOCS + ["", "  Spaces around.  ", ""]).encode())
        (d / "b.jsonl").write_bytes(end.join(json.dumps({"text": f"JSON {t}"}) for t in DOCS).encode() + end.encode())
        (d / "c.csv").write_bytes(end.join(["id,text", '1,"A field over', f'two lines."{end}2,Last row.']).encode())
        summary = ingest(cluster, f"ends{ord(end[-1])}{len(end)}", [str(d)], read=read)
        corpus = Corpus.open(summary.corpus, cluster=cluster)
        records = sorted((s.sources[0].rsplit("/", 1)[1], i.split(":")[1]) for s in corpus.shards for i in corpus.read(s).column("doc_id").to_pylist())
        results[end] = (summary.documents, sorted(_all_sentences(corpus)), records)  # shard order follows the content hash
    assert results["\n"][0] == 4 + 1 + 4 + 2
    assert ["a", "field", "over", "two", "lines"] in results["\n"][1]
    assert results["\r\n"] == results["\n"] and results["\r"] == results["\n"]


def test_delete_refuses_while_an_ingest_runs_and_needs_confirmation(cli, cluster, tmp_path):
    from nlpzk.zk.claims import InputClaims

    a = tmp_path / "a.txt"
    a.write_text(DOCS[0] + "\n")
    assert cli("corpus", "ingest", "busy", str(a)).exit_code == 0
    running = InputClaims(cluster.zk, "busy")
    running.join()  # as if another ingest were running now
    res = cli("corpus", "delete", "busy", "--yes")
    assert res.exit_code == 6 and "being ingested right now" in res.stderr
    res = cli("corpus", "delete", "busy")  # no terminal to ask on: refuses without --yes
    assert res.exit_code != 0 and "--yes" in res.stderr
    running.leave()
    assert cli("corpus", "delete", "busy", "--yes").exit_code == 0
    assert cluster.zk.exists(paths.corpus("busy")) is None and cluster.store.list("corpora/busy") == []
    res = cli("corpus", "show", "busy")
    assert res.exit_code == 4 and "unknown corpus 'busy'" in res.stderr


def test_a_claim_released_between_our_create_and_our_look_is_taken(cluster, monkeypatch):
    """CI caught this race between two ingesters: B's create meets A's claim, A commits and drops the
    claim, B reads the node to see whose it is and finds nothing. B must try again and get it."""
    from nlpzk.ingest import tokenizer_options
    from nlpzk.zk.claims import InputClaims

    Corpus.create(cluster, "gap", tokenizer_options())
    a, b = InputClaims(cluster.zk, "gap"), InputClaims(cluster.zk, "gap")
    a.join()
    b.join()
    assert a.try_claim("k1", {"source": "x.txt"})
    real, dropped = registry.maybe_json, []

    def look(zk, path):  # A lets go at the worst moment: right before B looks at the node
        if path == paths.claim("gap", "k1") and not dropped:
            dropped.append(path)
            a.release("k1")
        return real(zk, path)

    monkeypatch.setattr(registry, "maybe_json", look)
    assert b.try_claim("k1", {"source": "x.txt"})
    assert dropped and b.holder("k1")["member"] == b.member
    assert not a.try_claim("k1", {"source": "x.txt"})  # and it is B's now, not shared
    a.leave()
    b.leave()


def test_a_shard_registered_by_someone_else_names_the_corpus_to_verify(cluster, tmp_path):
    """The commit's conflict (a shard znode of this input already there) hinted "run nlpzk corpus
    verify" without the corpus's name."""
    import hashlib

    from nlpzk.errors import ConflictError
    from nlpzk.ingest import tokenizer_options

    a = tmp_path / "a.txt"
    a.write_text("\n".join(DOCS) + "\n")
    Corpus.create(cluster, "taken", tokenizer_options())
    key = input_key(hashlib.sha256(a.read_bytes()).hexdigest(), "txt", ReadOptions())
    registry.create_json(cluster.zk, paths.shard("taken", naming.shard_id(key, 0)), {"by": "someone else"})
    with pytest.raises(ConflictError, match=f"input {key} or one of its shards is already registered by another ingester") as exc:
        ingest(cluster, "taken", [str(a)])
    assert exc.value.hint == "run: nlpzk corpus verify taken"
