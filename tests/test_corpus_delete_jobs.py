"""`corpus delete` against training jobs on the corpus (their workers read its shard files): refused
while a job is not finished, unless --force; the orders of a delete (corpus or vocabulary) racing
`train run` creating a job or a model registration, through the guard nodes, each forced
deterministically on the real ZooKeeper. Each failed before the fix
(found by a user walk-through: the delete went through, and `train resume` then failed over and over
on missing shard files)."""

from __future__ import annotations

import pytest
from _helpers import one_line_error, own_server_with_request_timeout, wait_for
from kazoo.exceptions import ConnectionLoss
from test_models_support import ingest_sentences, lee_sentences, vocab_and_vectors

from nlpzk import testing, train
from nlpzk.corpus import Corpus
from nlpzk.errors import ConflictError, NlpzkError
from nlpzk.zk import paths, registry


@pytest.fixture
def lee(cluster):
    from nlpzk.vocab import build

    ingest_sentences(cluster, "lee", lee_sentences(), shards=2)
    return build(cluster, "lee", "lee", min_count=2)


def _before_the_job_transaction(monkeypatch, action, job: str | None = None) -> list:
    """Run ``action()`` once, right before the next job-creating transaction (of ``job`` only, if
    given); returns the list that records the job it ran before (empty while it has not run)."""
    from nlpzk.train import job as _jobmod

    real, fired, wanted = _jobmod.rounds.create_job, [], job

    def create(zk, job, doc, round0, units, **kw):
        if not fired and wanted in (None, job):
            fired.append(job)
            action()
        return real(zk, job, doc, round0, units, **kw)

    monkeypatch.setattr(_jobmod.rounds, "create_job", create)
    return fired


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
    other = testing.Cluster.connect(config)
    # `nlpzk corpus delete lee --yes` elsewhere: finds no job yet
    fired = _before_the_job_transaction(monkeypatch, lambda: Corpus.open("lee", cluster=other).delete())
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
    other = testing.Cluster.connect(config)
    real_jobs = Corpus.training_jobs

    def training_jobs(self):  # j1 is created between the delete's look and its mark
        out = real_jobs(self)
        if not out and self.cluster is other:
            _job(other, "j1", view=lee)
        return out

    def refused_delete():
        with pytest.raises(ConflictError, match="j1"):
            Corpus.open("lee", cluster=other).delete()

    monkeypatch.setattr(Corpus, "training_jobs", training_jobs)
    fired = _before_the_job_transaction(monkeypatch, refused_delete, job="j2")
    try:
        _job(cluster, "j2", view=lee)
    finally:
        other.close()
    assert fired and cluster.zk.exists(paths.job("j2")) is not None and not registry.is_deleting(cluster.zk, paths.corpus("lee"))


def test_a_refused_vocab_delete_does_not_refuse_a_job_created_meanwhile(cluster, config, lee, monkeypatch):
    from nlpzk.vocab import _ops

    other = testing.Cluster.connect(config)
    real_users, looks = _ops.users, []

    def users(c, name, number=None):
        out = real_users(c, name, number)
        looks.append(out)
        if len(looks) == 1:
            _job(other, "j1", view=lee)  # created between the delete's look and its transaction
        return out

    def refused_delete():
        with pytest.raises(ConflictError, match="j1"):
            _ops.delete(other, "lee", lee.version)

    monkeypatch.setattr(_ops, "users", users)
    fired = _before_the_job_transaction(monkeypatch, refused_delete, job="j2")
    try:
        _job(cluster, "j2", view=lee)
    finally:
        other.close()
    assert fired and cluster.zk.exists(paths.job("j2")) is not None
    assert cluster.zk.exists(paths.vocab_version("lee", lee.version)) is not None


# Guards, cases a review of their first version (5a92f19) found; each failed there.
# 1. create_job caught BaseException around the job transaction and deleted the job's files:
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
    other = testing.Cluster.connect(config)

    def delete_and_ingest_again():
        Corpus.open("lee", cluster=other).delete()  # finds no job: deleted
        ingest_sentences(other, "lee", lee_sentences()[:400], shards=3)  # and ingested again

    fired = _before_the_job_transaction(monkeypatch, delete_and_ingest_again)
    try:
        try:
            _job(cluster, view=lee)
        except NlpzkError:
            pass  # refusing is the right outcome
    finally:
        other.close()
    assert fired  # the delete and the new ingest did run in between
    doc = registry.maybe_json(cluster.zk, paths.job("j1"))
    if doc is not None:
        import json

        shard_list = json.loads(cluster.store.read_bytes(doc["spec"]["shards"]["path"]))
        now = {(s.path, s.sha256) for s in Corpus.open("lee", cluster=cluster).shards}
        stale = [s["path"] for s in shard_list if (s["path"], s["sha256"]) not in now]
        assert not stale, f"job j1 was created on the new corpus 'lee' with the old one's shards: {stale}"


