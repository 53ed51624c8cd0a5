"""`nlpzk train delete`: a job's znodes and store files go; models registered from it stay; an
abandoned job no longer holds its corpus and vocabulary; refused while workers are in it or while
its finished vectors are in no model; a delete stopped half-way is refused everywhere and finished
by running it again. Real ZooKeeper, real gensim, real worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nlpzk import errors, testing, train
from nlpzk.store import naming
from nlpzk.zk import paths, registry, versioned

from _helpers import one_line_error, wait_for
from _train_helpers import lee_sentences, make_corpus, make_vocab
from test_models_support import run_tiny_job, run_workers

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(240)
CONFLICT = errors.ConflictError.exit_code


def _abandoned(cluster, cli, job="ja"):
    make_corpus(cluster, "lee", 2, lee_sentences())
    make_vocab(cluster, "lee", "lee")
    res = cli("train", "run", job, "--corpus", "lee", "--vocab", "lee", "--workers", "0", "--no-wait", "--epochs", "50", "--dim", "8")
    assert res.exit_code == 0, res.output


def test_a_finished_job_goes_and_the_model_registered_from_it_stays(cluster, config, cli):
    run_tiny_job(cluster, config)
    assert cluster.store.list(naming.job_dir("j1"))
    res = cli("train", "delete", "j1", "--yes", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["state"] == "done" and got["registered_as"] == ["j1@v1"] and got["files"] > 0
    assert cluster.zk.exists(paths.job("j1")) is None and cluster.store.list(naming.job_dir("j1")) == []
    assert cli("train", "list", "--json").stdout.strip() == "[]"
    assert cli("model", "similar", "j1", "the").exit_code == 0  # the model has its own copy of the vectors
    gone = cli("model", "eval", "j1", "--only", "heldout")
    assert gone.exit_code == errors.NotFoundError.exit_code and "the job may have been deleted" in one_line_error(gone.stderr)
    again = cli("train", "delete", "j1", "--yes")
    assert again.exit_code == errors.NotFoundError.exit_code and "unknown training job 'j1'" in one_line_error(again.stderr)


def test_an_abandoned_job_holds_its_corpus_and_vocabulary_until_it_is_deleted(cluster, cli):
    _abandoned(cluster, cli)
    for argv in (("corpus", "delete", "lee", "--yes"), ("vocab", "delete", "lee", "--yes")):
        held = cli(*argv)
        assert held.exit_code == CONFLICT and "nlpzk train delete JOB" in one_line_error(held.stderr), held.output
    assert cli("train", "delete", "ja").exit_code == errors.InvalidInputError.exit_code  # asks first: not without --yes off a terminal
    assert cluster.zk.exists(paths.job("ja")) is not None
    res = cli("train", "delete", "ja", "--yes")
    assert res.exit_code == 0 and "deleted training job ja (running;" in res.stdout, res.output
    assert cli("vocab", "delete", "lee", "--yes").exit_code == 0
    assert cli("corpus", "delete", "lee", "--yes").exit_code == 0


def test_refused_while_a_worker_is_in_it_unless_forced(cluster, config, cli):
    _abandoned(cluster, cli)
    other = testing.Cluster.connect(config)  # a worker's membership: an ephemeral node of another session
    try:
        other.zk.create(f"{paths.job_workers('ja')}/host-1-abc", b"{}", ephemeral=True)
        res = cli("train", "delete", "ja", "--yes")
        assert res.exit_code == CONFLICT and "has 1 live worker(s): host-1-abc" in one_line_error(res.stderr)
        doc = registry.maybe_json(cluster.zk, paths.job("ja"))
        assert doc and not doc.get("deleting") and cluster.store.list(naming.job_dir("ja"))  # refused: nothing touched
        assert cli("train", "delete", "ja", "--yes", "--force").exit_code == 0
        assert cluster.zk.exists(paths.job("ja")) is None
    finally:
        other.close()


def test_finished_vectors_no_model_holds_are_not_lost_without_force(cluster, config, cli):
    run_tiny_job(cluster, config)
    assert cli("model", "delete", "j1", "--yes").exit_code == 0
    res = cli("train", "delete", "j1", "--yes")
    assert res.exit_code == CONFLICT and "nlpzk model register j1" in one_line_error(res.stderr)
    assert cluster.store.list(naming.job_dir("j1"))
    assert cli("train", "delete", "j1", "--yes", "--force").exit_code == 0
    assert cluster.store.list(naming.job_dir("j1")) == []


def test_a_delete_stopped_half_way_is_refused_everywhere_and_finished_by_running_it_again(cluster, cli):
    _abandoned(cluster, cli)
    versioned.mark_deleting(cluster.zk, paths.job("ja"))  # what a delete killed after its first step leaves
    for argv in (("train", "resume", "ja", "--workers", "0"), ("train", "status", "ja"), ("train", "worker", "ja"),
                 ("train", "run", "ja", "--corpus", "lee", "--vocab", "lee", "--workers", "0", "--no-wait")):
        res = cli(*argv)
        line = one_line_error(res.stderr)
        assert res.exit_code == CONFLICT and "training job 'ja' is being deleted" in line and "nlpzk train delete ja --yes" in line, (argv, res.output)
    assert json.loads(cli("train", "list", "--json").stdout)[0]["deleting"] is True
    report = cli("train", "report", "ja", "--out", str(Path(cluster.store.local_path("x")).parent / "r.html"))
    assert report.exit_code == CONFLICT and "training job 'ja' is being deleted" in one_line_error(report.stderr), report.output
    assert cli("corpus", "delete", "lee", "--yes").exit_code == 0  # a job being deleted reads nothing any more
    res = cli("train", "delete", "ja", "--yes")
    assert res.exit_code == 0, res.output
    assert cluster.zk.exists(paths.job("ja")) is None


def test_a_forced_delete_stops_a_running_worker_which_brings_nothing_back(cluster, cli, cli_env, tmp_path):
    _abandoned(cluster, cli)
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "nlpzk", "train", "worker", "ja"], env=cli_env, cwd=ROOT,
                              stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: registry.children(cluster.zk, paths.job_rounds("ja")) and len(registry.children(cluster.zk, paths.job_rounds("ja"))) > 2,
                 timeout=120, what="the worker training")
        res = cli("train", "delete", "ja", "--yes", "--force")
        assert res.exit_code == 0, res.output
        code = worker.wait(60)
    finally:
        worker.kill()
    text = log.read_text()
    assert code != 0 and "Traceback" not in text, text
    assert [l for l in text.splitlines() if l.startswith("error: ")], text  # one line saying why it stopped
    # nothing the worker did on its way out brought the job's nodes or files back
    assert cluster.zk.exists(paths.job("ja")) is None
    # a file the worker was writing as the delete listed the job's folder is garbage that gc sees (unknown
    # owner now), never something registered
    from nlpzk import gc

    left = set(cluster.store.list(naming.job_dir("ja")))
    assert left <= {g.path for g in gc.find_garbage(cluster, older_than=0)}, left


def test_a_worker_joining_as_the_job_is_deleted_does_not_bring_its_node_back(cluster, cli):
    """A worker that read the job before `train delete` looked (no member yet, so not refused) and
    joins after it: its membership node (and a merge fence) were created with makepath, bringing
    back /jobs/<job> empty; then no command could remove it (exit 7, "lacks 'spec'") nor reuse the name."""
    from nlpzk.train.worker import Worker
    from nlpzk.zk import lease

    _abandoned(cluster, cli)
    w = Worker(cluster, "ja")
    w._setup()  # started: the job is read, no membership node yet
    assert cli("train", "delete", "ja", "--yes").exit_code == 0
    with pytest.raises(errors.NotFoundError, match="training job 'ja' was deleted"):
        w.member.ensure()  # ... and joins
    with pytest.raises(Exception):
        lease.ensure_fences(cluster.zk, paths.job_merge_fences("ja"), ["p0"])
    assert cluster.zk.exists(paths.job("ja")) is None
    assert cli("train", "list", "--json").stdout.strip() == "[]"


def test_held_out_loss_of_a_model_whose_job_is_half_deleted_says_so(cluster, config, cli):
    run_tiny_job(cluster, config)
    versioned.mark_deleting(cluster.zk, paths.job("j1"))  # a train delete killed after marking ...
    for f in cluster.store.list(naming.job_dir("j1")):  # ... and deleting the files
        cluster.store.delete(f)
    res = cli("model", "eval", "j1", "--only", "heldout")
    assert res.exit_code == errors.NotFoundError.exit_code and "the job may have been deleted" in one_line_error(res.stderr), res.output


def test_a_job_created_again_under_a_deleted_jobs_name_is_another_job_to_the_models(cluster, config, cli):
    view = run_tiny_job(cluster, config)  # registered as j1@v1 by its last publisher
    assert cli("train", "delete", "j1", "--yes").exit_code == 0
    train.create_job(cluster, "j1", "lee", f"lee@v{view.version}", epochs=1, syncs_per_epoch=2, dim=8, seed=7)
    run_workers(config, "j1")
    # the new job's vectors are a new version, not the old job's v1 found by name
    listed = {m["name"]: m for m in json.loads(cli("model", "list", "--json").stdout)}
    assert listed["j1"]["versions"] == 2, listed["j1"]
    assert json.loads(cli("model", "show", "j1@v2", "--json").stdout)["dim"] == 8
    again = cli("model", "register", "j1", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["version"] == 2, again.output  # idempotent for the new job
    # the old version's held-out loss cannot use the new job's parameters
    old = cli("model", "eval", "j1@v1", "--only", "heldout")
    assert old.exit_code == errors.NotFoundError.exit_code and "are gone" in one_line_error(old.stderr), old.output
    # and the old version does not count as holding the new job's vectors
    assert cli("model", "delete", "j1@v2", "--yes").exit_code == 0
    res = cli("train", "delete", "j1", "--yes")
    assert res.exit_code == CONFLICT and "no model holds its vectors" in one_line_error(res.stderr), res.output


def test_status_shows_a_job_marked_for_deletion(cluster, cli):
    _abandoned(cluster, cli)
    versioned.mark_deleting(cluster.zk, paths.job("ja"))  # a delete stopped after its first step
    assert json.loads(cli("status", "--json").stdout)["jobs"][0]["deleting"] is True
    assert "being deleted" in cli("status").stdout


def test_train_run_following_a_job_that_is_deleted_says_so(cluster, cli, cli_env, tmp_path):
    _abandoned(cluster, cli)
    log = tmp_path / "run.log"
    run = subprocess.Popen([sys.executable, "-m", "nlpzk", "train", "run", "ja", "--workers", "0"], env=cli_env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    try:
        wait_for(lambda: "waiting for workers" in log.read_text(), timeout=60, what="train run following the job")
        assert cli("train", "delete", "ja", "--yes").exit_code == 0
        code = run.wait(60)
    finally:
        run.kill()
    text = log.read_text()
    errs = [l for l in text.splitlines() if l.startswith("error: ")]
    assert code == CONFLICT and len(errs) == 1 and "Traceback" not in text, text
    assert "job 'ja' was deleted while this command followed it" in errs[0] and "stopped half-way" not in errs[0], text


def test_a_job_whose_creation_was_interrupted_points_to_gc(cluster, cli):
    cluster.zk.ensure_path(paths.pending_job("jq"))  # what a train run killed while creating jq leaves
    res = cli("train", "delete", "jq", "--yes")
    line = one_line_error(res.stderr)
    assert res.exit_code == errors.NotFoundError.exit_code and "creation is under way, or was interrupted" in line and "nlpzk gc" in line, line
