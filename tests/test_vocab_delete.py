"""`vocab delete` against what runs at the same time, and what it leaves when stopped half-way: each
interleaving forced deterministically on the real ZooKeeper by running the other process's step (to
completion) at the worst moment. Each failed on the first version of `vocab delete` (found by a review)."""

from __future__ import annotations

import json

import pytest
from _helpers import one_line_error
from test_vocab import GOLDEN_SHARDS, add_shards

from nlpzk import gc, testing
from nlpzk.errors import NlpzkError
from nlpzk.zk import paths, registry, versioned


@pytest.fixture
def golden(cluster):
    add_shards(cluster, "golden", GOLDEN_SHARDS)
    return cluster


# A. `vocab build g` racing `vocab delete g --yes`: the build has claimed the name (ensure_path) and
#    is about to write its file when the whole delete runs start to end. The build's publish then
#    fails with NotFoundError (base gone), which _build does not treat as "known not registered", so
#    its file stays under vocab/g/ -- and with /vocab/g gone, gc calls it "unknown owner" and never
#    collects it.
def test_a_build_racing_a_whole_delete_leaves_no_file_gc_cannot_collect(golden, config, monkeypatch):
    from nlpzk.vocab import build, delete

    build(golden, "g", "golden")
    other = testing.Cluster.connect(config)
    real, fired = registry.peek_next_version, []

    def peek(zk, base):
        if base == paths.vocab("g") and not fired:
            fired.append(base)
            delete(other, "g")  # `nlpzk vocab delete g --yes` in another process, start to end
        return real(zk, base)

    monkeypatch.setattr(registry, "peek_next_version", peek)
    try:
        with pytest.raises(NlpzkError):
            build(golden, "g", "golden")
    finally:
        other.close()
    assert fired
    assert golden.zk.exists(paths.vocab("g")) is None
    left = golden.store.list("vocab/g")
    reasons = {g.path: g.reason for g in gc.find_garbage(golden, older_than=0)}
    assert left == [], f"orphan files {left}, gc says {reasons} (unknown owner: `nlpzk gc` keeps them)"


# B. `train run` creating a job on lee@v1 racing `vocab delete lee@v1 --yes`: users() looks at
#    /jobs only, not at /pending/jobs (a job being created, with an empty mark naming no vocabulary),
#    and the job's creating transaction does not check the vocabulary version still exists. The job
#    is created on a vocabulary version whose znode and file are gone.
@pytest.mark.parametrize("whole", [False, True], ids=["one-version", "whole-vocabulary"])
def test_a_job_created_while_its_vocabulary_is_deleted_is_refused(cluster, config, monkeypatch, whole):
    from test_models_support import ingest_sentences, lee_sentences

    from nlpzk import train
    from nlpzk.train import job as _job
    from nlpzk.vocab import build, delete

    ingest_sentences(cluster, "lee", lee_sentences(), shards=2)
    view = build(cluster, "lee", "lee", min_count=2)
    other = testing.Cluster.connect(config)
    real, fired = _job.rounds.create_job, []

    def create(zk, job, doc, round0, units, **kw):
        if not fired:
            fired.append(job)
            # the other `nlpzk vocab delete lee[@v1] --yes`: users() finds no job yet
            delete(other, "lee", None if whole else view.version)
        return real(zk, job, doc, round0, units, **kw)

    monkeypatch.setattr(_job.rounds, "create_job", create)
    try:
        try:
            train.create_job(cluster, "j1", "lee", f"lee@v{view.version}", epochs=1, syncs_per_epoch=2, dim=8)
        except NlpzkError:  # refused: fine, if nothing is left behind
            assert cluster.zk.exists(paths.job("j1")) is None and cluster.store.list("jobs/j1") == []
            return
    finally:
        other.close()
    assert fired
    spec = registry.get_json(cluster.zk, paths.job("j1"))[0]["spec"]
    assert cluster.zk.exists(paths.vocab_version(spec["vocab"], spec["vocab_version"])), (
        f"job j1 was created on {spec['vocab']}@v{spec['vocab_version']}, which was deleted meanwhile"
    )


# B2. The other order: `vocab delete` checked users() (no job yet), then `train run` creates its
#     job completely, then the delete goes on and removes the vocabulary the job was just created on.
@pytest.mark.parametrize("whole", [False, True], ids=["one-version", "whole-vocabulary"])
def test_a_delete_does_not_remove_a_vocabulary_a_job_was_created_on_after_its_check(cluster, config, monkeypatch, whole):
    from test_models_support import ingest_sentences, lee_sentences

    from nlpzk import train
    from nlpzk.vocab import _ops, build, delete

    ingest_sentences(cluster, "lee", lee_sentences(), shards=2)
    view = build(cluster, "lee", "lee", min_count=2)
    other = testing.Cluster.connect(config)
    real, fired = _ops.users, []

    def users(c, name, number=None):
        out = real(c, name, number)
        if not fired:
            fired.append(name)  # `nlpzk train run j1 --vocab lee@v1` in another process, start to end
            train.create_job(other, "j1", "lee", f"lee@v{view.version}", epochs=1, syncs_per_epoch=2, dim=8)
        return out

    monkeypatch.setattr(_ops, "users", users)
    try:
        try:
            delete(cluster, "lee", None if whole else view.version)
        except NlpzkError:
            pass  # refused: fine
    finally:
        other.close()
    assert fired and cluster.zk.exists(paths.job("j1"))
    assert cluster.zk.exists(paths.vocab_version("lee", view.version)), "job j1's vocabulary was deleted under it"
    assert not registry.is_deleting(cluster.zk, paths.vocab("lee"))