# 6. The guards stayed for ever: /guards/corpora/<c> and /guards/vocab/<v> of every name ever used
# by a job, a model or a delete survived the corpus's and the vocabulary's delete.
def test_deletes_remove_the_guards_of_what_they_delete(cli, cluster):
    from nlpzk import models

    view, kv = vocab_and_vectors(cluster)  # corpus and vocabulary "lee"
    models.register_model(cluster, "m", kv, vocab_name="lee", vocab_version=int(view.version), job=None)  # sets the vocabulary's guard
    _job(cluster, view=view)  # sets both
    assert cluster.zk.exists(paths.corpus_users("lee")) and cluster.zk.exists(paths.vocab_users("lee"))
    for argv in (["train", "delete", "j1", "--yes", "--force"], ["model", "delete", "m", "--yes"], ["vocab", "delete", "lee", "--yes"]):
        r = cli(*argv)
        assert r.exit_code == 0, (argv, r.stdout, r.stderr)
    assert cluster.zk.exists(paths.vocab_users("lee")) is None and cluster.zk.get_children(paths.corpus_users("lee")) == []  # no hold left either
    assert cli("corpus", "delete", "lee", "--yes").exit_code == 0
    assert cluster.zk.get_children(f"{paths.GUARDS}/corpora") == [] and cluster.zk.get_children(f"{paths.GUARDS}/vocab") == []


def test_gc_drops_the_guard_a_holder_left_behind_when_its_name_was_deleted(cluster, config, lee):
    """A holder whose session ended before it let go (killed, or it released while disconnected)
    kept the guard of a name deleted meanwhile: the delete may not drop a held guard, and the empty
    node stayed for ever. gc drops guards of names that no longer exist, unless held right now."""
    from nlpzk import gc
    from nlpzk.zk import versioned

    guard, base = paths.corpus_users("lee"), paths.corpus("lee")
    other = testing.Cluster.connect(config)
    try:
        versioned.GuardHold(other.zk, guard, base).version()  # a `train run` looking at the corpus...
        Corpus.open("lee", cluster=cluster).delete()  # ...while it is deleted
    finally:
        other.close()  # ...and its session ends without letting go
    assert cluster.zk.exists(guard) is not None and cluster.zk.get_children(guard) == []
    with versioned.GuardHold(cluster.zk, paths.vocab_users("lee"), paths.vocab("lee")) as used:
        used.version()  # a guard of a vocabulary that exists, held no more
    held = versioned.GuardHold(cluster.zk, paths.vocab_users("gone"), paths.vocab("gone"))  # held right now, of no vocabulary
    held.version()
    gc.collect(cluster)
    assert cluster.zk.exists(guard) is None
    assert cluster.zk.exists(held.guard) is not None and cluster.zk.exists(paths.vocab_users("lee")) is not None  # held; of a vocabulary that exists
    held.release()
    assert cluster.zk.exists(held.guard) is None  # its holder drops it on letting go


def test_a_hold_released_while_disconnected_is_released_when_the_connection_is_back(monkeypatch, tmp_path):
    """GuardHold.release() while the client was disconnected did nothing: the hold stayed as long
    as the session (the whole life of a process whose connection came back), and the guard of a
    name deleted meanwhile with it. It now lets go once the client reconnects."""
    from nlpzk.zk import versioned

    server, own = own_server_with_request_timeout(monkeypatch, tmp_path, 5.0)
    deleter = testing.Cluster.connect(own.config)
    try:
        ingest_sentences(own, "lee", lee_sentences()[:200])
        guard, base = paths.corpus_users("lee"), paths.corpus("lee")
        hold = versioned.GuardHold(own.zk, guard, base)
        hold.version()
        Corpus.open("lee", cluster=deleter).delete()
        assert deleter.zk.exists(guard) is not None  # held: the delete leaves it to the holder
        server.stop()
        wait_for(lambda: not own.zk.connected, what="the holder disconnected")
        hold.release()
        server.start()  # within the session timeout: the session, and the hold, live on
        wait_for(lambda: deleter.zk.connected and deleter.zk.exists(guard) is None, timeout=30, what="the hold released and the guard dropped")
    finally:
        deleter.close()
        own.close()
        server.stop()


def test_a_guard_is_not_deleted_while_held_and_a_hold_gone_with_its_session_fails_the_transaction(cluster, config, zk_server, lee):
    """A guard deleted with its corpus and created anew starts again at version 0: a job creation that
    read version 0 of the old one would then set the new one. So a delete removes a guard only while
    nobody holds it (GuardHold), and every guarded transaction checks its hold still exists."""
    from nlpzk.zk import versioned

    guard, base = paths.corpus_users("lee"), paths.corpus("lee")
    other = testing.Cluster.connect(config)
    try:
        hold = versioned.GuardHold(other.zk, guard, base)
        seen = hold.version()  # a `train run` looking at the corpus...
        Corpus.open("lee", cluster=cluster).delete()  # ...while it is deleted
        assert cluster.zk.exists(guard) is not None, "a held guard was deleted"
        ingest_sentences(cluster, "lee", lee_sentences()[:200])  # and created anew
        with pytest.raises(versioned.GuardChanged):  # the version it read is of the guard the delete set
            versioned.mark_deleting_guarded(other.zk, base, guard, seen, hold=hold)
        hold.release()
        assert cluster.zk.exists(guard) is not None  # the corpus exists again: its guard stays
        Corpus.open("lee", cluster=cluster).delete()
        assert cluster.zk.exists(guard) is None  # nobody holds it: deleted with the corpus

        ingest_sentences(cluster, "lee", lee_sentences()[:200])
        hold = versioned.GuardHold(other.zk, guard, base)
        seen = hold.version()
        testing.expire_session(other.zk, zk_server.address)  # the hold goes with the session
        wait_for(lambda: other.zk.connected and not cluster.zk.get_children(guard), what="a new session, without the hold")
        with pytest.raises(versioned.GuardChanged):  # though the guard is still at the version it read
            versioned.mark_deleting_guarded(other.zk, base, guard, seen, hold=hold)
        assert cluster.zk.exists(guard).version == seen and not registry.is_deleting(cluster.zk, base)
    finally:
        other.close()
