"""`nlpzk gc`: unregistered and unfinished files are found and deleted; registered ones never."""

import json
import os
import time

from nlpzk import gc
from nlpzk.corpus import Corpus, ShardWriter
from nlpzk.store import naming
from nlpzk.zk import paths, registry


def _age(store, rel, seconds):
    full = store.local_path(rel)
    t = time.time() - seconds
    os.utime(full, (t, t))


def test_gc_finds_only_unregistered_old_files(cluster, cli):
    Corpus.create(cluster, "g", {"lang": "en"})
    with ShardWriter(cluster.store, "g", "kept-0000") as w:
        w.add("d", "a.txt", ["a"])
    registry.create_json(cluster.zk, paths.shard("g", "kept-0000"), w.info.doc())
    with ShardWriter(cluster.store, "g", "orphan-0000") as orphan:  # written, never registered
        orphan.add("d", "a.txt", ["b"])
    tmp = "corpora/g/shards/.tmp-deadbeef-x.parquet"
    cluster.store.write_bytes(tmp, b"partial")
    young = naming.shard_file("g", "young-0000")
    cluster.store.write_bytes(young, b"just written")
    cluster.store.write_bytes("unmanaged/notes.txt", b"not ours")
    for rel in (w.info.path, orphan.info.path, "unmanaged/notes.txt"):
        _age(cluster.store, rel, 7200)
    # write_bytes renamed the tmp name itself; age the file that is there
    _age(cluster.store, tmp, 7200)

    found = {g.path: g.reason for g in gc.find_garbage(cluster, older_than=3600)}
    assert found == {orphan.info.path: "not registered", tmp: "unfinished write"}

    result = cli("gc", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert {f["path"] for f in json.loads(result.stdout)["files"]} == set(found)
    assert all(f["would_delete"] and not f["deleted"] for f in json.loads(result.stdout)["files"])
    assert json.loads(result.stdout)["younger_kept"] == 1  # the young file: said, not hidden
    assert cluster.store.exists(orphan.info.path)

    assert "would delete 2 files" in cli("gc", "--dry-run").stdout
    result = cli("gc", "--json")
    assert result.exit_code == 0
    assert not cluster.store.exists(orphan.info.path) and not cluster.store.exists(tmp)
    for rel in (w.info.path, young, "unmanaged/notes.txt"):
        assert cluster.store.exists(rel)
    cluster.store.write_bytes(tmp, b"partial")  # another unfinished write: one file, not "1 files"
    _age(cluster.store, tmp, 7200)
    assert "deleted 1 file, 7 B" in cli("gc").stdout
    shown = cli("gc").stdout
    assert "no garbage older than 3600 s" in shown and "kept 1 unregistered file younger than 3600 s" in shown
    assert list(Corpus.open("g", cluster=cluster).sentences()) == [["a"]]


def test_gc_keeps_files_named_under_any_key(cluster):
    # a finished training job names its vectors, last parameters and round logs under keys that
    # are not ``path``: gc must keep them all
    files = ["jobs/j/vectors-abc.kv", "jobs/j/rounds/00000003/params-0000-abc.npy", "jobs/j/rounds/00000000/log.json"]
    for rel in files:
        cluster.store.write_bytes(rel, b"x")
    doc = {"state": "done", "final": {"vectors": files[0], "params": [files[1]]}}
    registry.create_json(cluster.zk, paths.job("j"), doc)
    registry.create_json(cluster.zk, paths.job_round("j", 0), {"state": "merged", "log": files[2]})
    orphan = "jobs/j/rounds/00000004/params-0000-def.npy"
    cluster.store.write_bytes(orphan, b"y")
    assert [g.path for g in gc.find_garbage(cluster, older_than=0)] == [orphan]


def test_gc_keeps_files_of_names_this_registry_does_not_know(cluster, config, cli):
    """Two chroots sharing one store: gc in one must not delete the other's registered files."""
    from nlpzk import testing

    other = testing.Cluster.connect(config.with_overrides(zk=config.zk.rsplit("/", 1)[0] + "/other-install"))
    try:
        Corpus.create(other, "theirs", {"lang": "en"})
        with ShardWriter(other.store, "theirs", "s-0000") as w:
            w.add("d", "a.txt", ["x"])
        registry.create_json(other.zk, paths.shard("theirs", "s-0000"), w.info.doc())
        _age(cluster.store, w.info.path, 7200)

        found = gc.find_garbage(cluster, older_than=0)
        assert [(g.path, g.reason) for g in found] == [(w.info.path, "unknown owner")]
        # --dry-run --json says which files a run with the same options deletes: a script need not
        # know the rule (it had only "deleted": false for every file)
        for flags, would in (([], False), (["--include-unknown"], True)):
            (listed,) = json.loads(cli("gc", "--dry-run", "--older-than", "0", *flags, "--json").stdout)["files"]
            assert (listed["would_delete"], listed["deleted"]) == (would, False), (flags, listed)
        result = cli("gc", "--older-than", "0", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["files"][0]["deleted"] is False
        assert cluster.store.exists(w.info.path)
        assert list(Corpus.open("theirs", cluster=other).sentences()) == [["x"]]

        result = cli("gc", "--older-than", "0", "--include-unknown", "--json")
        assert json.loads(result.stdout)["files"][0]["deleted"] is True
        assert not cluster.store.exists(w.info.path)
    finally:
        other.close()


def test_gc_drops_the_nodes_of_an_evaluation_whose_coordinator_died(cluster, config, cli):
    """A killed `model eval --workers K` left /models/<m>/evals/<id> for ever; its ephemeral owner node
    goes with the coordinator's session, and gc then removes the rest (a live one is kept)."""
    from nlpzk import testing
    from nlpzk.zk import workset

    dead, live = paths.model_eval("m", "e-dead"), paths.model_eval("m", "e-live")
    cluster.zk.ensure_path(paths.model("m"))  # the model they evaluate (a work set never creates it)
    coordinator = testing.Cluster.connect(config)
    workset.create(coordinator.zk, dead, {"version": 1}, ["s0", "s1"])
    coordinator.close()  # its session ends: the owner node goes
    workset.create(cluster.zk, live, {"version": 1}, ["s0"])
    assert cluster.zk.exists(f"{dead}/owner") is None and cluster.zk.exists(f"{live}/owner") is not None
    assert cli("gc", "--json").exit_code == 0  # default grace: both are younger than an hour
    assert cluster.zk.exists(dead) is not None
    assert cli("gc", "--older-than", "0", "--json").exit_code == 0
    assert cluster.zk.exists(dead) is None and cluster.zk.exists(live) is not None


def test_gc_keeps_the_files_of_a_name_whose_znode_is_damaged(cluster, cli):
    # A znode whose data is no longer a JSON document (a bad hand edit, a broken restore) named
    # files gc can no longer see: they were listed as "not registered" and deleted.
    Corpus.create(cluster, "g", {"lang": "en"})
    with ShardWriter(cluster.store, "g", "kept-0000") as w:
        w.add("d", "a.txt", ["a"])
    registry.create_json(cluster.zk, paths.shard("g", "kept-0000"), w.info.doc())
    with ShardWriter(cluster.store, "g", "other-0000") as w2:
        w2.add("d", "a.txt", ["b"])
    registry.create_json(cluster.zk, paths.shard("g", "other-0000"), w2.info.doc())
    cluster.zk.set(paths.shard("g", "kept-0000"), b'{"path": "corpora/g/sha')  # truncated JSON
    cluster.zk.set(paths.shard("g", "other-0000"), b"\x00garbage")
    for rel in (w.info.path, w2.info.path):
        _age(cluster.store, rel, 7200)

    found = {g.path: g.reason for g in gc.find_garbage(cluster, older_than=3600)}
    assert found == {w.info.path: gc.DAMAGED, w2.info.path: gc.DAMAGED}
    result = cli("gc", "--include-unknown")
    assert result.exit_code == 0, result.output
    assert "repair or delete that znode" in result.stdout
    assert cluster.store.exists(w.info.path) and cluster.store.exists(w2.info.path)


def test_gc_keeps_the_files_of_a_damaged_job_node_whatever_the_job_is_called(cluster):
    # Bare-value znodes (fences, tags, a round's `merge` node) are recognised by where they are, not
    # by their name alone: a job called "merge" (or "tags", ...) whose node is damaged is still damaged.
    for job in ("other", "merge"):
        rel = f"jobs/{job}/shards-0123456789ab.json"
        cluster.store.write_bytes(rel, b"[]")
        _age(cluster.store, rel, 7200)
        registry.create_json(cluster.zk, paths.job(job), {"spec": {"shards": {"path": rel}}})
        cluster.zk.set(paths.job(job), b'{"spec": {"shards": {"path": "jobs/')  # truncated JSON
    found = {g.path: g.reason for g in gc.find_garbage(cluster, older_than=3600)}
    assert found == {f"jobs/{job}/shards-0123456789ab.json": gc.DAMAGED for job in ("other", "merge")}


def test_gc_dry_run_reports_the_bytes_the_real_run_frees(cluster, cli):
    """`gc --dry-run --json` said "bytes": 0 whatever it would delete (it summed the files deleted,
    none in a dry run). Now it sums what the same run without --dry-run deletes, and says it."""
    Corpus.create(cluster, "g", {"lang": "en"})
    sizes = {"corpora/g/shards/orphan-0000.parquet": 3000, "corpora/g/shards/.tmp-deadbeef-x.parquet": 700, "corpora/theirs/shards/s-0000.parquet": 50}
    for rel, size in sizes.items():
        cluster.store.write_bytes(rel, os.urandom(size))
        _age(cluster.store, rel, 7200)
    ours = 3000 + 700  # corpora/theirs is an unknown owner: kept unless --include-unknown
    for flags, freed in (([], ours), (["--include-unknown"], ours + 50)):
        dry = json.loads(cli("gc", "--dry-run", *flags, "--json").stdout)
        assert dry["bytes"] == freed == sum(f["bytes"] for f in dry["files"] if f["would_delete"]), (flags, dry)
    assert all(cluster.store.exists(rel) for rel in sizes)  # a dry run deletes nothing
    assert "would delete 2 files, 3.6 KB" in cli("gc", "--dry-run").stdout
    real = json.loads(cli("gc", "--json").stdout)
    assert real["bytes"] == ours and not cluster.store.exists("corpora/g/shards/orphan-0000.parquet")