# C. A whole-vocabulary delete stopped half-way (marked, one file gone): docs/cli.md says every
#    other command refuses the name with exit 6. `vocab verify` and `vocab list NAME` do not look at
#    the mark: verify reports the file the delete removed as corruption (exit 7), list exits 0.
def test_every_command_refuses_a_half_deleted_vocabulary(cli, golden):
    def ok(r):
        assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr)

    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    ok(cli("vocab", "build", "g", "--corpus", "golden"))
    v1 = registry.get_json(golden.zk, paths.vocab_version("g", 1))[0]["path"]
    versioned.mark_deleting(golden.zk, paths.vocab("g"))
    golden.store.delete(v1)  # the delete's first file, then SIGKILL
    got = {}
    for args in (("vocab", "verify", "g"), ("vocab", "list", "g"), ("vocab", "show", "g@v2")):
        r = cli(*args)
        got[" ".join(args)] = (r.exit_code, one_line_error(r.stderr) if r.exit_code else "")
    assert all(code == 6 and "being deleted" in line for code, line in got.values()), got


# E. `model register J --tag latest` moved the tags a second time after register_job had already
#    moved them in its publishing transaction. Another registration that publishes v2 with latest
#    in between was undone: latest went back to the older v1.
def test_model_register_tag_does_not_move_latest_back_over_a_newer_version(cli, cluster, config, monkeypatch):
    from test_models_support import run_tiny_job

    from nlpzk import models

    run_tiny_job(cluster, config)
    real = models.register_job

    def register_job(c, job, name=None, **kw):
        got = real(c, job, name, **kw)
        # meanwhile another `model register` publishes v2 of the same model, moving latest to it
        doc = registry.get_json(c.zk, paths.model_version(got[0], got[1]))[0]
        registry.publish_version(c.zk, paths.model(got[0]), dict(doc, job="other", nonce=None, once=None), tags=["latest"])
        return got

    monkeypatch.setattr(models, "register_job", register_job)
    r = cli("model", "register", "j1", "--name", "m", "--tag", "latest", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["version"] == 1
    assert versioned.tags(cluster.zk, paths.model("m"))["latest"] == 2, "latest moved back from v2 to v1"


# D. --force delete, then a new vocabulary of the same name: numbering starts again at v1. Before
#    versions recorded the vocabulary's sha256, the model trained on the *old* lee@v1 then looked
#    whole (`vocab_exists`), `model show` no longer said (deleted!), Model.open handed out the new,
#    unrelated table as the model's vocabulary, and a worker of a job created on the old lee@v1
#    trained with the new table's ids.
def test_users_of_a_force_deleted_vocabulary_are_not_taken_for_users_of_its_rebuilt_namesake(cli, cluster):
    from test_models_support import vocab_and_vectors

    from nlpzk import models, train
    from nlpzk.errors import NotFoundError, TrainingError
    from nlpzk.vocab import build, delete, users

    view, kv = vocab_and_vectors(cluster)
    models.register_model(cluster, "m", kv, vocab_name=view.name, vocab_version=int(view.version))
    train.create_job(cluster, "j1", "lee", f"lee@v{view.version}", epochs=1, syncs_per_epoch=2, dim=8)
    delete(cluster, view.name, force=True)
    assert not models.model_doc(cluster, "m")["vocab_exists"]
    new = build(cluster, view.name, view.name, min_count=5)  # a different vocabulary, same name
    assert new.version == view.version and len(new) != len(view)
    assert not models.model_doc(cluster, "m")["vocab_exists"], "the model claims the new lee@v1 as its vocabulary"
    with pytest.raises(NotFoundError, match="deleted and built again"):
        models.Model.open("m", cluster=cluster)
    assert "(deleted!)" in cli("model", "show", "m").stdout
    assert users(cluster, view.name, new.version) == []  # neither the old model nor the old job uses the new table
    r = cli("train", "worker", "j1")
    assert r.exit_code == TrainingError.exit_code, (r.exit_code, r.stdout, r.stderr)
    assert "is not the table job j1 was created on" in one_line_error(r.stderr)
    # registering vectors trained on the old table against the new one is refused too
    with pytest.raises(NotFoundError, match="not the table these vectors were trained with"):
        models.register_model(cluster, "m2", kv, vocab_name=view.name, vocab_version=int(new.version), vocab_sha256=view.doc["sha256"])
