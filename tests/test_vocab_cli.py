"""``nlpzk vocab`` commands: every command with --json, and each bad input as one error line + exit code."""

from __future__ import annotations

import json
import os

import pytest
from _helpers import one_line_error
from test_vocab import GOLDEN_SHARDS, GOLDEN_V1, GROWN_SHARD, add_shards

from nlpzk.corpus import Corpus
from nlpzk.zk import paths, registry


def ok(result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, getattr(result, "stderr", ""))
    return result.stdout


def fails(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    line = one_line_error(result.stderr)
    for n in needles:
        assert n in line, line
    return line


@pytest.fixture
def golden(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    return cluster


def test_build_list_show_tag(cli, golden):
    out = json.loads(ok(cli("vocab", "build", "g", "--corpus", "golden", "--specials", "<unk>,<pad>", "--tag", "latest", "--tag", "stable", "--json")))
    assert out["version"] == 1 and out["tokens"] == 11 and out["tags"] == ["latest", "stable"]
    add_shards(golden, "golden", GROWN_SHARD)
    out = json.loads(ok(cli("vocab", "build", "g", "-c", "golden", "--parent", "stable", "--min-count", "2", "--processes", "2", "--json")))
    assert out["version"] == 2 and out["parent"] == 1 and out["tokens"] == 12 and out["active"] == 10  # end, on marked

    rows = json.loads(ok(cli("vocab", "list", "g", "--json")))
    assert [(r["version"], r["tags"]) for r in rows] == [(1, ["stable"]), (2, ["latest"])]
    assert "v2" in ok(cli("vocab", "list", "g"))
    names = json.loads(ok(cli("vocab", "list", "--json")))
    assert names == [{"name": "g", "versions": 2, "tags": {"latest": 2, "stable": 1}, "deleting": False, "state": "ok", "damaged": None}]  # numbers, as in model list

    shown = json.loads(ok(cli("vocab", "show", "g:stable", "--head", "3", "--json")))
    assert shown["version"] == 1 and [r["token"] for r in shown["head"]] == GOLDEN_V1[:3]
    human = ok(cli("vocab", "show", "g@v2"))
    assert "g v2: 12 tokens, 10 active" in human and "<unk>" in human

    assert json.loads(ok(cli("vocab", "tag", "g", "v2", "stable", "--json"))) == {"name": "g", "tag": "stable", "version": 2}
    assert json.loads(ok(cli("vocab", "show", "g:stable", "--json")))["version"] == 2
    # the model tag form works too: NAME@vN TAG (and NAME:TAG TAG copies a tag)
    assert json.loads(ok(cli("vocab", "tag", "g@v1", "old", "--json"))) == {"name": "g", "tag": "old", "version": 1}
    assert json.loads(ok(cli("vocab", "tag", "g:stable", "cand", "--json")))["version"] == 2
    fails(cli("vocab", "tag", "g", "cand"), 2, "which version of 'g' should get tag 'cand'?")
    # a version and no tag: the tag is missing (not a suggestion to tag something 'v2', a name refused as a tag)
    fails(cli("vocab", "tag", "g", "v2"), 2, "Missing argument 'TAG' (which tag should g v2 get? e.g. nlpzk vocab tag g v2 stable)")
    assert "removed tag old of g" in ok(cli("vocab", "untag", "g", "old"))
    fails(cli("vocab", "untag", "g", "old"), 4, "has no tag 'old'")
    fails(cli("vocab", "untag", "g", "latest"), 5, "latest tag cannot be removed")
    ok(cli("vocab", "untag", "g", "cand"))
    assert [r["ok"] for r in json.loads(ok(cli("vocab", "verify", "g", "--json")))] == [True, True]


def test_build_list_and_show_describe_a_version_with_one_document(cli, golden):
    """build --json had tokens, min_count and unk_id but no version_name; list NAME --json the
    reverse: one version, two shapes. <unk> placed first, added by a child after its parent's rows,
    and inherited: list finds the id build gave without loading every table."""
    built = [
        json.loads(ok(cli("vocab", "build", "g", "--corpus", "golden", "--specials", "<pad>,<unk>", "--tag", "stable", "--json"))),
        json.loads(ok(cli("vocab", "build", "g", "--corpus", "golden", "--json"))),
        json.loads(ok(cli("vocab", "build", "g", "--corpus", "golden", "--parent", "v2", "--specials", "<unk>", "--json"))),
        json.loads(ok(cli("vocab", "build", "g", "--corpus", "golden", "--parent", "v3", "--min-count", "2", "--json"))),
    ]
    assert [b["unk_id"] for b in built] == [1, -1, built[2]["rows"] - 1, built[2]["rows"] - 1]
    built[0]["tags"], built[1]["tags"], built[2]["tags"] = ["stable"], [], []  # latest moved on since
    listed = json.loads(ok(cli("vocab", "list", "g", "--json")))
    assert listed == built
    for b in built:
        shown = json.loads(ok(cli("vocab", "show", f"g@v{b['version']}", "--json")))
        assert shown.pop("head") and shown == b
    assert {"name", "version", "version_name", "tokens", "rows", "size", "min_count", "unk_id", "tags"} <= set(listed[0])


def test_a_first_version_built_with_other_tags_gets_latest_too(cli, golden):
    """The README's journey builds `--tag stable` only; a plain NAME (which means NAME:latest) then
    failed with "vocabulary 'g' has no tag 'latest'" although the vocabulary had a version. A
    later build with other tags leaves `latest` where it is (services may follow it)."""
    out = json.loads(ok(cli("vocab", "build", "g", "--corpus", "golden", "--tag", "stable", "--json")))
    assert out["version"] == 1 and out["tags"] == ["latest", "stable"]
    assert json.loads(ok(cli("vocab", "show", "g", "--json")))["version"] == 1
    assert "tags: candidate" in ok(cli("vocab", "build", "g", "--corpus", "golden", "--tag", "candidate"))
    assert json.loads(ok(cli("vocab", "list", "--json")))[0]["tags"] == {"latest": 1, "stable": 1, "candidate": 2}


def test_diff_export_lookup(cli, golden, tmp_path):
    ok(cli("vocab", "build", "g", "--corpus", "golden", "--min-count", "2"))
    add_shards(golden, "golden", GROWN_SHARD)
    ok(cli("vocab", "build", "g", "--corpus", "golden", "--min-count", "2", "--parent", "v1"))
    d = json.loads(ok(cli("vocab", "diff", "g", "v1", "latest", "--json")))
    assert [r["token"] for r in d["added"]] == ["mat", "and", "zebra"] and d["ids_stable"]
    human = ok(cli("vocab", "diff", "g", "v1", "v2"))
    assert "added: 3" in human and "the" in human

    dest = tmp_path / "vocab.txt"
    ok(cli("vocab", "export", "g@v2", "--format", "txt", "--out", str(dest)))
    assert dest.read_text().splitlines() == ["the", "a", "cat", "dog", "sat", "mat", "and", "zebra"]
    as_json = json.loads(ok(cli("vocab", "export", "g", "--format", "json")))
    assert as_json["zebra"] == 7
    freq = ok(cli("vocab", "export", "g", "-f", "freq")).splitlines()
    assert freq[:2] == ["the 6", "a 2"]

    r = json.loads(ok(cli("vocab", "lookup", "g", "the", "zebra", "unicorn", "--json")))["results"]
    assert r == [
        {"token": "the", "id": 0, "count": 6, "active": True},
        {"token": "zebra", "id": 7, "count": 2, "active": True},
        {"token": "unicorn", "id": None, "count": 0, "active": None},
    ]
    r = json.loads(ok(cli("vocab", "lookup", "g@v1", "--ids", "0", "4", "99", "--json")))["results"]
    assert r == [{"id": 0, "token": "the", "count": 4}, {"id": 4, "token": "sat", "count": 2}, {"id": 99, "token": None, "count": None}]
    assert ok(cli("vocab", "lookup", "g", "zebra")).rstrip("\n").split("\t") == ["zebra", "7", "2", "active"]
    assert ok(cli("vocab", "lookup", "g", "unicorn")).rstrip("\n").split("\t") == ["unicorn", "(unknown)", "0"]


def test_encode_uses_the_corpus_tokenizer(cli, cluster, tmp_path):
    from nlpzk.ingest import tokenizer_options

    add_shards(cluster, "tok", {"s-00000": ["the cat sat", "the dog ran"]}, options=tokenizer_options(lang="en"))
    ok(cli("vocab", "build", "t", "--corpus", "tok", "--specials", "<unk>"))
    # ids: <unk>=0 the=1 cat=2 dog=3 ran=4 sat=5; the corpus lower-cases and drops punctuation
    out = ok(cli("vocab", "encode", "t", input="The cat ran. A zebra sat!\n"))
    assert out.splitlines() == ["1 2 4", "0 0 5"]
    text = tmp_path / "in.txt"
    text.write_text("THE DOG.", encoding="utf-8")
    out = json.loads(ok(cli("vocab", "encode", "t@v1", str(text), "--oov", "-1", "--json")))
    assert out["sentences"] == [{"tokens": ["the", "dog"], "ids": [1, 3]}]
    assert ok(cli("vocab", "encode", "t", "--oov", "-1", input="zebra the")).split() == ["-1", "1"]
    fails(cli("vocab", "encode", "t", "--oov", "none", input="x"), 5, "--oov")
    fails(cli("vocab", "encode", "t", str(tmp_path / "missing.txt")), 5, "does not exist")  # bad input, as for corpus ingest
    # a device would fill the memory, a FIFO without a writer would wait for ever: refused at once
    os.mkfifo(tmp_path / "fifo")
    for special in ("/dev/zero", str(tmp_path / "fifo")):
        fails(cli("vocab", "encode", "t", special), 5, "not a regular file")
    (tmp_path / "nul.txt").write_bytes(b"the\x00dog")
    fails(cli("vocab", "encode", "t", str(tmp_path / "nul.txt")), 5, "looks binary")


def test_bad_inputs_one_line_errors(cli, golden):
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    ok(cli("vocab", "build", "h", "--corpus", "golden"))
    fails(cli("vocab", "show", "nope"), 4, "unknown vocabulary 'nope'")
    fails(cli("vocab", "show", "g@v9"), 4, "no version v9")
    fails(cli("vocab", "show", "g:gone"), 4, "no tag 'gone'")
    fails(cli("vocab", "lookup", "nope", "x"), 4)
    fails(cli("vocab", "tag", "g", "v5", "stable"), 4, "no version v5")
    fails(cli("vocab", "diff", "g", "v1", "v3"), 4)
    fails(cli("vocab", "list", "nope"), 4)
    fails(cli("vocab", "export", "g", "--format", "xml"), 5, "unknown export format")
    fails(cli("vocab", "lookup", "g", "--ids", "the"), 5, "not an id")

    from nlpzk.corpus import Corpus

    Corpus.create(golden, "empty", {"lang": "en"})
    fails(cli("vocab", "build", "g", "--corpus", "empty"), 5, "has no shards")
    fails(cli("vocab", "build", "g", "--corpus", "nosuch"), 4, "unknown corpus 'nosuch'")
    fails(cli("vocab", "build", "g", "--corpus", "golden", "--parent", "h@v1"), 5, "belongs to vocabulary 'h'")
    fails(cli("vocab", "build", "g", "--corpus", "golden", "--parent", "v4"), 4, "no version v4")
    fails(cli("vocab", "build", "g", "--corpus", "golden", "--min-count", "0"), 5, "--min-count must be an integer >= 1, not 0 — ")
    fails(cli("vocab", "build", "fresh", "--corpus", "empty"), 5)
    fails(cli("vocab", "build", "g", "--corpus", "golden", "--min-count", "100000"), 5, "the vocabulary would be empty")
    # a tag that reads as a version would mean one thing after ':' and another everywhere else
    for tag in ("v2", "2", "V10"):
        fails(cli("vocab", "tag", "g", "v1", tag), 5, "looks like a version")
    fails(cli("vocab", "build", "g", "--corpus", "golden", "--tag", "v7"), 5, "looks like a version")
    assert [n for n, _ in registry.list_versions(golden.zk, paths.vocab("g"))] == [1]
    assert registry.maybe_json(golden.zk, paths.vocab("fresh")) is None
    assert len(golden.store.list("vocab/g")) == 1


def test_missing_and_corrupt_files_exit_7(cli, golden):
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    v1 = registry.get_json(golden.zk, paths.vocab_version("g", 1))[0]
    v2 = registry.get_json(golden.zk, paths.vocab_version("g", 2))[0]
    golden.store.delete(v1["path"])
    fails(cli("vocab", "show", "g@v1"), 7, "missing")
    golden.store.write_bytes(v2["path"], b"PAR1 garbage")
    fails(cli("vocab", "lookup", "g", "the"), 7, "fails its checksum")
    r = cli("vocab", "verify", "g", "--json")
    fails(r, 7, "2 of 2 versions of 'g' are broken: v1, v2")
    assert [(x["version"], x["ok"]) for x in json.loads(r.stdout)] == [(1, False), (2, False)]


def test_build_on_a_corpus_with_a_missing_or_damaged_shard_names_the_corpus_verify_command(cli, golden):
    """It said `store file corpora/golden/shards/... is missing — run the matching verify command`."""
    shard = sorted(Corpus.open("golden", cluster=golden).shards, key=lambda s: s.id)[0]
    golden.store.write_bytes(shard.path, b"PAR1 garbage")
    fails(cli("vocab", "build", "g", "--corpus", "golden"), 7, "fails its checksum — check the corpus with: nlpzk corpus verify golden")
    golden.store.delete(shard.path)
    fails(cli("vocab", "build", "g", "--corpus", "golden"), 7, f"store file {shard.path} is missing — check the corpus with: nlpzk corpus verify golden")
    assert registry.maybe_json(golden.zk, paths.vocab("g")) is None or not registry.list_versions(golden.zk, paths.vocab("g"))


def test_delete_a_version_then_the_whole_vocabulary(cli, golden):
    for _ in range(3):
        ok(cli("vocab", "build", "g", "--corpus", "golden"))
    ok(cli("vocab", "tag", "g", "v1", "stable"))
    files = {n: registry.get_json(golden.zk, paths.vocab_version("g", n))[0]["path"] for n in (1, 2, 3)}
    fails(cli("vocab", "delete", "g@v1"), 5, "refusing without a terminal; pass --yes")
    assert golden.zk.exists(paths.vocab_version("g", 1)) and golden.store.exists(files[1])

    out = json.loads(ok(cli("vocab", "delete", "g@v1", "--yes", "--json")))
    assert out == {"name": "g", "deleted": [1], "tags": ["stable"]}
    assert not golden.zk.exists(paths.vocab_version("g", 1)) and not golden.store.exists(files[1])
    assert "deleted g@v3 (tags latest removed or moved)" in ok(cli("vocab", "delete", "g:latest", "--yes"))
    assert json.loads(ok(cli("vocab", "show", "g", "--json")))["version"] == 2  # latest moved back to v2
    fails(cli("vocab", "delete", "g@v7", "--yes"), 4, "has no version v7")
    fails(cli("vocab", "delete", "nope", "--yes"), 4, "unknown vocabulary 'nope'")

    ok(cli("vocab", "delete", "g@v2", "--yes"))
    fails(cli("vocab", "show", "g"), 4, "vocabulary 'g' has no versions")  # not "has no tag 'latest'"
    assert "deleted vocabulary g (0 versions)" in ok(cli("vocab", "delete", "g", "--yes"))
    assert golden.zk.exists(paths.vocab("g")) is None and not golden.store.exists(files[2])
    assert golden.store.list("vocab/g") == []
    assert json.loads(ok(cli("vocab", "list", "--json"))) == []
    assert "no vocabularies yet" in ok(cli("vocab", "list"))


def test_delete_is_refused_while_a_model_or_a_job_uses_it(cli, cluster):
    from test_models_support import vocab_and_vectors

    from nlpzk import models

    view, kv = vocab_and_vectors(cluster)
    models.register_model(cluster, "m", kv, vocab_name=view.name, vocab_version=int(view.version), job="j7")
    spec = {"vocab": view.name, "vocab_version": int(view.version)}
    registry.create_json(cluster.zk, paths.job("j9"), {"spec": spec, "state": "running", "round": 0, "words": 0})
    registry.create_json(cluster.zk, paths.job("j8"), {"spec": spec, "state": "done", "round": 1, "words": 9})
    registry.create_json(cluster.zk, paths.job("j7"), {"spec": spec, "state": "done", "round": 1, "words": 9})  # registered as m@v1: m counts, not j7
    line = fails(cli("vocab", "delete", f"{view.name}@v{view.version}", "--yes"), 6, "is used by model m@v1, job j8 (finished, not registered), job j9 (running)", "--force")
    assert "delete those models, let those jobs finish (and register them) or delete them (nlpzk train delete JOB), or pass --force" in line
    fails(cli("vocab", "delete", view.name, "--yes"), 6, "is used by model m@v1, job j8 (finished, not registered), job j9 (running)")
    assert cluster.zk.exists(paths.vocab_version(view.name, view.version)) and cluster.store.exists(view.doc["path"])
    assert "deleting" not in registry.get_json(cluster.zk, paths.vocab_version(view.name, view.version))[0]  # refused: no mark left
    assert not registry.is_deleting(cluster.zk, paths.vocab(view.name))
    ok(cli("vocab", "delete", view.name, "--yes", "--force"))
    assert cluster.zk.exists(paths.vocab(view.name)) is None and not cluster.store.exists(view.doc["path"])
    assert "(deleted!)" in ok(cli("model", "show", "m"))  # what --force warned of, shown where it matters


def test_a_whole_vocabulary_delete_stopped_half_way_is_refused_everywhere_and_finished_by_running_it_again(cli, golden):
    from nlpzk.zk import versioned

    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    v1 = registry.get_json(golden.zk, paths.vocab_version("g", 1))[0]["path"]
    versioned.mark_deleting(golden.zk, paths.vocab("g"))  # the delete's first step, then killed after one file
    golden.store.delete(v1)
    fails(cli("vocab", "show", "g@v2"), 6, "being deleted")
    fails(cli("vocab", "build", "g", "--corpus", "golden"), 6, "being deleted")
    assert "g (being deleted)" in ok(cli("vocab", "list"))
    ok(cli("vocab", "delete", "g", "--yes"))
    assert golden.zk.exists(paths.vocab("g")) is None and golden.store.list("vocab/g") == []


def test_real_process_exit_code(cli, golden):
    """The same translation in a real ``python -m nlpzk`` process (not only in CliRunner)."""
    proc = cli.run_process("vocab", "show", "nope", timeout=120)
    assert proc.returncode == 4
    one_line_error(proc.stderr)


def test_end_to_end_on_ingested_text(cli, cluster, tmp_path):
    """Real text through `corpus ingest`, then `vocab build` over 2 processes: counts equal a plain Counter
    over the corpus's sentences, and `vocab encode` agrees with the view on the corpus's tokenization."""
    import collections
    import shutil

    from gensim.test.utils import datapath

    from nlpzk.corpus import Corpus
    from nlpzk.ingest import make_tokenizer
    from nlpzk.vocab import Vocabulary

    src = tmp_path / "lee.txt"
    shutil.copy(datapath("lee_background.cor"), src)
    ok(cli("corpus", "ingest", "lee", str(src)))
    ok(cli("vocab", "build", "lee", "--corpus", "lee", "--min-count", "2", "--specials", "<unk>", "--processes", "2"))
    corpus = Corpus.open("lee", cluster=cluster)
    counter = collections.Counter(t for s in corpus.sentences() for t in s)
    view = Vocabulary.open("lee", cluster=cluster)
    kept = {t: c for t, c in counter.items() if c >= 2}
    assert len(view) == len(kept) + 1
    assert {t: view.count(t) for t in kept} == kept
    ranked = sorted(kept, key=lambda t: (-kept[t], t.encode()))
    assert view.tokens.to_pylist()[1:] == ranked

    text = src.read_text(encoding="utf-8").splitlines()[0]
    sentences = make_tokenizer(corpus.options)(text)
    out = json.loads(ok(cli("vocab", "encode", "lee", "--json", input=text)))
    assert [s["ids"] for s in out["sentences"]] == [view.encode(s).tolist() for s in sentences]


def test_human_output_prints_markup_like_tokens_literally(cli, cluster):
    add_shards(cluster, "brackets", {"s-00000": ["[/] [bold] x", "[/]"]})
    ok(cli("vocab", "build", "b", "--corpus", "brackets", "--specials", "[pad]"))
    shown = ok(cli("vocab", "show", "b"))
    assert "[/]" in shown and "[bold]" in shown and "specials [pad]" in shown
    add_shards(cluster, "brackets", {"s-00001": ["[red] [red]"]})
    ok(cli("vocab", "build", "b", "--corpus", "brackets", "--parent", "v1"))
    assert "[red] (id 4, count 2)" in ok(cli("vocab", "diff", "b", "v1", "v2"))


def test_every_vocab_command_is_documented_with_an_example():
    from pathlib import Path

    import typer.main

    from cli.vocab import app

    doc = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    group = typer.main.get_command(app)
    assert set(group.commands) == {"build", "list", "show", "tag", "untag", "delete", "verify", "diff", "export", "lookup", "encode"}
    for name, command in group.commands.items():
        assert f"### `nlpzk vocab {name}" in doc, name
        assert f"nlpzk vocab {name} " in doc.split(f"### `nlpzk vocab {name}", 1)[1], name
        example = (command.help or "").split("Example:", 1)[-1]
        assert "Example:" in (command.help or "") and f"nlpzk vocab {name} " in example, name


def test_export_to_a_path_that_cannot_be_written_is_one_line(cli, golden, tmp_path):
    """Was a traceback (mkstemp's FileNotFoundError in /proc); now the same errors as model export."""
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    fails(cli("vocab", "export", "g", "--out", str(tmp_path / "no" / "such" / "v.txt")), 5, "does not exist", "--out")
    fails(cli("vocab", "export", "g", "--out", str(tmp_path)), 5, "is a directory")
    fails(cli("vocab", "export", "g", "--out", "/proc/nope"), 10, "cannot write to /proc")
    assert ok(cli("vocab", "export", "g", "--format", "freq", "--out", str(tmp_path / "g.freq"))) == ""
    shown = json.loads(ok(cli("vocab", "show", "g", "--head", "1", "--json")))
    lines = (tmp_path / "g.freq").read_text(encoding="utf-8").splitlines()
    assert len(lines) == shown["tokens"] and lines[0] == f"{shown['head'][0]['token']} {shown['head'][0]['count']}"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # no temporary file left


def test_encode_drops_a_utf8_byte_order_mark_as_ingest_does(cli, cluster, tmp_path):
    """A file saved by a Windows editor starts with EF BB BF: its first word was encoded as <unk>."""
    from nlpzk.ingest import tokenizer_options

    add_shards(cluster, "tok", {"s-00000": ["the cat sat", "the dog ran"]}, options=tokenizer_options(lang="en"))
    ok(cli("vocab", "build", "t", "--corpus", "tok", "--specials", "<unk>"))
    f = tmp_path / "notepad.txt"
    f.write_bytes("\ufeffthe cat".encode("utf-8"))
    assert ok(cli("vocab", "encode", "t", str(f))).split() == ["1", "2"]


def test_a_min_count_or_max_size_beyond_int64_is_a_number_like_any_other(cli, golden):
    huge = "1" + "0" * 25  # more than an int64 holds: an OverflowError traceback before
    fails(cli("vocab", "build", "g", "--corpus", "golden", "--min-count", huge), 5, f"occurs {huge} times or more", "the vocabulary would be empty")
    out = json.loads(ok(cli("vocab", "build", "g", "--corpus", "golden", "--max-size", huge, "--json")))
    assert out["version"] == 1 and out["tokens"] == 9 and out["params"]["max_size"] == int(huge)


def test_a_version_written_with_superscript_digits_is_one_error_line(cli, golden):
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    # str.isdigit() says yes to '²' and int() refuses it: a ValueError traceback before
    fails(cli("vocab", "show", "g@v²"), 5, "'v²' is not a version")
    fails(cli("vocab", "tag", "g", "²", "stable"), 5, "'²' is not a version")
    fails(cli("vocab", "diff", "g", "v1", "v¹"), 5, "'v¹' is not a version")
    fails(cli("vocab", "build", "g", "--corpus", "golden", "--parent", "v²"), 5, "'v²' is not a version")


def test_lookup_ids_and_encode_oov_that_are_not_integers_are_one_error_line(cli, golden):
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    # "--5" and "²" pass str.isdigit() after lstrip("-"), not int(): a ValueError traceback before
    for item in ("--5", "²", "1²"):
        fails(cli("vocab", "lookup", "g", "--ids", "--", item), 5, f"{item!r} is not an id")
        fails(cli("vocab", "encode", "g", f"--oov={item}"), 5, f"--oov must be 'unk' or an integer, not {item!r}")
    rows = json.loads(ok(cli("vocab", "lookup", "g", "--ids", "--json", "--", "-1", "0")))["results"]
    assert [(r["id"], r["token"]) for r in rows] == [(-1, None), (0, "the")]


def test_lookup_prints_one_line_per_word_whatever_it_holds(cli, golden):
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    # before: "x\ny" printed over two lines and "a\tb" as two columns of the tab-separated output
    out = ok(cli("vocab", "lookup", "g", "the", "a\tb", "x\ny", "new york", "café"))
    assert out.splitlines() == ["the\t0\t4\tactive", "'a\\tb'\t(unknown)\t0", "'x\\ny'\t(unknown)\t0", "new york\t(unknown)\t0", "café\t(unknown)\t0"]
    rows = json.loads(ok(cli("vocab", "lookup", "g", "a\tb", "--json")))["results"]
    assert rows == [{"token": "a\tb", "id": None, "count": 0, "active": None}]


def test_list_and_verify_show_a_damaged_version_as_a_row_not_an_error(cli, golden):
    """A version node changed outside nlpzk (not JSON) no longer hides the vocabulary's other
    versions: `vocab list NAME` shows it as a damaged row with what is wrong and what to do, and
    `vocab verify NAME` reports it broken (exit 7) next to the good ones."""
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    ok(cli("vocab", "build", "g", "--corpus", "golden", "--tag", "latest"))
    golden.zk.set(paths.vocab_version("g", 1), b"{not json")
    rows = json.loads(ok(cli("vocab", "list", "g", "--json")))
    assert [(r["version"], r["state"]) for r in rows] == [(1, "damaged"), (2, "ok")]
    assert "does not hold a valid JSON document" in rows[0]["damaged"] and rows[1]["damaged"] is None and rows[1]["tags"] == ["latest"]
    human = ok(cli("vocab", "list", "g"))
    assert "v1 (damaged)" in human and "v1: damaged: " in human and "v2" in human
    res = cli("vocab", "verify", "g", "--json")
    assert res.exit_code == 7, (res.stdout, res.stderr)
    checked = json.loads(res.stdout)
    assert [(r["version"], r["ok"]) for r in checked] == [(1, False), (2, True)] and "does not hold a valid JSON document" in checked[0]["problem"]
