"""Vocabulary versions (library): golden ids, determinism, parent/child stability, concurrent builds,
tags and following, diff, export round-trips, encode/decode, bad inputs."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from _helpers import wait_for

from nlpzk import testing
from nlpzk.corpus import Corpus, ShardWriter
from nlpzk.errors import IntegrityError, InvalidInputError, NotFoundError, ZkUnavailableError
from nlpzk.vocab import Vocabulary, assign_ids, build, count_shards, delete, diff, export, parse_spec, tag, versions
from nlpzk.zk import paths, registry, versioned

GOLDEN_SHARDS = {
    "s-00000": ["the cat sat on the mat", "the dog sat"],
    "s-00001": ["a cat and a dog", "the end"],
}
GROWN_SHARD = {"s-00002": ["the zebra and the zebra", "mat mat yak"]}

# ids of a fresh build of GOLDEN_SHARDS with specials <unk>,<pad>: specials first, then by count
# descending, ties by token bytes ascending.
GOLDEN_V1 = ["<unk>", "<pad>", "the", "a", "cat", "dog", "sat", "and", "end", "mat", "on"]
GOLDEN_V1_COUNTS = [0, 0, 4, 2, 2, 2, 2, 1, 1, 1, 1]


def add_shards(cluster, corpus: str, shards: dict[str, list[str]], options: dict | None = None) -> Corpus:
    """Write shards directly (no ingest): one sentence per string, tokens split on spaces."""
    c = Corpus.create(cluster, corpus, options if options is not None else {"lang": "en"})
    for shard_id, sentences in shards.items():
        with ShardWriter(cluster.store, corpus, shard_id) as w:
            for i, s in enumerate(sentences):
                w.add(f"{shard_id}-d{i}", "test.txt", s.split())
        registry.create_json(cluster.zk, paths.shard(corpus, shard_id), w.info.doc())
    return c


def store_files(cluster, name: str) -> list[str]:
    return [p for p in cluster.store.list(f"vocab/{name}")]


# -- ids ---------------------------------------------------------------------------------------


def test_fresh_build_golden_ids(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    v = build(cluster, "g", "golden", specials=["<unk>", "<pad>"])
    assert v.version == 1
    assert v.tokens.to_pylist() == GOLDEN_V1
    assert v.counts.tolist() == GOLDEN_V1_COUNTS
    assert v.active.all()
    assert v["the"] == 2 and v.id("on") == 10 and v.token(5) == "dog" and v.unk_id == 0
    doc = v.doc
    assert doc["corpus"] == "golden" and doc["parent"] is None and doc["rows"] == 11
    assert doc["shards"]["count"] == 2 and doc["shards"]["tokens"] == 16
    assert doc["params"] == {"min_count": 1, "max_size": None, "specials": ["<unk>", "<pad>"]}
    assert doc["path"] == "vocab/g/v0000000001-" + doc["nonce"] + ".parquet"
    assert len(json.dumps(doc)) < 1024

    small = build(cluster, "g", "golden", min_count=2, specials=["<unk>", "<pad>"])
    assert small.tokens.to_pylist() == ["<unk>", "<pad>", "the", "a", "cat", "dog", "sat"]
    capped = build(cluster, "g", "golden", max_size=5, specials=["<unk>", "<pad>"])
    assert capped.tokens.to_pylist() == ["<unk>", "<pad>", "the", "a", "cat"]
    assert [n for n, _ in registry.list_versions(cluster.zk, paths.vocab("g"))] == [1, 2, 3]


def test_tie_break_is_by_utf8_bytes():
    counts = pa.table({"token": ["é", "z", "Z", "ä", "b"], "count": pa.array([1, 1, 1, 1, 3], pa.int64())})
    t = assign_ids(counts)
    assert t["token"].to_pylist() == ["b", "Z", "z", "ä", "é"]
    assert t["id"].to_pylist() == [0, 1, 2, 3, 4]
    # input order does not matter
    shuffled = counts.take([3, 1, 4, 0, 2])
    assert assign_ids(shuffled).equals(t)


def test_same_corpus_twice_gives_identical_table_and_sha256(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    a = build(cluster, "g", "golden", specials=["<unk>"])
    b = build(cluster, "g", "golden", specials=["<unk>"], processes=2)  # exact merge over processes
    assert a.version == 1 and b.version == 2
    assert a.doc["sha256"] == b.doc["sha256"] and a.doc["size"] == b.doc["size"]
    assert a.doc["path"] != b.doc["path"]
    assert cluster.store.read_bytes(a.doc["path"]) == cluster.store.read_bytes(b.doc["path"])
    reopened = Vocabulary.open("g", version=2, cluster=cluster)
    assert reopened.tokens.equals(a.tokens) and np.array_equal(reopened.counts, a.counts)


def test_parent_child_ids_are_stable_golden(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    v1 = build(cluster, "g", "golden", min_count=2, specials=["<unk>", "<pad>"], tags=["latest", "stable"])
    assert v1.tokens.to_pylist() == ["<unk>", "<pad>", "the", "a", "cat", "dog", "sat"]

    add_shards(cluster, "golden", GROWN_SHARD)  # the corpus grew
    v2 = build(cluster, "g", "golden", min_count=2, parent="stable")
    assert v2.doc["parent"] == 1
    assert v2.tokens.to_pylist() == ["<unk>", "<pad>", "the", "a", "cat", "dog", "sat", "mat", "and", "zebra"]
    assert v2.counts.tolist() == [0, 0, 6, 2, 2, 2, 2, 3, 2, 2]
    assert v2.specials == ["<unk>", "<pad>"] and v2.active.all()

    # Raising min_count keeps every id and marks the tokens that fall under it.
    v3 = build(cluster, "g", "golden", min_count=3, parent="v2", specials=["<unk>", "<s>"])
    assert v3.tokens.to_pylist() == ["<unk>", "<pad>", "the", "a", "cat", "dog", "sat", "mat", "and", "zebra", "<s>"]
    assert v3.active.tolist() == [True, True, True, False, False, False, False, True, False, False, True]
    assert v3.min_count == 3 and v3.specials == ["<unk>", "<pad>", "<s>"]
    assert v3["zebra"] == 9 and v3.count("zebra") == 2

    # A child of a child from a corpus without some parent tokens: they stay, count 0, inactive.
    add_shards(cluster, "other", {"s-00000": ["yak yak new new new"]})
    v4 = build(cluster, "g", "other", parent=3, min_count=1)
    assert v4.tokens.to_pylist()[:11] == v3.tokens.to_pylist()
    assert v4.tokens.to_pylist()[11:] == ["new", "yak"]
    assert v4.counts[:11].tolist() == [0] * 11
    assert v4.active.tolist() == [True, True] + [False] * 8 + [True, True, True]


def test_concurrent_builds_get_distinct_numbers_and_none_is_lost(cluster, config):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    n = 4
    start = threading.Barrier(n)
    results: list = [None] * n

    def one(i: int) -> None:
        with testing.Cluster.connect(config) as c:
            start.wait()
            results[i] = build(c, "g", "golden", min_count=1 + i).version

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [1, 2, 3, 4]
    rows = versions(cluster, "g")
    assert [r["version"] for r in rows] == [1, 2, 3, 4]
    # each file is named after the version it was registered as (renamed after a lost race), and exists
    for r in rows:
        assert r["path"].startswith(f"vocab/g/{paths.version_name(r['version'])}-")
        cluster.store.verify(r["path"], r["sha256"])
    assert sorted(store_files(cluster, "g")) == sorted(r["path"] for r in rows)
    # min_count says which build got which number
    by_version = {r["version"]: r["params"]["min_count"] for r in rows}
    assert sorted(by_version.values()) == [1, 2, 3, 4]
    assert versioned.tags(cluster.zk, paths.vocab("g")) == {"latest": 4}


# -- tags, following -----------------------------------------------------------------------------


def test_tags_resolve_and_move(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden", tags=["latest", "stable"])
    build(cluster, "g", "golden", min_count=2)
    assert Vocabulary.open("g", cluster=cluster).version == 2
    assert Vocabulary.open("g", tag="stable", cluster=cluster).version == 1
    assert Vocabulary.open("g:stable", cluster=cluster).version == 1
    assert Vocabulary.open("g@v2", cluster=cluster).version == 2
    assert tag(cluster, "g", "v2", "stable") == 2
    assert tag(cluster, "g", "latest", "prod") == 2  # copy a tag
    assert Vocabulary.open("g", tag="stable", cluster=cluster).version == 2
    rows = versions(cluster, "g")
    assert [r["tags"] for r in rows] == [[], ["latest", "prod", "stable"]]
    assert parse_spec("g@v3") == ("g", 3, None) and parse_spec("g:prod") == ("g", None, "prod") and parse_spec("g") == ("g", None, None)


def test_follower_switches_when_the_tag_moves_and_keeps_serving_on_a_bad_version(cluster, config):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden", tags=["latest", "stable"])
    add_shards(cluster, "golden", GROWN_SHARD)
    build(cluster, "g", "golden", parent=1)
    v3 = build(cluster, "g", "golden", parent=2, min_count=3)

    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g", tag="stable", cluster=reader_cluster)
        seen = []
        view.follow("stable", on_change=lambda v: seen.append(v.version))
        assert view.version == 1 and "zebra" not in view

        tag(cluster, "g", 2, "stable")
        assert view.wait_for_version(2, timeout=10)
        assert view["zebra"] == 9 and view.doc["version"] == 2 and seen == [2]

        # a version whose file is corrupt: the follower keeps v2 and says why
        cluster.store.write_bytes(v3.doc["path"], b"not parquet")
        tag(cluster, "g", 3, "stable")
        deadline = time.time() + 10
        while view.follow_error is None and time.time() < deadline:
            time.sleep(0.05)
        assert isinstance(view.follow_error, IntegrityError)
        assert view.version == 2 and view["zebra"] == 9

        view.unfollow()
        tag(cluster, "g", 1, "stable")
        time.sleep(0.5)
        assert view.version == 2 and view.following is None


def test_follower_survives_session_expiry(cluster, config, zk_server):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden", tags=["latest", "stable"])
    build(cluster, "g", "golden", min_count=2)
    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g:stable", cluster=reader_cluster).follow("stable")
        testing.expire_session(reader_cluster.zk, zk_server.address)
        tag(cluster, "g", 2, "stable")  # moved while the follower had no session
        assert view.wait_for_version(2, timeout=20)
        view.unfollow()


def test_follow_error_clears_when_the_tag_comes_back_and_a_rebuilt_namesake_is_followed(cluster, config):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden", tags=["latest", "stable"])
    v2 = build(cluster, "g", "golden", min_count=2)
    cluster.store.write_bytes(v2.doc["path"], b"not parquet")
    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g:stable", cluster=reader_cluster).follow("stable")
        tag(cluster, "g", 2, "stable")
        wait_for(lambda: isinstance(view.follow_error, IntegrityError), timeout=10, what="the failed switch")
        # back to the version the view has: nothing to load, and nothing wrong any more (the error stayed)
        tag(cluster, "g", 1, "stable")
        wait_for(lambda: view.follow_error is None, timeout=10, what="follow_error cleared")
        assert view.version == 1

        # deleted and built again, the name numbers from v1: the follower at the old v1 kept the old table
        delete(cluster, "g", force=True)
        rebuilt = build(cluster, "g", "golden", specials=["<unk>"], tags=["latest", "stable"])
        assert rebuilt.version == 1 and rebuilt["the"] == 1 != view["the"]
        wait_for(lambda: view.doc["sha256"] == rebuilt.doc["sha256"], timeout=10, what="the rebuilt v1 loaded")
        assert view["the"] == 1 and view.encode(["zebra"]).tolist() == [0]
        view.unfollow()


def test_follow_waits_for_a_tag_not_created_yet_but_not_for_a_deleted_vocabulary(cluster, config):
    """follow() of a view whose vocabulary had been deleted returned and then waited silently for
    ever (no tag of that name can move unless the name is built again): it is NotFoundError now. A
    tag of an existing vocabulary that does not exist yet is still followed until it is created."""
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden", tags=["latest"])
    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g", cluster=reader_cluster)
        assert view.follow("later") is view and view.following == "later"
        build(cluster, "g", "golden", min_count=2)
        tag(cluster, "g", 2, "later")
        assert view.wait_for_version(2, timeout=10)
        view.unfollow()

        delete(cluster, "g", force=True)
        with pytest.raises(NotFoundError) as err:
            view.follow("latest")
        assert err.value.line() == "unknown vocabulary 'g' (deleted since this view of v2 was opened): it has no tag to follow — see: nlpzk vocab list"
        assert view.following is None and view.version == 2 and view["the"] >= 0  # still answers from what it has


def test_a_version_still_loading_when_the_view_stops_following_is_not_swapped_in(cluster, config, monkeypatch):
    from nlpzk.vocab import _view

    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden", tags=["latest", "stable"])
    build(cluster, "g", "golden", min_count=2)
    reached, go = threading.Event(), threading.Event()
    real = _view.load_table

    def slow(cluster, name, number, doc, **kw):  # a big table on a slow store: longer than unfollow waits
        if number == 2:
            reached.set()
            go.wait(30)
        return real(cluster, name, number, doc, **kw)

    monkeypatch.setattr(_view, "load_table", slow)
    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g:stable", cluster=reader_cluster).follow("stable")
        tag(cluster, "g", 2, "stable")
        assert reached.wait(10)
        view.unfollow()  # gives up waiting for the load after a few seconds
        go.set()
        # before: the load finished after unfollow() had returned, and the view switched to v2 anyway
        assert not view.wait_for_version(2, timeout=3)
        assert view.version == 1 and view.following is None and view.follow_error is None


# -- diff, export ----------------------------------------------------------------------------------


def test_diff(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden", min_count=2, specials=["<unk>", "<pad>"])
    add_shards(cluster, "golden", GROWN_SHARD)
    build(cluster, "g", "golden", min_count=2, parent=1)
    build(cluster, "g", "golden", min_count=3, parent=2)
    d = diff(cluster, "g", "v1", "v2")
    assert (d["a"], d["b"], d["size_a"], d["size_b"], d["ids_stable"]) == (1, 2, 7, 10, True)
    assert [(r["token"], r["id"], r["count"]) for r in d["added"]] == [("mat", 7, 3), ("and", 8, 2), ("zebra", 9, 2)]
    assert d["removed_total"] == 0 and d["marked_total"] == 0
    assert d["changes"] == [{"token": "the", "id": 2, "before": 4, "after": 6, "change": 2}]
    d = diff(cluster, "g", 2, "latest", limit=3)
    assert d["added_total"] == 0 and d["marked_total"] == 6
    assert [r["token"] for r in d["marked"]] == ["a", "cat", "dog"]
    # unrelated versions: removed tokens show up, and the ids of common tokens differ
    build(cluster, "g", "golden", min_count=3)
    d = diff(cluster, "g", 3, 4)
    assert d["size_b"] == 2 and d["removed_total"] == 8 and not d["ids_stable"]
    assert [r["token"] for r in d["removed"]] == ["<unk>", "<pad>", "a", "cat", "dog", "sat", "and", "zebra"]


def test_export_round_trips(cluster, tmp_path):
    from gensim.models import KeyedVectors

    add_shards(cluster, "golden", GOLDEN_SHARDS)
    v = build(cluster, "g", "golden", specials=["<unk>", "<pad>"])
    tokens = v.tokens.to_pylist()

    export(v, "txt", tmp_path / "vocab.txt")
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines() == tokens

    export(v, "json", tmp_path / "vocab.json")
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8")) == {t: i for i, t in enumerate(tokens)}

    export(v, "freq", tmp_path / "vocab.freq")
    vec = tmp_path / "vectors.txt"
    vec.write_text(f"{len(tokens)} 2\n" + "".join(f"{t} {i}.0 0.5\n" for i, t in enumerate(tokens)), encoding="utf-8")
    kv = KeyedVectors.load_word2vec_format(str(vec), fvocab=str(tmp_path / "vocab.freq"))
    assert kv.index_to_key == tokens
    assert [kv.get_vecattr(t, "count") for t in tokens] == v.counts.tolist()
    assert list(tmp_path.glob(".tmp-*")) == []


def test_exporting_a_followed_view_writes_one_version_while_the_tag_moves(cluster, config, tmp_path, monkeypatch):
    from nlpzk.vocab import _ops

    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden", tags=["latest", "live"])
    add_shards(cluster, "golden", GROWN_SHARD)
    v2 = build(cluster, "g", "golden", parent=1)  # the same first ids, other counts, three more tokens
    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g:live", cluster=reader_cluster).follow("live")
        check = _ops._check_plain

        def moved_meanwhile(v, fmt):  # the tag moves between reading the tokens and the counts
            check(v, fmt)
            tag(cluster, "g", 2, "live")
            assert view.wait_for_version(2, timeout=10)

        monkeypatch.setattr(_ops, "_check_plain", moved_meanwhile)
        export(view, "freq", tmp_path / "v.freq")
        view.unfollow()
    # before: v1's tokens with v2's counts ("the 6" where v1 counted 4)
    v1 = Vocabulary.open("g@v1", cluster=cluster)
    assert (tmp_path / "v.freq").read_text().splitlines() == [f"{t} {c}" for t, c in zip(v1.tokens.to_pylist(), v1.counts.tolist())]
    assert v2.counts[0] != v1.counts[0]


def test_export_refuses_tokens_a_line_format_cannot_hold(cluster, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    c = Corpus.create(cluster, "odd", {"lang": "en"})
    with ShardWriter(cluster.store, "odd", "s-00000") as w:
        w.add("d", "t.txt", ["new york", "x"])
    registry.create_json(cluster.zk, paths.shard("odd", "s-00000"), w.info.doc())
    assert c.shards
    v = build(cluster, "o", "odd")
    with pytest.raises(InvalidInputError, match="whitespace"):
        export(v, "txt", out / "v.txt")
    assert list(out.iterdir()) == []
    export(v, "json", out / "v.json")
    assert json.loads((out / "v.json").read_text()) == {"new york": 0, "x": 1}


# -- lookups -------------------------------------------------------------------------------------


def test_encode_decode(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    v = build(cluster, "g", "golden", specials=["<unk>", "<pad>"])
    toks = ["the", "zebra", "cat", "the", "on"]
    want = np.array([2, 0, 4, 2, 10], np.int32)
    for form in (toks, tuple(toks), np.array(toks), np.array(toks, dtype=object), pa.array(toks), pa.chunked_array([toks[:2], toks[2:]]), pa.array(toks).dictionary_encode(), iter(toks)):
        got = v.encode(form)
        assert got.dtype == np.int32 and got.tolist() == want.tolist(), type(form)
    # a batch at least as long as the vocabulary takes the Arrow join path: same answers
    big = toks * 3
    for form in (big, np.array(big), pa.array(big), pa.array(big, pa.large_string()), pa.array(big).dictionary_encode()):
        assert v.encode(form).tolist() == want.tolist() * 3, type(form)
        assert v.encode(form, oov=-7).tolist() == [2, -7, 4, 2, 10] * 3, type(form)
    with pytest.raises(InvalidInputError):
        v.encode(big + [3])
    with pytest.raises(InvalidInputError):
        v.encode(pa.array(big + [None]))
    with pytest.raises(InvalidInputError):
        v.encode("the")
    assert v.encode(toks, oov=-1).tolist() == [2, -1, 4, 2, 10]
    assert v.encode([]).tolist() == []
    assert v.decode(want) == ["the", "<unk>", "cat", "the", "on"]
    assert v.decode([2, -1], oov="?") == ["the", "?"] and v.decode([-1]) == [None]
    with pytest.raises(IndexError):
        v.decode([11])
    with pytest.raises(IndexError):
        v.token(11)
    with pytest.raises(KeyError):
        v["zebra"]
    assert v.id("zebra") is None and v.id("zebra", -1) == -1 and "zebra" not in v and v.count("zebra") == 0
    assert len(v) == 11 and v.count("the") == 4 and list(v) == GOLDEN_V1

    plain = build(cluster, "p", "golden")  # no <unk>: unknown tokens are -1
    assert plain.unk_id == -1 and plain.encode(["zebra", "the"]).tolist() == [-1, 0]


def test_encode_and_decode_refuse_what_is_not_a_token_or_an_id_whatever_the_batch_size(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    v = build(cluster, "g", "golden", specials=["<unk>", "<pad>"])
    # under and over the vocabulary's 11 tokens: the dict path and the Arrow join. The dict path gave
    # non-str items the oov id (a bytes b"the" -1, where the join took it for "the")
    short, long = ["the", "cat"], ["the", "cat"] * 6
    for batch in (short, long):
        for odd, needle in ((3, "not int items"), (None, "null"), (b"the", "not bytes"), (["the"], "not list items"), (1.5, "not float items")):
            with pytest.raises(InvalidInputError, match=needle):
                v.encode(batch + [odd])
        with pytest.raises(InvalidInputError, match="not bytes"):
            v.encode(np.array([t.encode() for t in batch]))
    with pytest.raises(InvalidInputError, match="flat sequence"):
        v.encode(np.array([short, short]))
    # Arrow input of another type was cast to strings on the join path: ints 1, 2 looked up as "1", "2"
    for arr in (pa.array([1, 2]), pa.array([1] * 12), pa.array([b"the"]), pa.array([b"the"] * 12).dictionary_encode()):
        with pytest.raises(InvalidInputError, match="not an Arrow array of"):
            v.encode(arr)
    for oov in (2**31, -(2**31) - 1, 1.5, "x", True):  # an OverflowError at the first unknown token, or 1.5 taken as 1
        with pytest.raises(InvalidInputError, match="oov must be an id"):
            v.encode(short, oov=oov)
    assert v.encode(["zebra", "the"], oov=np.int64(-(2**31))).tolist() == [-(2**31), 2]

    # decode took "3" for id 3, 1.7 for 1 and True for 1; ids beyond int64 raised OverflowError
    for ids in (["3"], [1.7], [True], [None], np.array([2.0]), [1, "x"]):
        with pytest.raises(InvalidInputError, match="integer ids"):
            v.decode(ids)
    for ids in ([2**63], np.array([2**63], np.uint64), [0, 2**70]):
        with pytest.raises(IndexError, match="outside vocabulary"):
            v.decode(ids)
    assert v.decode([2, -(2**70), -1], oov="?") == ["the", "?", "?"]
    assert v.decode(np.array([2, 4], np.uint8)) == ["the", "cat"] and v.decode(np.array([], np.int32)) == []

    # token("3") raised a bare TypeError ('<=' not supported), token(True) gave the token of id 1
    for odd in ("3", True, np.bool_(True), 1.0, None):
        with pytest.raises(InvalidInputError, match="token\\(\\) takes an integer id"):
            v.token(odd)
    assert v.token(np.int64(2)) == v.token(2) == "the"
    for past in (11, -1, 2**70):
        with pytest.raises(IndexError, match="outside vocabulary"):
            v.token(past)


def test_a_view_pickles_as_its_version_for_worker_processes(cluster, config):
    import multiprocessing
    import operator
    import pickle

    add_shards(cluster, "golden", GOLDEN_SHARDS)
    v = build(cluster, "g", "golden", specials=["<unk>", "<pad>"])
    toks = ["the", "zebra", "cat"]
    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g", cluster=reader_cluster).follow("latest")
        view["the"]  # with its lookup dict built
        # before: TypeError: cannot pickle '_thread.lock' object (the cluster's ZooKeeper client)
        copy = pickle.loads(pickle.dumps(view))
        view.unfollow()
    assert repr(copy) == "VocabView('g', v1, 11 tokens)" and copy.cluster is None and copy.following is None
    assert copy.encode(toks).tolist() == v.encode(toks).tolist() == [2, 0, 4] and copy.decode([2, -1]) == ["the", None]
    assert (copy.doc, copy.specials, copy.unk_id, copy.counts.tolist(), copy.active.tolist()) == (v.doc, v.specials, v.unk_id, v.counts.tolist(), v.active.tolist())
    with pytest.raises(InvalidInputError, match="unpickled copy"):
        copy.follow("latest")
    # as a DataLoader worker started with spawn gets it
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(operator.methodcaller("encode", toks), (v,)).tolist() == [2, 0, 4]


def test_following_on_a_closed_cluster_is_refused(cluster, config):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden")
    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g", cluster=reader_cluster)
    # before: follow() said it was following ('following' set, in its repr too), and never moved
    with pytest.raises(ZkUnavailableError, match="is closed"):
        view.follow("latest")
    assert view.following is None and view.encode(["the"]).tolist() == [0]  # its table still answers


# -- bad input -------------------------------------------------------------------------------------


def test_unknown_name_version_tag(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    build(cluster, "g", "golden")
    with pytest.raises(NotFoundError, match="unknown vocabulary 'nope'"):
        Vocabulary.open("nope", cluster=cluster)
    with pytest.raises(NotFoundError, match="no version v9"):
        Vocabulary.open("g", version=9, cluster=cluster)
    with pytest.raises(NotFoundError, match="no tag 'gone'"):
        Vocabulary.open("g", tag="gone", cluster=cluster)
    with pytest.raises(NotFoundError):
        tag(cluster, "g", "v9", "stable")
    with pytest.raises(InvalidInputError):
        Vocabulary.open("g", version=1, tag="latest", cluster=cluster)
    # a spec plus version=/tag= was reported as an invalid name ('g@v1'); True opened v1 as version True, 1.0 raised ValueError
    for spec, kw in (("g@v1", dict(tag="latest")), ("g@v1", dict(version=1)), ("g:latest", dict(version=1))):
        with pytest.raises(InvalidInputError, match="already says which version"):
            Vocabulary.open(spec, **kw, cluster=cluster)
    for bad in (True, 1.0, [1]):
        with pytest.raises(InvalidInputError, match="is not a version"):
            Vocabulary.open("g", version=bad, cluster=cluster)
    assert Vocabulary.open("g", version=np.int64(1), cluster=cluster).version == 1
    assert versioned.tags(cluster.zk, paths.vocab("g")) == {"latest": 1}


def test_missing_or_corrupt_file(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    v1 = build(cluster, "g", "golden")
    v2 = build(cluster, "g", "golden")
    cluster.store.delete(v1.doc["path"])
    with pytest.raises(IntegrityError, match="missing"):
        Vocabulary.open("g", version=1, cluster=cluster)
    data = bytearray(cluster.store.read_bytes(v2.doc["path"]))
    data[len(data) // 2] ^= 0xFF
    cluster.store.write_bytes(v2.doc["path"], bytes(data))
    with pytest.raises(IntegrityError, match="fails its checksum"):
        Vocabulary.open("g", version=2, cluster=cluster)
    with pytest.raises(IntegrityError):  # a child cannot be built on a broken parent
        build(cluster, "g", "golden", parent=2)
    assert len(versions(cluster, "g")) == 2


def test_bad_builds_register_nothing(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    Corpus.create(cluster, "empty", {"lang": "en"})
    with pytest.raises(InvalidInputError, match="has no shards"):
        build(cluster, "g", "empty")
    with pytest.raises(NotFoundError, match="unknown corpus"):
        build(cluster, "g", "nosuch")
    assert registry.maybe_json(cluster.zk, paths.vocab("g")) is None

    build(cluster, "g", "golden")
    build(cluster, "h", "golden")
    with pytest.raises(InvalidInputError, match="belongs to vocabulary 'h'"):
        build(cluster, "g", "golden", parent="h@v1")
    with pytest.raises(InvalidInputError, match="belongs to vocabulary 'h'"):
        build(cluster, "g", "golden", parent="h:latest")
    with pytest.raises(NotFoundError):
        build(cluster, "new", "golden", parent="v1")
    with pytest.raises(NotFoundError, match="no version v7"):
        build(cluster, "g", "golden", parent="v7")
    for bad in (dict(min_count=0), dict(max_size=1, specials=["<a>", "<b>"]), dict(specials=["<a>", "<a>"]), dict(tags=["bad/tag"]), dict(processes=0)):
        with pytest.raises(InvalidInputError):
            build(cluster, "g", "golden", **bad)
    with pytest.raises(InvalidInputError):
        build(cluster, "bad name", "golden")
    assert [r["version"] for r in versions(cluster, "g")] == [1]
    assert store_files(cluster, "g") == [versions(cluster, "g")[0]["path"]]
    assert registry.maybe_json(cluster.zk, paths.vocab("new")) is None


def test_readers_never_see_a_mixed_table_while_the_tag_flips(cluster, config):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    a = build(cluster, "g", "golden", specials=["<unk>"], tags=["latest", "live"])  # the=1 ... on=9
    b = build(cluster, "g", "golden", min_count=2)  # the=0 a=1 cat=2 dog=3 sat=4; no <unk>
    probe = ["the", "sat", "on", "cat"]
    expect = {1: a.encode(probe).tolist(), 2: b.encode(probe).tolist()}
    assert expect[1] != expect[2]
    with testing.Cluster.connect(config) as reader_cluster:
        view = Vocabulary.open("g:live", cluster=reader_cluster).follow("live")
        bad, seen, stop = [], set(), threading.Event()

        def reader():
            while not stop.is_set():
                got = view.encode(probe).tolist()
                if got not in expect.values():
                    bad.append(got)
                seen.add(tuple(got))

        t = threading.Thread(target=reader)
        t.start()
        for target in (2, 1, 2, 1, 2):
            tag(cluster, "g", target, "live")
            assert view.wait_for_version(target, timeout=10)
        stop.set()
        t.join(10)
        view.unfollow()
    assert bad == [] and len(seen) == 2


def test_publish_version_retries_on_a_lost_race_and_prepare_sees_the_final_number(cluster, config):
    base = paths.vocab("race")
    calls = []
    with testing.Cluster.connect(config) as other:

        def prepare(number):
            calls.append(number)
            if len(calls) == 1:  # someone else registers first, between our read and our commit
                registry.publish_version(other.zk, base, {"by": "other"}, tags=["latest"])
            return {"path": f"file-{number}"}

        n = registry.publish_version(cluster.zk, base, {"by": "me"}, tags=["latest"], prepare=prepare)
    assert calls == [1, 2] and n == 2
    docs = dict(registry.list_versions(cluster.zk, base))
    assert docs[1]["by"] == "other" and docs[2]["by"] == "me" and docs[2]["path"] == "file-2" and docs[2]["nonce"]
    assert versioned.tags(cluster.zk, base) == {"latest": 2}


def test_a_corrupt_shard_fails_the_build(cluster):
    corpus = add_shards(cluster, "golden", GOLDEN_SHARDS)
    shard = corpus.shards[1]
    data = bytearray(cluster.store.read_bytes(shard.path))
    data[-20] ^= 0x01  # still a readable Parquet file, just not the registered one
    cluster.store.write_bytes(shard.path, bytes(data))
    for processes in (1, 2):
        with pytest.raises(IntegrityError, match=f"shard {shard.path} fails its checksum"):
            build(cluster, "g", "golden", processes=processes)
    assert registry.maybe_json(cluster.zk, paths.vocab("g")) is None and store_files(cluster, "g") == []


def test_counting_a_damaged_shard_names_the_corpus_to_verify(cluster):
    """count_shards (public) hinted "run: nlpzk corpus verify" without the corpus's name for a shard
    that fails its checksum or cannot be read as Parquet."""
    corpus = add_shards(cluster, "golden", GOLDEN_SHARDS)
    cluster.store.write_bytes(corpus.shards[1].path, b"PAR1 garbage")
    for sha256s in ([s.sha256 for s in corpus.shards], None):
        with pytest.raises(IntegrityError, match=f"shard {corpus.shards[1].path} (fails its checksum|cannot be read)") as exc:
            count_shards(cluster.store, [s.path for s in corpus.shards], sha256s=sha256s)
        assert exc.value.hint == "check it with: nlpzk corpus verify golden"


def test_a_publish_without_zookeeper_gives_up_at_the_request_timeout_not_twice_that(tmp_path, monkeypatch):
    """A publish whose commit got no reply within REQUEST_TIMEOUT (120 s in production: no quorum)
    then read its version node back to learn the outcome, waiting REQUEST_TIMEOUT again: `vocab
    build` failed after 240 s. With the connection still down the read-back cannot answer; the
    publish gives up at once (the outcome stays unknown: the table is kept for gc)."""
    from _helpers import own_server_with_request_timeout, stop_server_at_next_commit
    from _train_helpers import lee_sentences, make_corpus

    limit = 12.0  # above the command retry's 10 s deadline, as 120 s is
    server, c = own_server_with_request_timeout(monkeypatch, tmp_path, limit)
    try:
        make_corpus(c, "lee", 2, lee_sentences())
        stopped = stop_server_at_next_commit(monkeypatch, c.zk, server)
        with pytest.raises(ZkUnavailableError):  # (kazoo's OperationTimeoutError, translated at the API's edge)
            build(c, "v", "lee")
        elapsed = time.monotonic() - stopped[0]
        assert elapsed < limit + 5, f"the publish gave up {elapsed:.1f}s after the drop, the request timeout is {limit:g}s"
        assert len(list((tmp_path / "store" / "vocab" / "v").iterdir())) == 1  # unknown outcome: the file stays
    finally:
        c.close()
        server.stop()
