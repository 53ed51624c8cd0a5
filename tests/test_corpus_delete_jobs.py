"""`corpus delete` against training jobs on the corpus (their workers read its shard files): refused
while a job is not finished, unless --force; and the two orders of a delete racing `train run`
creating a job, each forced deterministically on the real ZooKeeper. Each failed before the fix
(found by a user walk-through: the delete went through, and `train resume` then failed over and over
on missing shard files)."""

from __future__ import annotations

import pytest
from _helpers import one_line_error
from test_models_support import ingest_sentences, lee_sentences

from nlpzk import testing, train
from nlpzk.corpus import Corpus
from nlpzk.errors import ConflictError, NlpzkError
from nlpzk.zk import paths, registry


@pytest.fixture
def lee(cluster):
    from nlpzk.vocab import build

    ingest_sentences(cluster, "lee", lee_sentences(), shards=2)
    return build(cluster, "lee", "lee", min_count=2)


def _job(cluster, name="j1", view=None):
    return train.create_job(cluster, name, "lee", f"lee@v{view.version}", epochs=1, syncs_per_epoch=2, dim=8)


def test_delete_is_refused_while_a_job_on_the_corpus_is_not_finished(cli, cluster, lee):
    _job(cluster, view=lee)
    r = cli("corpus", "delete", "lee", "--yes")
    assert r.exit_code == ConflictError.exit_code, (r.stdout, r.stderr)
    line = one_line_error(r.stderr)
    assert "is being trained on by job(s) j1, which are not finished" in line and "--force" in line
    assert not registry.is_deleting(cluster.zk, paths.corpus("lee")) and Corpus.open("lee", cluster=cluster).shards
    registry.put_json(cluster.zk, paths.job("j1"), dict(registry.get_json(cluster.zk, paths.job("j1"))[0], state="done"))
    assert cli("corpus", "delete", "lee", "--yes").exit_code == 0  # a finished job does not need the shards
    assert cluster.zk.exists(paths.corpus("lee")) is None


def test_force_deletes_under_an_unfinished_job(cli, cluster, lee):
    _job(cluster, view=lee)
    assert cli("corpus", "delete", "lee", "--yes", "--force").exit_code == 0
    assert cluster.zk.exists(paths.corpus("lee")) is None and cluster.store.list("corpora/lee") == []


# order 1: the whole delete runs between `train run` reading the corpus and its job transaction
def test_a_job_created_while_its_corpus_is_deleted_is_refused(cluster, config, lee, monkeypatch):
    from nlpzk.train import job as _jobmod

    other = testing.Cluster.connect(config)
    real, fired = _jobmod.rounds.create_job, []

    def create(zk, job, doc, round0, units, **kw):
        if not fired:
            fired.append(job)
            Corpus.open("lee", cluster=other).delete()  # `nlpzk corpus delete lee --yes` elsewhere: finds no job yet
        return real(zk, job, doc, round0, units, **kw)

    monkeypatch.setattr(_jobmod.rounds, "create_job", create)
    try:
        with pytest.raises(NlpzkError, match="corpus 'lee' was deleted meanwhile, or is being deleted"):
            _job(cluster, view=lee)
    finally:
        other.close()
    assert fired and cluster.zk.exists(paths.job("j1")) is None and cluster.store.list("jobs/j1") == []
    assert cluster.zk.exists(paths.pending_job("j1")) is None


# order 2: the job is created between the delete's first look for jobs and its mark
def test_a_delete_does_not_remove_a_corpus_a_job_was_created_on_after_its_first_look(cluster, config, lee, monkeypatch):
    other = testing.Cluster.connect(config)
    real, calls = Corpus.training_jobs, []

    def training_jobs(self):
        out = real(self)
        if not calls:
            _job(other, view=lee)  # `nlpzk train run j1 ...` elsewhere, start to end
        calls.append(out)
        return out

    monkeypatch.setattr(Corpus, "training_jobs", training_jobs)
    try:
        with pytest.raises(ConflictError, match="j1"):
            Corpus.open("lee", cluster=cluster).delete()
    finally:
        other.close()
    assert calls[0] == [] and calls[1] == ["j1"]
    assert not registry.is_deleting(cluster.zk, paths.corpus("lee")), "the refused delete left its mark"
    assert Corpus.open("lee", cluster=cluster).shards


