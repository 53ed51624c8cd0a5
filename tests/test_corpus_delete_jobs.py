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
        with pytest.raises(NlpzkError, match="corpus 'lee' is being deleted"):
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


def test_an_ingest_goes_on_after_a_delete_that_marked_the_corpus_then_refused(cluster, config, lee, monkeypatch):
    """A refused delete takes its mark off again; an ingester that joined before the mark (after the
    delete's look for ingesters) commits all the same."""
    from nlpzk.zk import versioned
    from nlpzk.zk.claims import InputClaims

    _job(cluster, view=lee)
    other = testing.Cluster.connect(config)
    try:
        running = InputClaims(other.zk, "lee")
        real_mark, real_refuse = versioned.mark_deleting, Corpus._refuse_if_trained_on

        def mark_deleting(zk, base):
            running.join()  # an ingest joins after the delete looked for ingesters
            real_mark(zk, base)

        def refuse_after_mark(self):  # skip the first look for jobs, so the delete marks, then refuses
            if registry.is_deleting(cluster.zk, paths.corpus("lee")):
                real_refuse(self)

        monkeypatch.setattr(versioned, "mark_deleting", mark_deleting)
        monkeypatch.setattr(Corpus, "_refuse_if_trained_on", refuse_after_mark)
        with pytest.raises(ConflictError, match="j1"):
            Corpus.open("lee", cluster=cluster).delete()
        assert cluster.zk.exists(paths.corpus("lee")).version == running._corpus_version + 2  # marked, then not
        assert running.try_claim("k", {"source": "late.txt"})
        committed = False
        for _ in range(3):
            version, _ = running.commit_point()
            committed = running.commit("k", [], {"source": "late.txt"}, version)
            if committed:
                break
        assert committed
    finally:
        other.close()


def test_finishing_a_delete_stopped_half_way_still_looks_for_jobs(cli, cluster, lee):
    """A delete killed right after its mark may not have looked for jobs yet: running it again looks."""
    from nlpzk.zk import versioned

    _job(cluster, view=lee)
    versioned.mark_deleting(cluster.zk, paths.corpus("lee"))  # the delete's first step, then SIGKILL
    r = cli("corpus", "delete", "lee", "--yes")
    assert r.exit_code == ConflictError.exit_code and "j1" in one_line_error(r.stderr)
    assert registry.is_deleting(cluster.zk, paths.corpus("lee"))  # still marked: files may be gone already
    assert cli("corpus", "delete", "lee", "--yes", "--force").exit_code == 0
    assert cluster.zk.exists(paths.corpus("lee")) is None
