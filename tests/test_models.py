"""Model registry, the Model handle, lookups and export: real ZooKeeper, real store, real gensim vectors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from gensim.models import KeyedVectors

from _helpers import one_line_error, own_server_with_request_timeout, stop_server_at_next_commit
from nlpzk.errors import IntegrityError, InvalidInputError, NotFoundError, StoreError
from nlpzk.models import Model, WordNotFoundError, delete_model, model_doc, parse_ref, register_model
from nlpzk.zk import paths
from test_models_support import vocab_and_vectors


@pytest.fixture
def registered(cluster):
    view, kv = vocab_and_vectors(cluster)
    number = register_model(cluster, "lee", kv, vocab_name=view.name, vocab_version=view.version, job="job-1", spec={"dim": 24, "epochs": 5})
    return view, kv, number


def test_register_then_open_gives_the_same_vectors_and_the_exact_vocab(cluster, registered):
    view, kv, number = registered
    assert number == 1
    doc = model_doc(cluster, "lee")
    assert doc["vocab"] == {"name": "lee", "version": view.version, "sha256": view.doc["sha256"]}
    assert doc["job"] == "job-1" and doc["spec"] == {"dim": 24, "epochs": 5}
    assert doc["words"] == len(view) and doc["dim"] == 24 and doc["tags"] == ["latest"]
    assert cluster.store.sha256(doc["path"]) == doc["sha256"]

    model = Model.open("lee", cluster=cluster)
    assert model.ref == "lee@v1"
    assert model.kv.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(model.kv.vectors, kv.vectors)
    np.testing.assert_array_equal(model.kv.expandos["count"], view.counts)
    # the vocabulary it hands out is the version it was trained with, ids equal to rows
    assert model.vocab.version == view.version
    assert model.vocab["fire"] == model.kv.key_to_index["fire"]

    kv2 = KeyedVectors(kv.vector_size)
    kv2.add_vectors(kv.index_to_key, kv.vectors * 2)
    assert register_model(cluster, "lee", kv2, vocab_name="lee", vocab_version=view.version) == 2
    assert Model.open("lee", cluster=cluster).version == 2
    assert Model.open("lee@1", cluster=cluster).version == 1
    np.testing.assert_array_equal(Model.open("lee", version=2, cluster=cluster).kv.vectors, kv.vectors * 2)


def test_register_refuses_an_unknown_vocabulary_version(cluster, registered):
    view, kv, _ = registered
    with pytest.raises(NotFoundError, match=r"lee@v99"):
        register_model(cluster, "lee", kv, vocab_name="lee", vocab_version=99)
    assert model_doc(cluster, "lee")["version"] == 1  # nothing registered


def test_a_first_version_registered_with_other_tags_gets_latest_too(cluster):
    """`model register JOB --tag candidate` on a new model left it without `latest`: a plain NAME
    then failed with "model 'm' has no tag 'latest'"."""
    view, kv = vocab_and_vectors(cluster)
    assert register_model(cluster, "m", kv, vocab_name=view.name, vocab_version=view.version, tags=["candidate"]) == 1
    assert model_doc(cluster, "m")["tags"] == ["candidate", "latest"]
    assert register_model(cluster, "m", kv, vocab_name=view.name, vocab_version=view.version, tags=["candidate"]) == 2
    assert model_doc(cluster, "m")["version"] == 1  # latest stays: only the first version gets it unasked
    assert model_doc(cluster, "m", None, "candidate")["version"] == 2


def test_parse_ref():
    assert parse_ref("wiki") == ("wiki", None, None)
    assert parse_ref("wiki@v3") == ("wiki", 3, None)
    assert parse_ref("wiki@0000000003") == ("wiki", 3, None)
    assert parse_ref("wiki:stable") == ("wiki", None, "stable")
    with pytest.raises(InvalidInputError):
        parse_ref("wiki@x")


def test_cli_list_show_tag_untag_delete(cluster, registered, cli):
    view, kv, _ = registered
    register_model(cluster, "lee", kv, vocab_name="lee", vocab_version=view.version)

    rows = json.loads(cli("model", "list", "--json").stdout)
    assert [(r["name"], r["versions"], r["latest"]) for r in rows] == [("lee", 2, 2)]

    res = cli("model", "tag", "lee@1", "stable")
    assert res.exit_code == 0, res.output
    shown = json.loads(cli("model", "show", "lee:stable", "--json").stdout)
    assert shown["version"] == 1 and shown["tags"] == ["stable"]
    res = cli("model", "tag", "lee@1", "v2")  # lee:v2 would be v1 and lee@v2 v2
    assert res.exit_code == 5 and "looks like a version" in one_line_error(res.stderr)

    # deleting the latest version moves 'latest' back and removes the file
    path2 = model_doc(cluster, "lee", 2)["path"]
    res = cli("model", "delete", "lee@2", "--yes", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["tags"] == ["latest"]
    assert not cluster.store.exists(path2)
    assert model_doc(cluster, "lee")["version"] == 1

    assert cli("model", "untag", "lee", "stable").exit_code == 0
    res = cli("model", "show", "lee:stable")
    assert res.exit_code == 4 and "no tag 'stable'" in one_line_error(res.stderr)
    res = cli("model", "untag", "lee", "latest")  # was allowed, and every plain `lee` failed after it
    assert res.exit_code == 5 and "latest tag cannot be removed" in one_line_error(res.stderr)
    assert cli("model", "show", "lee").exit_code == 0

    path1 = model_doc(cluster, "lee", 1)["path"]
    assert cli("model", "delete", "lee", "--yes").exit_code == 0
    assert not cluster.store.exists(path1)
    assert not cluster.zk.exists(paths.model("lee"))
    res = cli("model", "show", "lee")
    assert res.exit_code == 4 and "unknown model 'lee'" in one_line_error(res.stderr)


def test_unknown_version_is_a_clear_error(cluster, registered, cli):
    res = cli("model", "similar", "lee@7", "fire")
    assert res.exit_code == 4
    assert "has no version v7" in one_line_error(res.stderr)


def test_a_model_whose_vocab_version_was_deleted_names_it(cluster, registered, cli):
    view, _, _ = registered
    cluster.zk.delete(paths.vocab_version("lee", view.version))
    with pytest.raises(NotFoundError, match=rf"vocabulary lee@v{view.version}, which no longer exists"):
        Model.open("lee", cluster=cluster)
    res = cli("model", "similar", "lee", "fire")
    assert res.exit_code == 4
    assert f"lee@v{view.version}" in one_line_error(res.stderr)
    # the registry still shows it, flagged
    assert model_doc(cluster, "lee")["vocab_exists"] is False


def test_similar_and_analogy_and_oov_suggestions(cluster, registered, cli):
    _, kv, _ = registered
    res = cli("model", "similar", "lee", "fire", "-n", "5", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["similar"]
    assert [(g["token"], round(g["similarity"], 5)) for g in got] == [(t, round(s, 5)) for t, s in kv.most_similar("fire", topn=5)]

    res = cli("model", "analogy", "lee", "man", "king", "woman", "--json")
    assert res.exit_code == 0, res.output
    want = kv.most_similar(positive=["king", "woman"], negative=["man"], topn=5)
    assert [a["token"] for a in json.loads(res.stdout)["answers"]] == [t for t, _ in want]

    res = cli("model", "similar", "lee", "firre")
    assert res.exit_code == 4
    line = one_line_error(res.stderr)
    assert "'firre' is not in the vocabulary of model lee@v1" in line and "close tokens:" in line and "fire" in line

    model = Model.open("lee", cluster=cluster)
    with pytest.raises(WordNotFoundError):
        model.analogy("man", "king", "qwxzv")
    assert model.similar("FIRE", 3) == model.similar("fire", 3)  # case variants are tried before giving up


def test_export_formats_load_back_in_gensim_with_equal_vectors(cluster, registered, cli, tmp_path):
    _, kv, _ = registered
    for fmt, binary in (("word2vec", False), ("word2vec-bin", True)):
        out = tmp_path / f"lee.{fmt}"
        res = cli("model", "export", "lee", "--format", fmt, "--out", str(out))
        assert res.exit_code == 0, res.output
        back = KeyedVectors.load_word2vec_format(str(out), binary=binary)
        assert back.index_to_key == kv.index_to_key
        np.testing.assert_array_equal(back.vectors, kv.vectors)

    res = cli("model", "export", "lee", "--out", str(tmp_path / "no-format.bin"))  # .bin without --format: binary, as gensim names it
    assert res.exit_code == 0, res.output
    back = KeyedVectors.load_word2vec_format(str(tmp_path / "no-format.bin"), binary=True)
    np.testing.assert_array_equal(back.vectors, kv.vectors)

    res = cli("model", "export", "lee", "--format", "tsv", "--out", str(tmp_path / "projector"), "--json")
    assert res.exit_code == 0, res.output
    vectors = np.loadtxt(tmp_path / "projector" / "vectors.tsv", delimiter="\t")
    np.testing.assert_allclose(vectors, kv.vectors, rtol=1e-6, atol=1e-7)
    meta = (tmp_path / "projector" / "metadata.tsv").read_text().splitlines()
    assert meta[0] == "word\tcount" and len(meta) == len(kv) + 1
    assert meta[1].split("\t")[0] == kv.index_to_key[0]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    # written with the mode open() gives (0666 less the umask), not the temporary file's 0600
    old = os.umask(0o027)
    try:
        assert cli("model", "export", "lee", "--format", "word2vec", "--out", str(tmp_path / "m.txt")).exit_code == 0
        assert cli("vocab", "export", "lee", "--out", str(tmp_path / "v.tsv")).exit_code == 0
    finally:
        os.umask(old)
    for name in ("m.txt", "v.tsv"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o640, name


def test_export_to_standard_output(cluster, registered, cli, tmp_path):
    """`--out -` wrote a file named '-'; it is standard output now (text word2vec only)."""
    _, kv, _ = registered
    res = cli("model", "export", "lee", "--out", "-")
    assert res.exit_code == 0, res.output
    (tmp_path / "piped.txt").write_bytes(res.stdout_bytes)
    back = KeyedVectors.load_word2vec_format(str(tmp_path / "piped.txt"))
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    assert not os.path.exists("-")
    for args in (["--format", "word2vec-bin"], ["--format", "tsv"], ["--json"]):
        res = cli("model", "export", "lee", "--out", "-", *args)
        assert res.exit_code == InvalidInputError.exit_code and "standard output" in one_line_error(res.stderr), args


def test_export_to_an_unwritable_path_is_a_clear_error(cluster, registered, cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = cli("model", "export", "lee", "--out", str(blocker / "out.txt"))
    assert res.exit_code == InvalidInputError.exit_code
    assert "does not exist" in one_line_error(res.stderr)
    res = cli("model", "export", "lee", "--format", "tsv", "--out", "/proc/nlpzk-export")
    assert res.exit_code == StoreError.exit_code
    assert "/proc/nlpzk-export" in one_line_error(res.stderr)


def test_a_corrupted_vectors_file_is_detected(cluster, registered):
    doc = model_doc(cluster, "lee")
    full = cluster.store.local_path(doc["path"])
    with open(full, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00garbage\x00")
    with pytest.raises(IntegrityError, match="checksum"):
        Model.open("lee", cluster=cluster).kv


def test_delete_whole_model_with_api(cluster, registered):
    result = delete_model(cluster, "lee")
    assert result["deleted"] == [1]
    with pytest.raises(NotFoundError):
        Model.open("lee", cluster=cluster)


def test_a_registration_that_fails_leaves_no_file_behind(cluster):
    view, kv = vocab_and_vectors(cluster)
    cluster.zk.create(paths.model("broken"), b"not json", makepath=True)  # publishing will fail to read it
    with pytest.raises(Exception):
        register_model(cluster, "broken", kv, vocab_name="lee", vocab_version=view.version)
    assert cluster.store.list("models/broken") == []


def test_every_model_status_and_report_command_is_documented_with_an_example():
    from pathlib import Path

    from cli import model as model_cli
    from cli.report import report
    from cli.status import status

    doc = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    commands = [(f"nlpzk model {c.name}", c.callback) for c in model_cli.app.registered_commands if not c.hidden]
    commands += [("nlpzk train report", report), ("nlpzk status", status)]
    assert len(commands) >= 12
    for name, fn in commands:
        assert f"`{name}" in doc, f"{name} is missing from docs/cli.md"
        assert "Example: nlpzk " in (fn.__doc__ or ""), f"{name} has no Example line"


@pytest.mark.timeout(120)
def test_a_registration_without_zookeeper_gives_up_at_the_request_timeout_not_twice_that(tmp_path, monkeypatch):
    """As for vocab build: a publish that got no reply within REQUEST_TIMEOUT (no quorum) gives up;
    register_model then read the versions back to decide whether to delete its file, waiting
    REQUEST_TIMEOUT again (240 s in production for model register / train run / the last round's
    publisher). Still disconnected, the outcome stays unknown: the file is kept for gc."""
    import time

    from _train_helpers import lee_sentences, make_corpus
    from nlpzk.errors import ZkUnavailableError
    from nlpzk.vocab import build

    limit = 12.0  # above the command retry's 10 s deadline, as 120 s is
    server, c = own_server_with_request_timeout(monkeypatch, tmp_path, limit)
    try:
        make_corpus(c, "lee", 2, lee_sentences())
        view = build(c, "v", "lee")
        kv = KeyedVectors(4, count=0)
        kv.add_vectors(view.tokens.to_pylist(), np.zeros((len(view), 4), np.float32))
        stopped = stop_server_at_next_commit(monkeypatch, c.zk, server)
        with pytest.raises(ZkUnavailableError):  # (kazoo's OperationTimeoutError, translated at the API's edge)
            register_model(c, "m", kv, vocab_name="v", vocab_version=view.version)
        elapsed = time.monotonic() - stopped[0]
        assert elapsed < limit + 5, f"the registration gave up {elapsed:.1f}s after the drop, the request timeout is {limit:g}s"
        assert len(list((tmp_path / "store" / "models" / "m").iterdir())) == 1  # unknown outcome: the file stays
    finally:
        c.close()
        server.stop()


def test_open_refuses_a_ref_that_names_a_version_together_with_version_or_tag(cluster, registered):
    """`Model.open("lee@v2", version=1)` opened v2 and dropped version=1 without a word (and
    `Model.open("lee@v1", tag="latest")` likewise), where `Vocabulary.open` refuses the conflict."""
    view, kv, _ = registered
    register_model(cluster, "lee", kv, vocab_name="lee", vocab_version=view.version)
    for ref, kwargs in (("lee@v2", {"version": 1}), ("lee@v1", {"tag": "latest"}), ("lee:latest", {"version": 1})):
        with pytest.raises(InvalidInputError, match="already says which version") as err:
            Model.open(ref, cluster=cluster, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(InvalidInputError, match="not both"):
        Model.open("lee", version=1, tag="latest", cluster=cluster)
    assert Model.open("lee", version=1, cluster=cluster).version == 1
    assert Model.open("lee@v1", cluster=cluster).version == 1


def test_open_takes_cluster_by_keyword_only_as_corpus_and_vocabulary_do(cluster, registered):
    import inspect

    from nlpzk import Corpus, Vocabulary

    for fn in (Model.open, Corpus.open, Vocabulary.open):
        assert inspect.signature(fn).parameters["cluster"].kind is inspect.Parameter.KEYWORD_ONLY, fn
    with pytest.raises(TypeError):
        Model.open("lee", None, None, cluster)  # noqa: the old positional form
