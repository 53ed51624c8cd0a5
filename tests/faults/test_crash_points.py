"""Crash points: real ``nlpzk`` commands SIGSTOPped at a write point, SIGKILLed there, then inspected
and run again. Each test is a defect a crash-point sweep found (each failed before its fix); the
other points it tried were handled already (SIGKILL mid-ingest, mid-merge, mid-publish: see
test_fault_ingest_vocab.py and test_fault_training.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nlpzk import testing
from nlpzk.corpus import Corpus
from nlpzk.ingest import ingest
from nlpzk.zk import paths, registry

from _faults import ROOT, job_problems, nlpzk_process_stopping_at, process_state, wait_for

SAMPLE = str(ROOT / "corpora" / "sample")

pytestmark = pytest.mark.timeout(300)


def _run(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nlpzk", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _kill_at(env, function: str, *args: str, log: Path, nth: int = 1, match: str = "") -> None:
    """Run ``nlpzk ARGS`` until it reaches ``function`` (its ``nth`` call matching ``match``), SIGKILL it there."""
    proc = nlpzk_process_stopping_at(env, function, *args, log=log, nth=nth, match=match)
    try:
        wait_for(lambda: process_state(proc.pid) == "T" or proc.poll() is not None, 240, what="the kill point")
        assert proc.poll() is None, f"never reached the kill point:\n{log.read_text()}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _fingerprint(cluster, name: str) -> list[tuple]:
    return sorted((s.id, s.sha256, s.documents) for s in Corpus.open(name, cluster=cluster).shards)


def test_ingest_rerun_right_after_a_kill_equals_an_uninterrupted_run(cluster, cli_env, zk_server, tmp_path):
    """Killed before its first commit, the run's claim outlives it by the session timeout. A re-run
    started within it used to skip that input and commit it last, so duplicates landed in other
    inputs: other shards than an uninterrupted run. The re-run now takes over the dead process's
    claims (same machine, pid gone)."""
    _kill_at(cli_env, "nlpzk.ingest.pipeline:_commit", "corpus", "ingest", "c", SAMPLE, log=tmp_path / "killed.log")
    assert registry.children(cluster.zk, paths.claims("c")), "the dead run's claim is still there (its session lives on)"
    rerun = _run(cli_env, "corpus", "ingest", "c", SAMPLE, "--json")
    assert rerun.returncode == 0, rerun.stderr
    clean = testing.cluster_for(zk_server.address, tmp_path / "clean-store")
    try:
        ingest(clean, "c", [SAMPLE])
        want = _fingerprint(clean, "c")
    finally:
        clean.close()
    assert _fingerprint(cluster, "c") == want


def test_a_live_ingesters_claim_is_never_taken_over(cluster):
    """The take-over above is for provably dead processes only: a claim of a live process (here:
    this one), or of another machine, stays."""
    from nlpzk.ingest import tokenizer_options
    from nlpzk.zk.claims import InputClaims, process_identity

    Corpus.create(cluster, "live", tokenizer_options())
    a, b = InputClaims(cluster.zk, "live"), InputClaims(cluster.zk, "live")
    a.join()
    b.join()
    assert a.try_claim("k", {"source": "x"}) and not b.try_claim("k", {"source": "x"})
    cluster.zk.set(paths.claim("live", "k"), registry.dumps(dict(process_identity(), host="elsewhere", pid=1, member=a.member)))
    assert not b.try_claim("k", {"source": "x"})
    assert a.holder("k")["host"] == "elsewhere"


def test_corpus_delete_killed_mid_tree_is_refused_everywhere_then_finished(cluster, cli_env, tmp_path):
    """Killed while deleting the shard nodes, a delete used to leave a corpus that looked whole but
    had lost shards (verify said ok, a re-ingest found every input done). The corpus is now marked
    first: everything but delete refuses it, and the delete run again finishes it."""
    assert _run(cli_env, "corpus", "ingest", "c", SAMPLE).returncode == 0
    _kill_at(cli_env, "kazoo.client:KazooClient.delete", "corpus", "delete", "c", "--yes", log=tmp_path / "killed.log", nth=2, match="/corpora/c/shards/")
    assert registry.exists(cluster.zk, paths.corpus("c"))
    for args in (["corpus", "verify", "c"], ["corpus", "ingest", "c", SAMPLE], ["vocab", "build", "v", "--corpus", "c"]):
        res = _run(cli_env, *args)
        assert res.returncode == 6 and "is being deleted" in res.stderr and "nlpzk corpus delete c" in res.stderr, (args, res.stderr)
    listed = json.loads(_run(cli_env, "corpus", "list", "--json").stdout)
    assert [(r["name"], r["deleting"]) for r in listed] == [("c", True)]
    again = _run(cli_env, "corpus", "delete", "c", "--yes")
    assert again.returncode == 0, again.stderr
    assert not registry.exists(cluster.zk, paths.corpus("c")) and cluster.store.list("corpora/c") == []


def test_corpus_delete_killed_before_its_files_went_can_be_finished(cluster, cli_env, tmp_path):
    """Killed between its registry nodes and its files, a delete used to leave files that a re-run
    ('unknown corpus') and gc ('unknown owner') would not touch. Files now go before the nodes."""
    assert _run(cli_env, "corpus", "ingest", "c", SAMPLE).returncode == 0
    _kill_at(cli_env, "nlpzk.store:Store.delete", "corpus", "delete", "c", "--yes", log=tmp_path / "killed.log")
    again = _run(cli_env, "corpus", "delete", "c", "--yes")
    assert again.returncode == 0, again.stderr
    assert not registry.exists(cluster.zk, paths.corpus("c")) and cluster.store.list("corpora/c") == []


def _trained_job(cli_env, job: str = "j") -> None:
    assert _run(cli_env, "corpus", "ingest", "c", SAMPLE).returncode == 0
    assert _run(cli_env, "vocab", "build", "v", "--corpus", "c", "--min-count", "2").returncode == 0
    res = _run(cli_env, "train", "run", job, "--corpus", "c", "--vocab", "v", "--workers", "1", "--epochs", "1", "--syncs-per-epoch", "2", "--dim", "16", "--json")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("point", ["store", "registry"])
def test_model_delete_killed_half_way_is_refused_then_finished(cluster, cli_env, tmp_path, point):
    """Killed after its first file ('store') or during its registry nodes ('registry'), a whole-model
    delete used to leave files nobody could delete, or a model without tags, or a job marker that
    made ``model register`` report a version that did not exist. Now it is marked first, refused
    until the delete is run again, and registering the job afterwards makes a version that exists."""
    _trained_job(cli_env)  # registers model j@v1
    if point == "store":
        _kill_at(cli_env, "nlpzk.store:Store.delete", "model", "delete", "j", "--yes", log=tmp_path / "killed.log")
    else:
        _kill_at(cli_env, "kazoo.client:KazooClient.delete", "model", "delete", "j", "--yes", log=tmp_path / "killed.log", match="/models/j/")
    for args in (["model", "show", "j"], ["model", "register", "j"]):
        res = _run(cli_env, *args)
        assert res.returncode == 6 and "is being deleted" in res.stderr and "nlpzk model delete j" in res.stderr, (args, res.stderr)
    again = _run(cli_env, "model", "delete", "j", "--yes")
    assert again.returncode == 0, again.stderr
    assert not registry.exists(cluster.zk, paths.model("j")) and cluster.store.list("models/j") == []
    res = _run(cli_env, "model", "register", "j", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["version"] == 1, res.stderr
    assert registry.exists(cluster.zk, paths.model_version("j", 1))


def test_a_job_marker_left_without_its_version_does_not_stand_for_it(cluster, cli_env):
    """A ``once/job-<job>-<created>`` marker whose version is gone (a delete stopped between the two, by an
    older nlpzk or by hand) is stale: registering the job makes a new version, not a reference to
    a missing one."""
    _trained_job(cli_env)
    cluster.zk.delete(paths.model_version("j", 1))  # the version goes, its marker stays
    cluster.zk.delete(f"{paths.model('j')}/tags/latest")
    res = _run(cli_env, "model", "register", "j", "--json")
    assert res.returncode == 0, res.stderr
    number = json.loads(res.stdout)["version"]
    assert number == 2 and registry.exists(cluster.zk, paths.model_version("j", number))
    # the marker's key names the job and its creation time (a job deleted and created again is another)
    keys = [k for k in registry.children(cluster.zk, f"{paths.model('j')}/once") if k.startswith("job-j-")]
    assert len(keys) == 1 and cluster.zk.get(f"{paths.model('j')}/once/{keys[0]}")[0] == b"v0000000002"


def test_a_done_job_whose_publisher_died_before_its_tidy_is_tidied_by_the_next_worker(cluster, cli_env, tmp_path):
    """Killed after publishing the last round, before tidying it, the publisher left that round's
    nodes, and with them its contribution and parameter files, referenced for ever: nobody tidies a
    done job, and gc keeps what nodes name. A worker (here the one ``train run`` starts, which also
    registers the model) that finds the job done now finishes the tidy."""
    assert _run(cli_env, "corpus", "ingest", "c", SAMPLE).returncode == 0
    assert _run(cli_env, "vocab", "build", "v", "--corpus", "c", "--min-count", "2").returncode == 0
    res = _run(cli_env, "train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait", "--epochs", "1", "--syncs-per-epoch", "2", "--dim", "16")
    assert res.returncode == 0, res.stderr
    # calls: round 0 after publishing round 0; rounds 0 and 1 after publishing the last (round 1)
    _kill_at(cli_env, "nlpzk.train.worker:Worker._tidy_quietly", "train", "worker", "j", log=tmp_path / "worker.log", nth=2)
    assert registry.maybe_json(cluster.zk, paths.job("j"))["state"] == "done"
    assert registry.exists(cluster.zk, paths.round_done("j", 1))  # the debris this test is about
    res = _run(cli_env, "train", "run", "j", "--workers", "1", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["model_version"] == 1
    assert job_problems(cluster, "j") == []
    left = [n for r in (0, 1) for n in ("contribs", "done", "mdone") if registry.exists(cluster.zk, f"{paths.job_round('j', r)}/{n}")]
    assert left == [] and [f for f in cluster.store.list("jobs/j") if "/contrib/" in f] == []


@pytest.mark.parametrize("point", ["nlpzk.train.worker:Worker._publish", "nlpzk.train.worker:Worker._write_quietly"])
def test_a_publisher_killed_after_its_last_merge_part_or_before_writing_the_round_log(cluster, cli_env, tmp_path, point):
    """The worker whose merge part lands last publishes at once, without the merge node; killed
    there (every part merged, nothing published), the next worker publishes the round in its
    place once PUBLISH_GRACE is over. Killed after the publish, before writing the round's log (it
    goes out after the publish), the tidy that prunes the round writes it from the round's nodes:
    either way the job ends with every round's log naming each unit once."""
    assert _run(cli_env, "corpus", "ingest", "c", SAMPLE).returncode == 0
    assert _run(cli_env, "vocab", "build", "v", "--corpus", "c", "--min-count", "2").returncode == 0
    res = _run(cli_env, "train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait", "--epochs", "1", "--syncs-per-epoch", "3", "--dim", "16")
    assert res.returncode == 0, res.stderr
    _kill_at(cli_env, point, "train", "worker", "j", log=tmp_path / "worker.log")
    doc = registry.maybe_json(cluster.zk, paths.job("j"))
    assert doc["round"] == (0 if point.endswith("_publish") else 1), doc
    assert registry.children(cluster.zk, paths.round_merge_done("j", 0))  # its part is in
    res = _run(cli_env, "train", "run", "j", "--workers", "1", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"] == "done"
    assert job_problems(cluster, "j") == []


def test_a_publisher_killed_inside_its_final_tidy_after_the_prune_leaves_no_files(cluster, cli_env, tmp_path):
    """tidy_round pruned the round's nodes first, then deleted its files, and tidy_finished looks at
    the nodes (round_done exists): killed between the two, nobody deleted the last round's parameter
    and contribution files (and gc keeps them: the round summary still names params). Files now go
    first, nodes last."""
    assert _run(cli_env, "corpus", "ingest", "c", SAMPLE).returncode == 0
    assert _run(cli_env, "vocab", "build", "v", "--corpus", "c", "--min-count", "2").returncode == 0
    res = _run(cli_env, "train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait", "--epochs", "1", "--syncs-per-epoch", "2", "--dim", "16")
    assert res.returncode == 0, res.stderr
    _kill_at(cli_env, "nlpzk.store:Store.delete_dir", "train", "worker", "j", log=tmp_path / "worker.log", match="rounds/00000001/contrib")
    assert registry.maybe_json(cluster.zk, paths.job("j"))["state"] == "done"
    res = _run(cli_env, "train", "run", "j", "--workers", "1", "--json")
    assert res.returncode == 0, res.stderr
    left = [f for f in cluster.store.list("jobs/j/rounds/00000001") if "/contrib/" in f or "params-" in f]
    final = registry.maybe_json(cluster.zk, paths.job("j"))["final"]["params"]
    left = [f for f in left if f not in final]
    assert left == [], left


def test_train_run_killed_before_its_job_exists_leaves_files_gc_deletes(cluster, cli_env, tmp_path):
    """Killed in rounds.create_job (shard list and initial parameters written, job node not yet
    created), train run used to leave two files under a job name the registry did not know: gc kept
    them as 'unknown owner'. The name is now claimed first (/pending/jobs/<job>), as vocab build and
    model register claim theirs: gc deletes the files, then the stale mark; a re-run works."""
    from nlpzk import gc

    assert _run(cli_env, "corpus", "ingest", "c", SAMPLE).returncode == 0
    assert _run(cli_env, "vocab", "build", "v", "--corpus", "c", "--min-count", "2").returncode == 0
    _kill_at(cli_env, "nlpzk.zk.rounds:create_job", "train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "1", "--dim", "16", log=tmp_path / "killed.log")
    assert not registry.exists(cluster.zk, paths.job("j")) and registry.exists(cluster.zk, paths.pending_job("j"))
    left = cluster.store.list("jobs/j")
    assert len(left) == 2
    garbage = gc.collect(cluster, older_than=0)
    assert sorted(g.path for g in garbage) == left and {g.reason for g in garbage} == {"not registered"}
    assert cluster.store.list("jobs/j") == [] and not registry.exists(cluster.zk, paths.pending_job("j"))
    res = _run(cli_env, "train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "1", "--epochs", "1", "--dim", "16", "--json")
    assert res.returncode == 0, res.stderr
    assert not registry.exists(cluster.zk, paths.pending_job("j"))  # a finished creation leaves no mark
