"""Check-then-act races on znodes that other processes change, each forced deterministically on the real
ZooKeeper by running the other process's step (to completion) at the worst moment of this one.

Each failed on the code before its fix (found by a review after CI met the first of this family in
corpus ingest claims).
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from nlpzk import testing
from nlpzk.corpus import Corpus
from nlpzk.errors import NlpzkError, NotFoundError
from nlpzk.zk import claims as _claims
from nlpzk.zk import paths, registry, versioned

DOCS = ["The cat sat on the mat. It was happy.", "A dog barked at the moon. Nobody answered."]


# 1. versioned.delete_version: "latest" moved onto a version another delete has just removed -------

def test_two_concurrent_version_deletes_never_leave_latest_dangling(cluster, monkeypatch):
    """`model delete m@v3` (latest) and `model delete m@v2` at once. A lists the versions ([1, 2, 3],
    so it will move latest to v2), B deletes v2 completely, A reads the tags (latest still -> v3,
    unchanged, so its version check passes) and commits latest -> v2: a tag naming no version."""
    from nlpzk.models import delete_model, model_doc

    base = paths.model("m")
    for i in range(3):
        registry.publish_version(cluster.zk, base, {"path": f"models/m/none-{i}"}, tags=["latest"])
    real, fired = versioned.versions, []

    def versions(zk, b):
        out = real(zk, b)
        if b == base and not fired:
            fired.append(b)
            delete_model(cluster, "m", 2)  # the other `nlpzk model delete m@v2 --yes`, start to end
        return out

    monkeypatch.setattr(versioned, "versions", versions)
    delete_model(cluster, "m", 3)
    assert fired
    monkeypatch.setattr(versioned, "versions", real)
    assert real(cluster.zk, base) == [1]
    assert versioned.tags(cluster.zk, base).get("latest") in (None, 1)  # before the fix: latest -> v2, which is gone
    model_doc(cluster, "m")  # before the fix: NotFoundError "model 'm' has no version v2"


# 2. models.register_job: "no version from this job yet" checked, then registered: two versions --

def test_two_concurrent_registrations_of_one_job_make_one_model_version(cluster, config, monkeypatch):
    """The publisher of a job's last round registers its model; `nlpzk train run` (or `model register
    JOB`) does it again "as a no-op". Both look for a version from the job, find none, and both
    publish: two versions of one job's vectors, latest moved twice."""
    from nlpzk import models, train
    from test_models_support import run_tiny_job

    run_tiny_job(cluster, config)
    real, fired, got = train.final_vectors, [], {}
    other = testing.Cluster.connect(config)

    def register_elsewhere():
        got["other"] = models.register_job(other, "j1", "dup")

    def final_vectors(c, job):
        if not fired:  # the publishing worker registers right now, from its own connection; a fix
            fired.append(threading.Thread(target=register_elsewhere))  # that makes it wait (a lock)
            fired[0].start()  # lets this one go on after 10 s
            fired[0].join(10)
        return real(c, job)

    monkeypatch.setattr(train, "final_vectors", final_vectors)
    try:
        name, number = models.register_job(cluster, "j1", "dup")
        fired[0].join(60)
    finally:
        other.close()
    assert versioned.versions(cluster.zk, paths.model("dup")) == [1]  # before the fix: [1, 2]
    assert number == 1 and got["other"] == ("dup", 1)
    # deleting that version frees the job's key: registering it again on request makes a new version
    monkeypatch.setattr(train, "final_vectors", real)
    models.delete_model(cluster, "dup", 1)
    assert cluster.zk.get_children(f"{paths.model('dup')}/once") == []
    assert models.register_job(cluster, "j1", "dup", again=True) == ("dup", 2)


# 3. corpus delete --force while an ingest runs: a claim created mid-delete -> NotEmptyError ---------

def test_force_delete_while_an_ingester_claims_its_next_input(cluster, config, monkeypatch):
    """`corpus delete --force` is documented to work while an ingest runs. kazoo's recursive delete
    lists a folder's children, then deletes the folder: a claim made in between -> NotEmptyError,
    which registry.delete_tree does not handle. The corpus is left half-deleted and the command ends
    with 'ZooKeeper error: NotEmptyError'."""
    from nlpzk.ingest import tokenizer_options
    from nlpzk.zk.claims import InputClaims

    Corpus.create(cluster, "busy", tokenizer_options())
    other = testing.Cluster.connect(config)
    try:
        running = InputClaims(other.zk, "busy")
        running.join()
        real, fired = cluster.zk.get_children, []

        def get_children(path, *a, **kw):
            kids = real(path, *a, **kw)
            if path == paths.claims("busy") and not fired:
                fired.append(path)
                running.try_claim("k2", {"source": "b.txt"})  # the running ingest claims its next file
            return kids

        monkeypatch.setattr(cluster.zk, "get_children", get_children)
        try:
            Corpus.open("busy", cluster=cluster).delete(force=True)
        except NlpzkError:
            pass  # acceptable only if nothing was half-deleted (checked below)
        assert fired
        left = cluster.zk.exists(paths.corpus("busy"))
        if left is not None:  # refused: then the corpus must be whole
            assert cluster.zk.exists(paths.shards("busy")) and cluster.zk.exists(paths.inputs("busy"))
        assert left is None  # before the fix: kazoo NotEmptyError escapes; the corpus node is left, half-deleted
    finally:
        other.close()


# 4. corpus deleted between an ingest's Corpus.create and its join: the corpus comes back empty ------

def test_a_corpus_deleted_as_an_ingest_starts_is_not_recreated_without_its_options(cluster, monkeypatch, tmp_path):
    """`corpus delete` refuses while ingesters are registered, but a starting ingest is not one yet.
    Its join() then runs ensure_path on the subfolders, which re-creates /corpora/<name> with no
    data: the ingest commits into a corpus without options, and every later ingest with the real
    options is refused ("exists with other options")."""
    from nlpzk.ingest import ingest, tokenizer_options
    from nlpzk.zk.claims import InputClaims

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(DOCS[0] + "\n")
    b.write_text(DOCS[1] + "\n")
    ingest(cluster, "gone", [str(a)])
    real_join, fired = InputClaims.join, []

    def join(self):
        if not fired:
            fired.append(self.corpus)
            Corpus.open("gone", cluster=cluster).delete()  # `nlpzk corpus delete gone --yes`: no ingester yet
        return real_join(self)

    monkeypatch.setattr(InputClaims, "join", join)
    try:
        ingest(cluster, "gone", [str(b)])
    except NotFoundError:
        pass  # refusing ("the corpus was deleted") is fine
    assert fired
    info = registry.maybe_json(cluster.zk, paths.corpus("gone"))
    assert info is None or info.get("options") == tokenizer_options()  # before the fix: info == {}


# 5. commit_merge_part: a commit that landed but whose reply was lost is taken for a lost lease ---

def test_a_merge_part_whose_commit_landed_before_the_reply_was_lost_is_not_fenced(cluster, monkeypatch):
    """kazoo's command retry re-runs the fenced commit after ConnectionLoss; if the first one landed,
    the lease is gone and the retry reports FencedError. The worker then deletes the part's file,
    which mdone/<part> already names: the next round is published with a missing parameter file
    and every worker fails loading it. RoundBarrier.commit reads its done markers back for exactly
    this; commit_merge_part does not."""
    from kazoo.exceptions import ConnectionLoss

    from nlpzk.zk import lease as _lease
    from nlpzk.zk import rounds

    doc = {"spec": {"rounds": 2}, "state": "running", "round": 0, "words": 0}
    assert rounds.create_job(cluster.zk, "mj", doc, {"round": 0, "params": ["x"], "words_before": 0}, ["s0"])
    barrier = rounds.RoundBarrier(cluster.zk, "mj", ["s0"])
    held = barrier.lease_merge_part(0, "w1", 1)
    assert held is not None
    real, fired = _lease.commit, []

    def commit(zk, leases, build, what, **kw):
        real(zk, leases, build, what, **kw)
        if not fired:
            fired.append(what)
            raise ConnectionLoss()  # the commit was applied; its reply never came

    monkeypatch.setattr(_lease, "commit", commit)
    # as a worker calls it (the parts merged come back with the commit: not when its reply is lost)
    assert barrier.commit_merge_part(0, held, {"worker": "w1", "path": "jobs/mj/part-0", "rows": [0, 1]}, 1) is None  # before the fix: FencedError
    assert fired
    assert registry.maybe_json(cluster.zk, f"{paths.round_merge_done('mj', 0)}/p0000")["path"] == "jobs/mj/part-0"


# Found by a review of the fixes above (each failed before its own fix) ----------------------------

# 6. process_is_dead: an unreadable /proc/<pid>/stat (hidepid=1/2, another user's process) is taken
#    for a dead process -> a LIVE ingester's claim is taken over and its member node deleted.
def test_a_live_process_whose_proc_entry_is_unreadable_is_not_taken_for_dead(monkeypatch):
    me = _claims.process_identity()
    # another live process of this machine, run by another user: its /proc/<pid> is hidden (hidepid=2)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        doc = dict(me, pid=other.pid, start=_claims._start_time(other.pid))
        real = _claims._read
        monkeypatch.setattr(_claims, "_read", lambda p: None if p == f"/proc/{other.pid}/stat" else real(p))
        assert not _claims.process_is_dead(doc)  # before the fix: True, while the process runs
    finally:
        other.kill()
        other.wait()


# 7. whole-model delete while a registration is between writing its file and publishing it:
#    publish_version's ensure_path re-creates the deleted base and registers a version whose file
#    the delete removed (delete_dir of models/<name>).
def test_a_registration_racing_a_whole_model_delete_never_leaves_a_dangling_version(cluster, monkeypatch):
    from nlpzk import models
    from test_models_support import vocab_and_vectors

    view, kv = vocab_and_vectors(cluster)
    models.register_model(cluster, "m", kv, vocab_name=view.name, vocab_version=int(view.version))
    real, fired = registry.publish_version, []

    def publish_version(zk, base, doc, **kw):
        if base == paths.model("m") and not fired:
            fired.append(1)
            models.delete_model(cluster, "m")  # `nlpzk model delete m --yes`, start to end
        return real(zk, base, doc, **kw)

    monkeypatch.setattr(registry, "publish_version", publish_version)
    try:
        models.register_model(cluster, "m", kv, vocab_name=view.name, vocab_version=int(view.version))
    except Exception:
        pass  # refusing is fine
    monkeypatch.setattr(registry, "publish_version", real)
    assert fired
    for n in versioned.versions(cluster.zk, paths.model("m")):
        doc = registry.get_json(cluster.zk, paths.model_version("m", n))[0]
        assert cluster.store.exists(doc["path"]), f"v{n} names deleted file {doc['path']}"


# 8. corpus delete (no --force) checks ingesters BEFORE marking, and commits never look at the mark:
#    an ingest that joins in between commits into the marked corpus (and reports success) while the
#    delete goes on.
def test_an_ingester_cannot_commit_into_a_corpus_marked_deleting(cluster, config, monkeypatch):
    from nlpzk.errors import NlpzkError
    from nlpzk.ingest import tokenizer_options
    from nlpzk.zk.claims import InputClaims

    Corpus.create(cluster, "c", tokenizer_options())
    other = testing.Cluster.connect(config)
    got = {}
    try:
        running = InputClaims(other.zk, "c")
        real_mark = versioned.mark_deleting_guarded

        def mark_deleting(zk, base, *guard, **hold):
            running.join()  # an ingest past Corpus.create joins after delete's ingesters() check
            real_mark(zk, base, *guard, **hold)
            assert running.try_claim("k", {"source": "a.txt"})
            version, _ = running.commit_point()
            try:
                got["committed"] = running.commit("k", [], {"source": "a.txt"}, version)
            except NlpzkError as exc:
                got["committed"] = exc
            raise KeyboardInterrupt  # the delete is killed right here: the mark stays

        monkeypatch.setattr(versioned, "mark_deleting_guarded", mark_deleting)
        with pytest.raises(KeyboardInterrupt):
            Corpus.open("c", cluster=cluster).delete()
        assert got["committed"] is not True, "an input was committed into a corpus marked deleting"
    finally:
        other.close()


# 9. whole-model delete while something is created below the model (kazoo lists, then deletes):
#    before the fix the model delete stopped at once with a conflict, leaving the model half-deleted,
#    while a corpus delete listed and deleted again.
def test_a_node_created_below_a_model_during_its_delete_does_not_stop_the_delete(cluster, config, monkeypatch):
    from nlpzk import models
    from test_models_support import vocab_and_vectors

    view, kv = vocab_and_vectors(cluster)
    models.register_model(cluster, "m", kv, vocab_name=view.name, vocab_version=int(view.version))
    other = testing.Cluster.connect(config)
    try:
        real, fired = cluster.zk.get_children, []

        def get_children(path, *a, **kw):
            kids = real(path, *a, **kw)
            if path == paths.model("m") and not fired:
                fired.append(path)
                other.zk.create(f"{path}/late", b"")  # another process writes below the model meanwhile
            return kids

        monkeypatch.setattr(cluster.zk, "get_children", get_children)
        models.delete_model(cluster, "m")
        assert fired
        assert cluster.zk.exists(paths.model("m")) is None
    finally:
        other.close()