def test_a_refused_delete_leaves_no_mark_and_an_ingest_goes_on(cluster, config, lee, monkeypatch):
    """The look for jobs and the mark are one step (the guard): a delete that refuses has written
    nothing, so an ingest that joined after its look for ingesters commits all the same."""
    from nlpzk.zk.claims import InputClaims

    _job(cluster, view=lee)
    other = testing.Cluster.connect(config)
    try:
        running = InputClaims(other.zk, "lee")
        monkeypatch.setattr(Corpus, "ingesters", lambda self: [])  # the ingest joins right after this look
        running.join()
        before = cluster.zk.exists(paths.corpus("lee")).version
        with pytest.raises(ConflictError, match="j1"):
            Corpus.open("lee", cluster=cluster).delete()
        assert cluster.zk.exists(paths.corpus("lee")).version == before and not registry.is_deleting(cluster.zk, paths.corpus("lee"))
        assert running.try_claim("k", {"source": "late.txt"})
        version, _ = running.commit_point()
        assert running.commit("k", [], {"source": "late.txt"}, version)
    finally:
        other.close()


def test_a_delete_killed_after_its_mark_is_finished_by_running_it_again(cli, cluster, lee, monkeypatch):
    """A mark is only written once no unfinished job uses the corpus (none can be created after it),
    so running the delete again finishes it without looking again, and without --force."""
    real, calls = cluster.store.delete, []

    def killed(rel):
        calls.append(rel)
        raise KeyboardInterrupt  # SIGKILL after the mark, before the first file went

    monkeypatch.setattr(cluster.store, "delete", killed)
    with pytest.raises(KeyboardInterrupt):
        Corpus.open("lee", cluster=cluster).delete()
    monkeypatch.setattr(cluster.store, "delete", real)
    assert calls and registry.is_deleting(cluster.zk, paths.corpus("lee"))
    with pytest.raises(ConflictError, match="being deleted"):
        _job(cluster, view=lee)  # refused, as everything else
    r = cli("corpus", "delete", "lee", "--yes")
    assert r.exit_code == 0, r.stderr
    assert cluster.zk.exists(paths.corpus("lee")) is None and cluster.store.list("corpora/lee") == []


# A refused delete (corpus or vocabulary) must not make a job creation running at the same time fail:
# it was "corpus 'lee' is being deleted" while the delete took back a mark it had set before looking.
def test_a_refused_corpus_delete_does_not_refuse_a_job_created_meanwhile(cluster, config, lee, monkeypatch):
    from nlpzk.train import job as _jobmod

    other = testing.Cluster.connect(config)
    real, fired, real_jobs = _jobmod.rounds.create_job, [], Corpus.training_jobs

    def training_jobs(self):  # j1 is created between the delete's look and its mark
        out = real_jobs(self)
        if not out and self.cluster is other:
            _job(other, "j1", view=lee)
        return out

    def create(zk, job, doc, round0, units, **kw):
        if not fired and job == "j2":
            fired.append(job)
            with pytest.raises(ConflictError, match="j1"):
                Corpus.open("lee", cluster=other).delete()
        return real(zk, job, doc, round0, units, **kw)

    monkeypatch.setattr(Corpus, "training_jobs", training_jobs)
    monkeypatch.setattr(_jobmod.rounds, "create_job", create)
    try:
        _job(cluster, "j2", view=lee)
    finally:
        other.close()
    assert fired and cluster.zk.exists(paths.job("j2")) is not None and not registry.is_deleting(cluster.zk, paths.corpus("lee"))


def test_a_refused_vocab_delete_does_not_refuse_a_job_created_meanwhile(cluster, config, lee, monkeypatch):
    from nlpzk.train import job as _jobmod
    from nlpzk.vocab import _ops

    other = testing.Cluster.connect(config)
    real, fired, real_users, looks = _jobmod.rounds.create_job, [], _ops.users, []

    def users(c, name, number=None):
        out = real_users(c, name, number)
        looks.append(out)
        if len(looks) == 1:
            _job(other, "j1", view=lee)  # created between the delete's look and its transaction
        return out

    def create(zk, job, doc, round0, units, **kw):
        if not fired and job == "j2":
            fired.append(job)
            with pytest.raises(ConflictError, match="j1"):
                _ops.delete(other, "lee", lee.version)
        return real(zk, job, doc, round0, units, **kw)

    monkeypatch.setattr(_ops, "users", users)
    monkeypatch.setattr(_jobmod.rounds, "create_job", create)
    try:
        _job(cluster, "j2", view=lee)
    finally:
        other.close()
    assert fired and cluster.zk.exists(paths.job("j2")) is not None
    assert cluster.zk.exists(paths.vocab_version("lee", lee.version)) is not None
