"""Guard nodes between deletes and job creations or model registrations: cases a review found, each forced
deterministically on the real ZooKeeper. Each failed on the first version of the guards (5a92f19)."""

from __future__ import annotations

import pytest
from kazoo.exceptions import ConnectionLoss
from test_models_support import ingest_sentences, lee_sentences, vocab_and_vectors

from nlpzk import testing, train
from nlpzk.corpus import Corpus
from nlpzk.errors import NlpzkError
from nlpzk.zk import paths, registry


@pytest.fixture
def lee(cluster):
    from nlpzk.vocab import build

    ingest_sentences(cluster, "lee", lee_sentences(), shards=2)
    return build(cluster, "lee", "lee", min_count=2)


def _job(cluster, name="j1", view=None):
    return train.create_job(cluster, name, "lee", f"lee@v{view.version}", epochs=1, syncs_per_epoch=2, dim=8)


# 1. create_job now catches BaseException around the job transaction and deletes the job's files:
# a connection lost after the commit reached the server (outcome unknown) leaves a job node whose
# round-0 parameters and frozen shard list are gone. (Before: only StaleCheck deleted them; the
# comment above the try still says "a connection error in this transaction leaves the files".)
def test_connection_lost_after_the_job_commit_keeps_the_job_files(cluster, lee, monkeypatch):
    from nlpzk.train import job as _jobmod

    real = _jobmod.rounds.create_job

    def committed_then_lost(zk, job, doc, round0, units, **kw):
        real(zk, job, doc, round0, units, **kw)  # the server committed it...
        raise ConnectionLoss()  # ...and the reply was lost

    monkeypatch.setattr(_jobmod.rounds, "create_job", committed_then_lost)
    with pytest.raises(Exception):
        _job(cluster, view=lee)
    doc = registry.maybe_json(cluster.zk, paths.job("j1"))
    assert doc is not None  # the job exists
    round0 = registry.maybe_json(cluster.zk, paths.job_round("j1", 0))
    assert cluster.store.exists(doc["spec"]["shards"]["path"]), "the job's frozen shard list was deleted"
    assert cluster.store.exists(round0["params"][0]), "the job's round-0 parameters were deleted"


# 2. Job creations on one vocabulary (or corpus) serialise on its guard with a budget of 20
# attempts: a creation loses one attempt per *other job creation* that commits between its read
# of the guard and its commit, so the 21st of a burst of concurrent `train run`s (a sweep) fails
# with "its corpus and vocabulary kept changing" although nothing is being deleted.
def test_concurrent_job_creations_do_not_make_a_job_creation_fail(cluster, config, lee, monkeypatch):
    from nlpzk.train import job as _jobmod

    other = testing.Cluster.connect(config)
    real, others = _jobmod.rounds.create_job, []

    def create(zk, job, doc, round0, units, **kw):
        if job == "mine" and len(others) < 21:  # another `train run` commits first, each attempt
            name = f"sweep{len(others)}"
            others.append(name)
            _job(other, name, view=lee)
        return real(zk, job, doc, round0, units, **kw)

    monkeypatch.setattr(_jobmod.rounds, "create_job", create)
    try:
        _job(cluster, "mine", view=lee)  # ConflictError: "... kept changing" on 5a92f19
    finally:
        other.close()
    assert cluster.zk.exists(paths.job("mine")) is not None


# 3. `register_model` (public API) is a user of a vocabulary version (`users()` counts model
# versions) but takes no part in the guard: a `vocab delete NAME@vN` without --force that looks
# while the model's vectors are being written goes through, and the model is then registered on
# the version that was just deleted.
def test_a_model_cannot_be_registered_on_a_version_deleted_without_force(cluster, config, monkeypatch):
    from nlpzk import models
    from nlpzk.vocab import _ops

    view, kv = vocab_and_vectors(cluster)
    other = testing.Cluster.connect(config)
    real_write, deleted = models._write_vectors, []

    def write(c, rel, kv_, meta):
        out = real_write(c, rel, kv_, meta)
        deleted.append(_ops.delete(other, "lee", view.version))  # `nlpzk vocab delete lee@v1 --yes` (no --force)
        return out

    monkeypatch.setattr(models, "_write_vectors", write)
    try:
        try:
            models.register_model(cluster, "m", kv, vocab_name="lee", vocab_version=view.version)
        except NlpzkError:
            pass  # refusing the registration is a fine outcome
    finally:
        other.close()
    registered = models._version_docs(cluster, "m")
    gone = cluster.zk.exists(paths.vocab_version("lee", view.version)) is None
    assert not (registered and gone), "model m@v1 was registered on lee@v1, which a delete without --force removed"


# 4. A refused delete is said to write nothing, but guard_version creates /corpora/<c>/users: a
# delete refused because the first ingest of a new corpus is running leaves a child that makes
# that ingest's clean-up (claims.remove_if_empty, a fixed list of children) fail, so the failed
# first ingest leaves an empty corpus behind.
def test_a_refused_delete_does_not_keep_a_failed_first_ingest_from_removing_its_corpus(cluster, config):
    from nlpzk.errors import ConflictError
    from nlpzk.zk.claims import InputClaims

    Corpus.create(cluster, "fresh", {"lang": "en"})
    other = testing.Cluster.connect(config)
    try:
        claims = InputClaims(other.zk, "fresh")
        claims.join()  # a first ingest of "fresh" runs...
        with pytest.raises(ConflictError, match="being ingested"):
            Corpus.open("fresh", cluster=cluster).delete()  # ...so this delete is refused
        claims.leave()  # the ingest then fails: its clean-up removes the corpus it created empty
        assert claims.remove_if_empty()
    finally:
        other.close()
    assert cluster.zk.exists(paths.corpus("fresh")) is None


# 5. After a StaleCheck, _create_guarded looks again only at "exists and not being deleted" for
# the corpus (the vocabulary gets a sha256 check): a corpus deleted (no job yet, so not refused) and
# ingested anew under the same name while `train run` wrote its files passes, and the job is created
# with the old corpus's frozen shard list (files gone, or replaced by others with another sha256).
def test_a_job_is_not_created_on_a_corpus_deleted_and_recreated_meanwhile(cluster, config, lee, monkeypatch):
    from nlpzk.train import job as _jobmod

    other = testing.Cluster.connect(config)
    real, fired = _jobmod.rounds.create_job, []

    def create(zk, job, doc, round0, units, **kw):
        if not fired:
            fired.append(job)
            Corpus.open("lee", cluster=other).delete()  # finds no job: deleted
            ingest_sentences(other, "lee", lee_sentences()[:400], shards=3)  # and ingested again
        return real(zk, job, doc, round0, units, **kw)

    monkeypatch.setattr(_jobmod.rounds, "create_job", create)
    try:
        try:
            _job(cluster, view=lee)
        except NlpzkError:
            pass  # refusing is the right outcome
    finally:
        other.close()
    doc = registry.maybe_json(cluster.zk, paths.job("j1"))
    if doc is not None:
        import json

        shard_list = json.loads(cluster.store.read_bytes(doc["spec"]["shards"]["path"]))
        now = {(s.path, s.sha256) for s in Corpus.open("lee", cluster=cluster).shards}
        stale = [s["path"] for s in shard_list if (s["path"], s["sha256"]) not in now]
        assert not stale, f"job j1 was created on the new corpus 'lee' with the old one's shards: {stale}"
