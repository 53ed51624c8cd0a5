"""Training jobs end to end: real ZooKeeper, real gensim, real worker processes (``python -m nlpzk train worker``)."""

from __future__ import annotations

import collections

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from nlpzk import train
from nlpzk.store import naming
from nlpzk.zk import lease, paths, registry

from _helpers import one_line_error, own_server_with_request_timeout, wait_for
from _train_helpers import hold_a_unit, lee_sentences, make_corpus, make_vocab

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(240)


def _worker(env, job, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nlpzk", "train", "worker", job],
        env=env,
        cwd=ROOT,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )


def _worker_thread(w):
    """Run worker ``w`` in a daemon thread; returns the thread and the list its exception goes to."""
    import threading

    failure: list[BaseException] = []

    def run():
        try:
            w.run()
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            failure.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, failure


def _round_logs(cluster, job, rounds):
    return [json.loads(cluster.store.read_bytes(naming.round_log(job, r))) for r in range(rounds)]


def _assert_each_shard_once_per_round(cluster, job, shards):
    """Every work unit (a shard, or a piece of one) of ``shards`` trained exactly once in every round."""
    from nlpzk.train import job as job_mod

    st = train.status(cluster, job)
    assert st["state"] == "done"
    units = job_mod.work_units(st["spec"], job_mod.frozen_shards(cluster, st["spec"]))
    assert {u.shard for u in units} == set(shards)
    logs = _round_logs(cluster, job, st["rounds"])
    for log in logs:
        trained = sorted(c["shard"] for c in log["commits"])
        assert trained == sorted(u.name for u in units), log
    merged = [h for h in st["history"] if h["state"] == "merged"]
    assert [h["round"] for h in merged] == list(range(st["rounds"]))
    return logs


def _setup(cluster, name="lee", shards=4, repeat=1):
    make_corpus(cluster, name, shards, lee_sentences() * repeat)
    make_vocab(cluster, name, name, min_count=2)
    return [f"s-{i:05d}" for i in range(shards)]


def _holding(cluster, job, pid):
    st = train.status(cluster, job)
    held = [u for u, owner in st["leases"].items() if owner and f"-{pid}-" in owner]
    return (st["round"], held) if held else None


def test_two_workers_finish_each_shard_once_and_beat_random_vectors(cluster, cli_env, tmp_path):
    shards = _setup(cluster)
    doc, warnings = train.create_job(cluster, "j2", "lee", "lee", epochs=20, syncs_per_epoch=1, dim=50, seed=7)
    assert warnings == [] and doc["spec"]["rounds"] == 20 and doc["spec"]["vocab_version"] == 1
    procs = [_worker(cli_env, "j2", tmp_path / f"w{i}.log") for i in range(2)]
    for p in procs:
        assert p.wait(180) == 0, (tmp_path / "w0.log").read_text()
    logs = _assert_each_shard_once_per_round(cluster, "j2", shards)
    assert len({c["worker"] for c in logs[-1]["commits"]}) == 2
    # the event lines on stderr: their numbers rounded (they read seconds=0.1210152920029941)
    events = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert "committed: round=0 " in events and "merged: round=19 " in events, events
    assert not re.search(r"=-?[0-9]+\.[0-9]{4,}", events), events

    kv, jdoc = train.final_vectors(cluster, "j2")
    assert jdoc["final"]["vocab"] == "lee@v1" and len(kv) == doc["spec"]["vocab_size"]
    assert set(jdoc["final"]["scores"]) >= {"ws353", "simlex", "analogy"}
    trained = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]
    randoms = []
    for seed in range(5):
        rnd = KeyedVectors(kv.vector_size)
        rnd.add_vectors(kv.index_to_key, np.random.default_rng(seed).standard_normal(kv.vectors.shape).astype(np.float32))
        randoms.append(rnd.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0])
    assert trained > max(randoms) + 0.05, (trained, randoms)
    # robust to WS353's low coverage here: words that co-occur in the corpus end up closer than random pairs
    rng = np.random.default_rng(0)
    sents = [s for s in lee_sentences() if len(s) > 8]
    near = [(s[i], s[i + 1]) for s in sents for i in rng.integers(0, len(s) - 1, 3) if s[i] in kv and s[i + 1] in kv and s[i] != s[i + 1]]
    far = [(a, b) for (a, _), (_, b) in zip(near, near[1:][::-1]) if a != b]
    close = np.mean([kv.similarity(a, b) for a, b in near])
    apart = np.mean([kv.similarity(a, b) for a, b in far])
    assert close > apart + 0.05, (close, apart)

    # the CLI sees the same job
    from cli.main import app  # noqa: F401 - imported for the in-process runner below
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["train", "status", "j2", "--json"], env=cli_env)
    assert res.exit_code == 0 and json.loads(res.stdout)["state"] == "done"
    res = CliRunner().invoke(app, ["train", "list", "--json"], env=cli_env)
    assert [j["job"] for j in json.loads(res.stdout)] == ["j2"]


def test_three_workers_with_one_joining_mid_job(cluster, cli_env, tmp_path):
    shards = _setup(cluster, shards=6, repeat=3)
    train.create_job(cluster, "j3", "lee", "lee", epochs=8, syncs_per_epoch=2, dim=30, seed=1)
    # Hold round 0 open at its merge, as a slow merger would (our session owns the merge node), so
    # that the third worker surely joins mid-job however slowly it starts (CI machines are slow).
    gate = paths.round_merge("j3", 0)
    cluster.zk.create(gate, b"test", ephemeral=True)
    procs = [_worker(cli_env, "j3", tmp_path / f"w{i}.log") for i in range(2)]
    # merge parts are reduced only once every unit of the round is committed
    wait_for(lambda: registry.children(cluster.zk, paths.round_merge_done("j3", 0)), timeout=120)
    first = set(wait_for(lambda: (w := train.status(cluster, "j3")["workers"]) and len(w) == 2 and w, timeout=120))
    procs.append(_worker(cli_env, "j3", tmp_path / "w2.log"))
    newcomer = set(wait_for(lambda: (w := train.status(cluster, "j3")["workers"]) and len(w) == 3 and w, timeout=120)) - first
    cluster.zk.delete(gate)
    for p in procs:
        assert p.wait(180) == 0
    logs = _assert_each_shard_once_per_round(cluster, "j3", shards)
    assert {c["worker"] for c in logs[0]["commits"]} <= first and len(newcomer) == 1
    # the worker that joined mid-job took its share of later rounds
    assert newcomer <= {c["worker"] for log in logs[1:] for c in log["commits"]}
    assert any(len({c["worker"] for c in log["commits"]}) == 3 for log in logs[2:])
    # the merge was reduce-scattered: one row range per contribution, reduced by more than one worker
    assert all(len(log["merge_parts"]) == len(log["contributions"]) for log in logs)
    assert any(len({p["worker"] for p in log["merge_parts"]}) > 1 for log in logs)


def test_killed_worker_does_not_hang_the_round(cluster, cli_env, tmp_path):
    shards = _setup(cluster, repeat=6)
    train.create_job(cluster, "jk", "lee", "lee", epochs=3, syncs_per_epoch=1, dim=30)
    victim = _worker(cli_env, "jk", tmp_path / "victim.log")
    other = _worker(cli_env, "jk", tmp_path / "other.log")
    r, held = wait_for(lambda: _holding(cluster, "jk", victim.pid) if train.status(cluster, "jk")["round"] >= 1 else None, timeout=120)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert other.wait(180) == 0
    logs = _assert_each_shard_once_per_round(cluster, "jk", shards)
    by_shard = {c["shard"]: c["worker"] for c in logs[r]["commits"]}
    assert all(f"-{victim.pid}-" not in by_shard[u] for u in held)  # re-leased and trained by the survivor
    assert all(f"-{other.pid}-" in by_shard[u] for u in held)


def test_paused_worker_past_session_timeout_is_fenced(cluster, cli_env, tmp_path):
    shards = _setup(cluster, repeat=6)
    train.create_job(cluster, "jp", "lee", "lee", epochs=3, syncs_per_epoch=1, dim=30)
    victim = _worker(cli_env, "jp", tmp_path / "victim.log")
    other = _worker(cli_env, "jp", tmp_path / "other.log")
    r, held = wait_for(lambda: _holding(cluster, "jp", victim.pid), timeout=120)
    victim.send_signal(signal.SIGSTOP)
    try:
        # its session expires (4 s in tests), its leases vanish and the other worker trains those shards
        wait_for(lambda: train.status(cluster, "jp")["round"] > r, timeout=120)
    finally:
        victim.send_signal(signal.SIGCONT)
    assert other.wait(180) == 0
    assert victim.wait(120) == 0
    out = (tmp_path / "victim.log").read_text()
    assert "fenced:" in out and f"round={r}" in out.split("fenced:")[1].splitlines()[0], out
    logs = _assert_each_shard_once_per_round(cluster, "jp", shards)
    assert all(f"-{victim.pid}-" not in c["worker"] for c in logs[r]["commits"] if c["shard"] in held)
    kv, _ = train.final_vectors(cluster, "jp")
    assert np.isfinite(kv.vectors).all()


def test_stopped_job_resumes_from_its_last_round(cluster, cli, cli_env, tmp_path):
    shards = _setup(cluster, repeat=2)
    run = subprocess.Popen(
        [sys.executable, "-m", "nlpzk", "train", "run", "jr", "--corpus", "lee", "--vocab", "lee@v1", "--workers", "2", "--epochs", "8", "--syncs-per-epoch", "1", "--dim", "30"],
        env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: registry.maybe_json(cluster.zk, "/jobs/jr") and train.status(cluster, "jr")["round"] >= 2, timeout=120)
    hold = hold_a_unit(cluster, "jr")  # so that the job is surely unfinished when the signal lands
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "train resume jr" in err
    wait_for(lambda: not train.status(cluster, "jr")["workers"], timeout=30)
    lease.release(cluster.zk, [hold])
    stopped = train.status(cluster, "jr")
    assert stopped["state"] == "running" and 2 <= stopped["round"] < 8
    before = {h["round"]: h["merged_at"] for h in stopped["history"] if h["state"] == "merged"}
    # a stopped job may wait for days: nlpzk gc must keep the open round's committed contributions
    from nlpzk import gc
    from nlpzk.zk import rounds

    kept = [d["delta"] for d in rounds.RoundBarrier(cluster.zk, "jr", []).contributions(stopped["round"]).values()]
    gc.collect(cluster, older_than=0)
    assert all(cluster.store.exists(p) for p in kept)

    # --cache-mb 0 (passed on to the local workers): every shard is read again for every round
    res = cli.run_process("train", "resume", "jr", "--workers", "2", "--cache-mb", "0", "--json", timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"resuming jr at round {stopped['round']} of 8" in res.stderr
    logs = sorted((tmp_path / "state" / "train" / "jr").glob("worker-*.log"))
    assert logs and all("cache_mb=0" in p.read_text() for p in logs[-2:])
    assert json.loads(res.stdout)["rounds"] == 8
    _assert_each_shard_once_per_round(cluster, "jr", shards)
    after = {h["round"]: h["merged_at"] for h in train.status(cluster, "jr")["history"]}
    assert all(after[r] == t for r, t in before.items())  # finished rounds were not trained again
    # re-running `train run` on a finished job trains nothing more
    res = cli.run_process("train", "run", "jr", "--json", timeout=60)
    assert res.returncode == 0 and json.loads(res.stdout)["rounds"] == 8


def test_train_run_numbers_rounds_as_train_status_does(cluster, cli):
    """train run's progress lines counted rounds from 1 (round 1/2 while round 0 trained), train
    status, train list and nlpzk status from 0."""
    _setup(cluster, shards=2)
    res = cli.run_process("train", "run", "jn", "--corpus", "lee", "--vocab", "lee", "--workers", "1", "--epochs", "1", "--syncs-per-epoch", "2", "--dim", "8", timeout=180)
    assert res.returncode == 0, res.stderr
    shown = re.findall(r"^round (\d+)/2 ", res.stderr, flags=re.M)
    assert shown and shown[0] == "0", res.stderr
    status = cli("train", "status", "jn").stdout
    merged = re.findall(r"^  round (\d+): ", status, flags=re.M)
    assert merged == ["0", "1"] and set(shown) <= set(merged), (shown, status)
    assert "merge nbmuf-adasum  kernel batched  deltas bfloat16  dim 8" in status  # the job's kernel is shown with its spec


def test_train_run_json_is_one_document_shape_with_or_without_waiting(cluster, cli):
    """--no-wait printed the job's status document, a wait {job, final, rounds, words, model,
    model_version}: a script had to know which one it asked for."""
    _setup(cluster, shards=2)
    args = ["--corpus", "lee", "--vocab", "lee", "--epochs", "1", "--syncs-per-epoch", "2", "--dim", "8", "--model", "m", "--json"]
    res = cli.run_process("train", "run", "js", *args, "--workers", "0", "--no-wait")
    assert res.returncode == 0, res.stderr
    started = json.loads(res.stdout)
    res = cli.run_process("train", "run", "js", *args, "--workers", "1", timeout=180)
    assert res.returncode == 0, res.stderr
    done = json.loads(res.stdout)
    assert sorted(started) == sorted(done), (sorted(started), sorted(done))
    assert {"job", "state", "round", "rounds", "words", "total_words", "final", "model", "model_version", "deleted_model_version"} <= set(done)
    assert (started["job"], started["state"], started["round"], started["model"], started["model_version"], started["final"]) == ("js", "running", 0, "m", None, None)
    assert (done["job"], done["state"], done["round"], done["model"], done["model_version"], done["deleted_model_version"]) == ("js", "done", 2, "m", 1, None)
    assert done["final"]["vectors"] and done == dict(train.status(cluster, "js"), model="m", model_version=1, deleted_model_version=None)


def test_bad_input_is_one_line_error(cluster, cli, tmp_path):
    _setup(cluster)
    res = cli.run_process("train", "run", "x", "--corpus", "nope", "--vocab", "lee", "--workers", "0", "--no-wait")
    assert res.returncode == 4 and "unknown corpus 'nope'" in one_line_error(res.stderr)
    res = cli.run_process("train", "run", "x", "--corpus", "lee", "--vocab", "nope", "--workers", "0", "--no-wait")
    assert res.returncode == 4 and "nope" in one_line_error(res.stderr)
    res = cli.run_process("train", "run", "x", "--corpus", "lee", "--vocab", "lee", "--epochs", "0", "--workers", "0", "--no-wait")
    assert res.returncode == 5 and "epochs" in one_line_error(res.stderr)
    res = cli.run_process("train", "run", "x", "--corpus", "lee", "--vocab", "lee", "--merge", "median", "--workers", "0", "--no-wait")
    assert res.returncode == 5 and "merge rule" in one_line_error(res.stderr)
    # numpy's seeds stop at 2**32 - 1 (each worker adds its own offset): refused before anything is written
    for flags, what in ((["--seed", "-1"], "seed"), (["--seed", str(2**32)], "seed"), (["--lease-timeout", "inf"], "lease-timeout"), (["--sample", "nan"], "sample")):
        res = cli.run_process("train", "run", "x", "--corpus", "lee", "--vocab", "lee", "--workers", "0", "--no-wait", *flags)
        assert res.returncode == 5 and what in one_line_error(res.stderr), (flags, res.stderr)
    assert cluster.store.list("jobs/x") == [] and cluster.zk.exists("/jobs/x") is None
    res = cli.run_process("train", "status", "ghost")
    assert res.returncode == 4 and "unknown training job 'ghost'" in one_line_error(res.stderr)
    res = cli.run_process("train", "run", "x", "--workers", "0", "--no-wait")
    assert res.returncode == 5 and "--corpus and --vocab" in one_line_error(res.stderr)
    # a vocabulary of another corpus works, with a warning
    make_corpus(cluster, "other", 1, lee_sentences()[:20])
    res = cli.run_process("train", "run", "x", "--corpus", "other", "--vocab", "lee@v1", "--workers", "0", "--no-wait")
    assert res.returncode == 0 and "warning: vocabulary lee@v1 was built from corpus 'lee'" in res.stderr
    # re-running an existing job resumes it only with what it was created with
    res = cli.run_process("train", "run", "x", "--corpus", "other", "--vocab", "lee@v1", "--workers", "0", "--no-wait")
    assert res.returncode == 0 and "job x resumed" in res.stdout, res.stdout
    res = cli.run_process("train", "run", "x", "--dim", "32", "--merge", "mean", "--workers", "0", "--no-wait")
    assert res.returncode == 6 and "exists with dim 100 (not 32), merge 'nbmuf-adasum' (not 'mean')" in one_line_error(res.stderr)
    from nlpzk.vocab import build, tag

    build(cluster, "lee", "lee", min_count=3)  # lee@v2
    tag(cluster, "lee", 2, "cand")
    for spec, given in (("lee:cand", "lee:cand = lee@v2"), ("lee@v2", "lee@v2")):
        res = cli.run_process("train", "run", "x", "--corpus", "other", "--vocab", spec, "--workers", "0", "--no-wait")
        assert res.returncode == 6 and f"job 'x' exists with vocabulary lee@v1 (not {given}): a job's corpus and vocabulary are fixed" in one_line_error(res.stderr), spec
        assert "— resume it with: nlpzk train resume x" in one_line_error(res.stderr)
    res = cli.run_process("train", "run", "x", "--corpus", "lee", "--vocab", "lee@v1", "--workers", "0", "--no-wait")
    assert res.returncode == 6 and "job 'x' exists with corpus 'other' (not 'lee'):" in one_line_error(res.stderr), res.stderr
    assert train.status(cluster, "x")["spec"]["dim"] == 100


def test_more_local_workers_than_the_machine_runs_are_refused_before_anything_starts(cluster, cli):
    """Before: --workers had no upper bound, and --workers 100000 forked that many processes."""
    import os

    from nlpzk.errors import InvalidInputError

    _setup(cluster)
    too_many = str(4 * (os.cpu_count() or 1) + 1)
    res = cli.run_process("train", "run", "x", "--corpus", "lee", "--vocab", "lee", "--workers", too_many, "--no-wait", "--epochs", "1", "--dim", "8")
    line = one_line_error(res.stderr)
    assert res.returncode == 5 and f"--workers {too_many} is more local worker processes than this machine runs" in line, res.stderr
    assert "nlpzk train worker JOB on other machines" in line
    assert cluster.zk.exists("/jobs/x") is None and cluster.store.list("jobs/x") == []  # nothing created
    assert cli.run_process("train", "run", "x", "--corpus", "lee", "--vocab", "lee", "--workers", "0", "--no-wait", "--epochs", "1", "--dim", "8").returncode == 0
    res = cli.run_process("train", "resume", "x", "--workers", too_many)
    assert res.returncode == 5 and "more local worker processes" in one_line_error(res.stderr), res.stderr
    assert train.status(cluster, "x")["workers"] == {} and train.status(cluster, "x")["round"] == 0  # none started
    with pytest.raises(InvalidInputError, match="at most"):
        train.start_local_workers(cluster.config, "x", int(too_many))


def test_worker_rides_out_its_session_expiring(cluster, config, zk_server):
    """ZooKeeper drops the worker's session mid-job: it drops its in-flight round, rejoins under a
    new session and the job still finishes with every shard trained once per round."""
    import threading

    from nlpzk import testing
    from nlpzk.train import Worker

    shards = _setup(cluster, repeat=2)
    train.create_job(cluster, "jz", "lee", "lee", epochs=6, syncs_per_epoch=1, dim=20)
    wc = testing.Cluster.connect(config)
    events = []
    w = Worker(wc, "jz", on_event=lambda kind, info: events.append(kind), poll=0.2)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        wait_for(lambda: train.status(cluster, "jz")["round"] >= 2, timeout=120)
        hold = hold_a_unit(cluster, "jz")  # the job cannot end before the worker has rejoined
        testing.expire_session(wc.zk, zk_server.address)
        wait_for(lambda: "rejoined" in events, timeout=60)
        lease.release(cluster.zk, [hold])
        t.join(150)
        if t.is_alive():
            import faulthandler

            faulthandler.dump_traceback(all_threads=True)
        assert not t.is_alive() and w.report.state == "done", (events, train.status(cluster, "jz"))
        assert "rejoined" in events
        _assert_each_shard_once_per_round(cluster, "jz", shards)
    finally:
        w.stop.set()
        t.join(10)
        wc.close()


def test_a_job_whose_open_round_predates_contribution_nodes_still_finishes(cluster, config):
    """Round 0 laid out as before ``contribs`` existed (no folder, no flag): its commits and merge
    use the done markers; the rounds it publishes have the folder and use it."""
    from nlpzk import testing
    from nlpzk.train import Worker
    from nlpzk.zk import paths

    shards = _setup(cluster)
    train.create_job(cluster, "jold", "lee", "lee", epochs=3, syncs_per_epoch=1, dim=16)
    r0 = paths.job_round("jold", 0)
    doc0 = registry.get_json(cluster.zk, r0)[0]
    del doc0["contribs"]
    cluster.zk.delete(r0, recursive=True)
    cluster.zk.create(r0, registry.dumps(doc0))
    for sub in (paths.round_leases, paths.round_done, paths.round_merge_leases, paths.round_merge_done):
        cluster.zk.create(sub("jold", 0), b"")
    wc = testing.Cluster.connect(config)
    w = Worker(wc, "jold", poll=0.2)
    try:
        _run_to_end(w)
        assert w.report.state == "done"
        logs = _assert_each_shard_once_per_round(cluster, "jold", shards)
        assert [len(log["contributions"]) for log in logs] == [1, 1, 1]
        assert "units" in logs[0]["contributions"][0] and logs[0]["contributions"][0]["units"] == sorted(c["shard"] for c in logs[0]["commits"])
    finally:
        w.stop.set()
        wc.close()


def _run_to_end(worker, timeout: float = 150) -> None:
    """Run an in-process Worker in a thread until it returns (done, stopped or failed)."""
    import threading

    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"worker still running after {timeout:g}s"


def test_a_round_log_its_publisher_never_wrote_is_written_from_the_rounds_nodes_before_they_go(cluster):
    """A round's log (who trained which unit) is written after the publish, off the path the workers
    wait on; a publisher that dies before writing it would lose the round's record. The tidy that
    prunes the round's nodes writes it from them first, the same document the publisher had."""
    from nlpzk.train import Worker

    shards = _setup(cluster)
    train.create_job(cluster, "jl", "lee", "lee", epochs=2, syncs_per_epoch=2, dim=8)
    w = Worker(cluster, "jl", poll=0.2)
    unwritten: dict[str, bytes] = {}
    w._write_quietly = lambda rel, data: unwritten.__setitem__(rel, data)  # as if it died first
    _run_to_end(w)
    assert w.report.state == "done"
    rounds = train.status(cluster, "jl")["rounds"]
    # every round but the last (written before its publish) left its log to the tidy
    assert sorted(unwritten) == [naming.round_log("jl", r) for r in range(rounds - 1)]
    for rel, data in unwritten.items():
        assert json.loads(cluster.store.read_bytes(rel)) == json.loads(data)
    _assert_each_shard_once_per_round(cluster, "jl", shards)


def test_a_worker_commits_right_after_a_batch_that_left_nothing_free(cluster):
    """When leasing a batch left no unit free, the worker commits once it is trained instead of
    first asking ZooKeeper for another unit (a round trip between the round's last training and
    its commit, on the path every worker waits on): with one worker, no lease attempt comes back
    empty, and every unit is still trained once per round."""
    from nlpzk.train import Worker

    shards = _setup(cluster, shards=6)
    train.create_job(cluster, "jn", "lee", "lee", epochs=2, syncs_per_epoch=2, dim=8)
    w = Worker(cluster, "jn", poll=0.2)
    tries: list[bool] = []
    lease_more = w._lease_more

    def counted(r, prefer):
        got = lease_more(r, prefer)
        tries.append(got[0] is not None)
        return got

    w._lease_more = counted
    _run_to_end(w)
    assert w.report.state == "done"
    assert tries and all(tries), tries  # before: one empty attempt per round
    _assert_each_shard_once_per_round(cluster, "jn", shards)


def test_a_workers_shard_cache_holds_in_vocabulary_tokens_as_the_models_own_keys(cluster):
    from nlpzk.corpus import read_shard
    from nlpzk.train import Worker

    shards = _setup(cluster)
    train.create_job(cluster, "jc", "lee", "lee", epochs=1, dim=8, kernel="gensim")
    w = Worker(cluster, "jc")
    w._setup()
    data = w._shard(shards[0])
    raw = read_shard(cluster.store, w.shards[shards[0]], columns=["tokens"]).column("tokens").to_pylist()
    vocab = set(w.vocab.tokens)
    sentences = data.sentences(0, len(raw))
    assert sentences == [[t for t in s if t in vocab] for s in raw]
    assert data.sentences(1, 3) == sentences[1:3] and data.sentences(2, 2) == []
    assert data.tokens == [t for s in sentences for t in s]
    assert sum(map(len, raw)) > len(data.tokens) > 0  # min_count=2 leaves some tokens out
    assert data.offsets.tolist() == np.cumsum([0] + [len(s) for s in raw]).tolist()
    assert data.kept.tolist() == np.cumsum([0] + [len(s) for s in sentences]).tolist()
    keys = {id(k) for k in w.model.wv.index_to_key}
    assert all(id(t) in keys for t in data.tokens)
    # the default rule reads no per-word counts, so the cache keeps no ids for them
    assert data.ids is None and data.nbytes == 56 + 8 * len(data.tokens) + data.offsets.nbytes + data.kept.nbytes


def test_a_shard_cache_keeps_the_ids_a_counting_merge_rule_needs(cluster):
    from nlpzk.corpus import read_shard
    from nlpzk.train import Worker

    shards = _setup(cluster)
    train.create_job(cluster, "jcw", "lee", "lee", epochs=1, dim=8, merge="nbmuf-wmean", kernel="gensim")
    w = Worker(cluster, "jcw")
    w._setup()
    data = w._shard(shards[0])
    raw = read_shard(cluster.store, w.shards[shards[0]], columns=["tokens"]).column("tokens").to_pylist()
    index = {t: i for i, t in enumerate(w.vocab.tokens)}
    assert data.ids.dtype == np.int32
    assert data.ids.tolist() == [index[t] for s in raw for t in s if t in index]
    assert data.nbytes == 56 + 12 * len(data.tokens) + data.offsets.nbytes + data.kept.nbytes
    counts = np.zeros(len(w.vocab.tokens), np.int64)
    data.counts(1, 4, counts)
    data.counts(1, 2, counts)
    expected = collections.Counter(index[t] for s in raw[1:4] + raw[1:2] for t in s if t in index)
    assert counts.sum() > 0 and {i: c for i, c in enumerate(counts.tolist()) if c} == dict(expected)


def test_a_batched_kernels_shard_cache_holds_ids_only_and_slices_them_by_sentence(cluster):
    """For the batched kernel (the skip-gram default) a shard is kept as its in-vocabulary ids, 4
    bytes a token, no token list; a slice of sentences comes back as their ids end to end and where
    each sentence starts."""
    from nlpzk.corpus import read_shard
    from nlpzk.train import Worker

    shards = _setup(cluster)
    train.create_job(cluster, "jcb", "lee", "lee", epochs=1, dim=8)
    w = Worker(cluster, "jcb")
    w._setup()
    assert w.spec["kernel"] == "batched"
    data = w._shard(shards[0])
    raw = read_shard(cluster.store, w.shards[shards[0]], columns=["tokens"]).column("tokens").to_pylist()
    index = {t: i for i, t in enumerate(w.vocab.tokens)}
    sentences = [[index[t] for t in s if t in index] for s in raw]
    assert data.tokens is None and data.ids.dtype == np.int32
    assert data.nbytes == 4 * len(data.ids) + data.offsets.nbytes + data.kept.nbytes
    flat, starts = data.id_slice(1, 4)
    assert [flat[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])] == sentences[1:4]
    flat, starts = data.id_slice(2, 2)
    assert len(flat) == 0 and starts.tolist() == [0]


def test_a_worker_refuses_a_job_whose_kernel_it_does_not_have(cluster):
    """A job created by a newer nlpzk with a kernel this one lacks: the worker says so and does not
    join, instead of training it with another kernel."""
    from nlpzk.errors import TrainingError
    from nlpzk.train import Worker
    from nlpzk.zk import paths, registry

    _setup(cluster)
    train.create_job(cluster, "jk", "lee", "lee", epochs=1, dim=8)
    doc, stat = registry.get_json(cluster.zk, paths.job("jk"))
    doc["spec"]["kernel"] = "fused-v2"
    cluster.zk.set(paths.job("jk"), json.dumps(doc).encode(), version=stat.version)
    w = Worker(cluster, "jk")
    with pytest.raises(TrainingError, match="kernel 'fused-v2', which this nlpzk does not have"):
        w._setup()
    assert registry.children(cluster.zk, paths.job_workers("jk")) == []


@pytest.mark.parametrize("delta_dtype", [None, "float32"])
def test_a_contribution_stores_the_workers_delta_as_the_job_says(cluster, delta_dtype):
    """A new job stores its deltas as bfloat16 (uint16 files: the rounded upper half of each float32
    value), ``delta_dtype="float32"`` exactly; either way the file is the worker's own delta
    (local - global, what the model moved in the round) and the job trains to the end."""
    from nlpzk.train import Worker, _model
    from nlpzk.train import merge as M

    shards = _setup(cluster)
    job = f"jd-{delta_dtype}"
    train.create_job(cluster, job, "lee", "lee", epochs=1, syncs_per_epoch=2, dim=8, delta_dtype=delta_dtype)
    w = Worker(cluster, job, poll=0.2)
    checked: list[int] = []

    def on_event(kind, info):
        if kind != "committed":
            return
        doc = next(d for d in w.barrier.contributions(info["round"]).values() if d["worker"] == w.id)
        stored = M.load_array(cluster.store, doc["delta"])
        params = w.barrier.round_doc(info["round"])["params"]  # the round's global parameters
        exact = _model.get_params(w.model) - M.load_params(cluster.store, [params] if isinstance(params, str) else params)
        assert stored.shape == exact.shape == (2, len(w.vocab.tokens), 8)
        if delta_dtype is None:
            assert w.spec["delta_dtype"] == "bfloat16" and stored.dtype == np.uint16
            assert np.array_equal(stored, M.to_bfloat16(exact, np.empty(exact.shape, np.uint16)))
            wide = M.from_bfloat16(stored, np.empty(exact.shape, np.float32))
            assert np.all(np.abs(wide - exact) <= np.abs(exact) * 2.0**-8)
        else:
            assert stored.dtype == np.float32 and np.array_equal(stored, exact)
        assert np.abs(exact).max() > 0  # the round moved the model
        checked.append(info["round"])

    w.on_event = on_event
    _run_to_end(w)
    assert w.report.state == "done" and checked == [0, 1]
    _assert_each_shard_once_per_round(cluster, job, shards)


def test_a_worker_refuses_a_job_whose_delta_dtype_it_does_not_know(cluster):
    from nlpzk.errors import TrainingError
    from nlpzk.train import Worker
    from nlpzk.zk import paths, registry

    _setup(cluster)
    train.create_job(cluster, "jdt", "lee", "lee", epochs=1, dim=8)
    doc, stat = registry.get_json(cluster.zk, paths.job("jdt"))
    doc["spec"]["delta_dtype"] = "float8"
    cluster.zk.set(paths.job("jdt"), json.dumps(doc).encode(), version=stat.version)
    with pytest.raises(TrainingError, match="stores its deltas as 'float8', which this nlpzk does not know"):
        Worker(cluster, "jdt")._setup()
    assert registry.children(cluster.zk, paths.job_workers("jdt")) == []


def test_a_counting_rules_job_commits_the_per_word_counts_of_what_each_contribution_trained(cluster):
    """With ``*wmean`` each contribution carries how often every word occurred in the slices it
    trained; the file is checked against the shards' raw tokens before the round is merged."""
    from nlpzk.corpus import read_shard
    from nlpzk.train import Worker
    from nlpzk.train import merge as M

    shards = _setup(cluster)
    train.create_job(cluster, "jcn", "lee", "lee", epochs=2, syncs_per_epoch=2, dim=8, merge="nbmuf-wmean")
    w = Worker(cluster, "jcn", poll=0.2)
    checked: list[int] = []
    seen: list[str] = []

    def on_event(kind, info):
        if kind != "committed":
            return
        r = info["round"]
        index = {t: i for i, t in enumerate(w.vocab.tokens)}
        for doc in w.barrier.contributions(r).values():
            if doc["contrib"] in seen:
                continue
            seen.append(doc["contrib"])
            expected = np.zeros(len(index), np.int64)
            for unit in doc["units"]:
                u = w.units[unit]
                raw = read_shard(cluster.store, w.shards[u.shard], columns=["tokens"]).column("tokens").to_pylist()
                a, b = w._slice_bounds(unit, r)
                for sentence in raw[a:b]:
                    for t in sentence:
                        if t in index:
                            expected[index[t]] += 1
            got = M.load_array(cluster.store, doc["counts"])
            assert got.shape == expected.shape and got.tolist() == expected.tolist()
            checked.append(r)

    w.on_event = on_event
    _run_to_end(w)
    assert w.report.state == "done"
    assert sorted(set(checked)) == [0, 1, 2, 3]
    _assert_each_shard_once_per_round(cluster, "jcn", shards)


@pytest.mark.parametrize("kernel", ["batched", "gensim"])
def test_a_worker_with_two_threads_trains_its_copy_from_both(cluster, kernel):
    """``--threads 2``: one worker, one model copy, two threads taking the batches in turn from a
    pool kept for the round, next to a one-thread worker: every unit still trained once a round,
    with either kernel."""
    import threading

    from nlpzk.train import Worker, _model

    shards = _setup(cluster, shards=6)
    job = f"jt2-{kernel}"
    train.create_job(cluster, job, "lee", "lee", epochs=2, syncs_per_epoch=2, dim=16, kernel=kernel)
    two = Worker(cluster, job, threads=2, poll=0.2)
    one = Worker(cluster, job, threads=1, poll=0.2)
    names: set[tuple[str, int]] = set()
    queued: list[int] = []
    two.on_event = lambda kind, info: queued.append(info["round"]) if kind == "queued" else None
    from gensim.models import word2vec_inner

    module, attr = (word2vec_inner, "train_batch_sg") if kernel == "gensim" else (_model, "_run_batched")
    real = getattr(module, attr)

    def spy(model, *args):
        if model.workers == 2:
            names.add((threading.current_thread().name, threading.get_ident()))
        return real(model, *args)

    setattr(module, attr, spy)
    try:
        runs = [threading.Thread(target=w.run, daemon=True) for w in (two, one)]
        for t in runs:
            t.start()
        for t in runs:
            t.join(150)
        assert not any(t.is_alive() for t in runs)
    finally:
        setattr(module, attr, real)
    assert two.report.state == one.report.state == "done" and two.model.workers == 2
    # the two-thread worker's batches went through its pool and were trained by more than one of
    # its threads (a thread's id can be reused by the next round's)
    assert queued and len(names) >= 2 and {n for n, _ in names} == {"nlpzk-train"}
    logs = _assert_each_shard_once_per_round(cluster, job, shards)
    assert all(c["loss"] > 0 and c["effective"] > 0 for log in logs for c in log["contributions"])
    by = collections.Counter(c["worker"] for log in logs for c in log["contributions"])
    assert two.report.commits == by[two.id] > 0 and one.report.commits == by[one.id]


def _committed_round_1_alone(cluster, wc, job):
    """Create ``job`` (3 rounds) and run one in-process worker on ``wc`` until it has committed round
    1 alone and stopped, before that round's merge: ``(contribution name, its document)``."""
    from nlpzk.train import Worker
    from nlpzk.zk import rounds

    train.create_job(cluster, job, "lee", "lee", epochs=3, syncs_per_epoch=1, dim=16)
    first = Worker(wc, job, poll=0.2)
    first.on_event = lambda kind, info: first.stop.set() if kind == "committed" and info["round"] == 1 else None
    _run_to_end(first)  # stops after committing round 1, before its merge
    assert first.report.state == "stopped" and train.status(cluster, job)["round"] == 1
    (name, doc), = rounds.RoundBarrier(cluster.zk, job, []).contributions(1).items()
    return name, doc


@pytest.mark.parametrize("damage", ["truncated", "stale page"])
def test_an_unreadable_contribution_is_dropped_and_its_units_trained_again(cluster, config, damage):
    """A committed delta that was truncated before its round's merge (a disk error, a file deleted by
    hand) would stop every worker at that merge, on every resume; one whose pages an OS crash left
    zero or stale (deltas are not fsynced: same size, other bytes) would be merged as such. The
    workers un-commit it instead (its size, or its sum recorded in its node) and train its units
    again in the same round."""
    from nlpzk import testing
    from nlpzk.train import Worker

    shards = _setup(cluster)
    wc = testing.Cluster.connect(config)
    try:
        broken, doc = _committed_round_1_alone(cluster, wc, "jd")
        with open(cluster.store.local_path(doc["delta"]), "r+b") as fh:
            if damage == "truncated":
                fh.truncate(1000)
            else:  # a page of zeros, as if it never reached the disk
                fh.seek(4096)
                fh.write(bytes(4096))
        events = []
        second = Worker(wc, "jd", poll=0.2, on_event=lambda kind, info: events.append((kind, info)))
        _run_to_end(second)
        assert second.report.state == "done"
        dropped = [info for kind, info in events if kind == "dropped"]
        assert dropped == [{"round": 1, "contributions": [broken], "units": sorted(doc["units"])}]
        logs = _assert_each_shard_once_per_round(cluster, "jd", shards)
        assert broken not in {c["contrib"] for c in logs[1]["commits"]}
        assert not cluster.store.exists(doc["delta"])
    finally:
        wc.close()


def test_only_the_checkpoint_is_fsynced_and_off_the_rounds_path(cluster, monkeypatch):
    """A round's deltas go to the page cache only (an intermediate: a process that dies loses
    nothing, an OS crash is caught by their sums). So do its merged parameters, published at once;
    they are fsynced after the publish and before the parameters they were made from are deleted
    (an OS crash costs the newest round, never the one before it). The last round's, the job's
    final parameters, are fsynced before they are published."""
    import os

    from nlpzk.store import Store
    from nlpzk.train import Worker
    from nlpzk.zk.rounds import RoundBarrier

    _setup(cluster)
    train.create_job(cluster, "jf", "lee", "lee", epochs=1, syncs_per_epoch=3, dim=8)
    seen: list[tuple[str, object]] = []
    real_fsync, real_delete, real_publish = os.fsync, Store.delete, RoundBarrier.publish

    def fsync(fd):
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def delete(store, rel):
        seen.append(("delete", rel))
        return real_delete(store, rel)

    def publish(barrier, r, *args, **kwargs):
        got = real_publish(barrier, r, *args, **kwargs)
        seen.append(("publish", r))
        return got

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Store, "delete", delete)
    monkeypatch.setattr(RoundBarrier, "publish", publish)
    w = Worker(cluster, "jf", poll=0.2)
    _run_to_end(w)
    assert w.report.state == "done"
    assert not [p for kind, p in seen if kind == "fsync" and "/contrib" in p], seen  # neither the files nor their folder
    logs = _round_logs(cluster, "jf", 3)
    outputs = [[p["path"] for p in log["merge_parts"]] for log in logs]
    inputs = [None, *outputs[:-1]]  # round r's input parameters (round 0's are the initial ones)

    def first(kind, match):
        return next((i for i, (k, v) in enumerate(seen) if k == kind and match(v)), None)

    for r, parts in enumerate(outputs):
        for rel in parts:
            synced = first("fsync", lambda p: p.endswith(os.path.basename(rel)))
            published = first("publish", lambda v: v == r)
            assert synced is not None and published is not None, (rel, seen)
            if r < 2:
                assert published < synced, (r, seen)  # not on the path every worker waits on
                for old in inputs[r] or []:  # round r's input goes only once its output is on the disk
                    assert synced < first("delete", lambda v: v == old), (r, seen)
            else:
                assert synced < published, seen  # the final parameters: durable before the job is done


def test_round_files_written_over_tidied_ones_train_the_same_vectors(cluster, monkeypatch):
    """A tidied round's files are kept as spares and the next rounds' deltas and merged parts are
    written over them (their page-cache pages): the same job trains the same vectors with and
    without that, the spares are used in every round after the first tidies, and none is left once
    the job is done."""
    from nlpzk.store import Store
    from nlpzk.train import Worker, spares, worker as worker_mod

    _setup(cluster)
    claimed = []
    real_claim = Store._claim

    def claim(store, rels, tmp):
        got = real_claim(store, rels, tmp)
        claimed.append(got)
        return got

    monkeypatch.setattr(Store, "_claim", claim)
    vectors = {}
    for recycle in (True, False):
        monkeypatch.setattr(worker_mod, "RECYCLE", recycle)
        job = f"jrc{int(recycle)}"
        train.create_job(cluster, job, "lee", "lee", epochs=2, syncs_per_epoch=3, dim=16, seed=5)
        claimed.clear()
        w = Worker(cluster, job, poll=0.2, worker_id="same-seed")
        _run_to_end(w)
        assert w.report.state == "done"
        vectors[recycle] = train.final_vectors(cluster, job)[0].vectors
        assert not cluster.store.list(spares.folder(job))
        if recycle:
            # a delta and a merged part each of rounds 1-5 (the first spares come from round 0's tidy)
            assert claimed.count(True) >= 8, claimed
        else:
            assert not any(claimed), claimed
    assert np.array_equal(vectors[True], vectors[False])


def test_word_sums_fed_in_pieces_and_a_merged_parts_sum(cluster):
    """The sum a merge records for its part (taken block by block as it writes) is the sum of the
    file's data, whatever the blocks' sizes (word boundaries fall inside blocks)."""
    from nlpzk.train import merge as M

    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 1000, dtype=np.uint8)
    for cuts in ([], [1], [3, 4, 5, 13], [7, 8, 9, 500, 997], list(range(1, 40))):
        acc = M.WordSum()
        for a, b in zip([0, *cuts], [*cuts, len(data)]):
            acc.update(data[a:b])
        assert acc.hexdigest() == M.word_sum(data), cuts
    # a merge of uneven blocks (odd row counts x odd dim: most blocks end inside a word)
    v, d = 37, 3
    M.save_array(cluster.store, "g.npy", rng.standard_normal((4, v, d)).astype(np.float32))
    cs = []
    for i in range(2):
        M.save_array(cluster.store, f"d{i}.npy", rng.standard_normal((2, v, d)).astype(np.float32))
        cs.append(M.Contribution(f"d{i}.npy", "", 10))
    _sha, _n, got = M.merge(cluster.store, "g.npy", cs, "nbmuf", "out.npy", rows=(2, 33), eta=0.5, block_rows=5)
    assert got == M.data_sum(cluster.store, "out.npy") != M.word_sum(np.zeros((4, 31, d), np.float32))


def _crashed_before_round_1s_tidy(cluster, wc, job, monkeypatch):
    """Run ``job`` (4 rounds) with one in-process worker on ``wc`` until round 1 is published, its
    background tidy (the fsync of round 1's output, then the deletion of its input) never run:
    the state an OS crash right after that publish leaves. The job's document at that point."""
    from nlpzk.train import Worker

    train.create_job(cluster, job, "lee", "lee", epochs=2, syncs_per_epoch=2, dim=16)
    with monkeypatch.context() as m:
        m.setattr(Worker, "_tidy", lambda self, r: None)
        first = Worker(wc, job, poll=0.2)
        first.on_event = lambda kind, info: first.stop.set() if kind == "merged" and info["round"] == 1 else None
        _run_to_end(first)
    assert first.report.state == "stopped"
    return train.status(cluster, job)


def _zero_a_page(cluster, rel):
    with open(cluster.store.local_path(rel), "r+b") as fh:
        fh.seek(8192)
        fh.write(bytes(4096))  # as if it never reached the disk


def test_a_round_whose_parameters_an_os_crash_cost_is_merged_again(cluster, config, monkeypatch):
    """Merged parameters are published before they reach the disk. After an OS crash, a worker that
    starts finds the round it would start from damaged (the sums its node records): it takes the
    job back to the round before, still whole, and merges it again (one of whose deltas the crash
    cost too: dropped and trained again). The job ends with every round, each unit trained once per
    round, and its word count right."""
    from nlpzk import testing
    from nlpzk.train import Worker
    from nlpzk.zk import rounds

    shards = _setup(cluster)
    wc = testing.Cluster.connect(config)
    try:
        st = _crashed_before_round_1s_tidy(cluster, wc, "jr", monkeypatch)
        assert st["round"] == 2
        barrier = rounds.RoundBarrier(cluster.zk, "jr", [])
        rd2, rd1 = barrier.round_doc(2), barrier.round_doc(1)
        assert len(rd2["sums"]) == len(rd2["params"]) == 1
        damaged = rd2["params"][0]
        _zero_a_page(cluster, damaged)
        (lost_name, lost), *_ = sorted(barrier.contributions(1).items())
        _zero_a_page(cluster, lost["delta"])
        events = []
        second = Worker(wc, "jr", poll=0.2, on_event=lambda kind, info: events.append((kind, info)))
        _run_to_end(second)
        assert second.report.state == "done"
        assert [info for kind, info in events if kind == "rolled_back"] == [{"round": 2, "to": 1, "damaged": [damaged]}]
        assert [info["round"] for kind, info in events if kind == "dropped"] == [1]
        logs = _assert_each_shard_once_per_round(cluster, "jr", shards)
        assert lost_name not in {c["contrib"] for c in logs[1]["commits"]}
        assert damaged not in {p["path"] for log in logs for p in log["merge_parts"]}
        assert not cluster.store.exists(damaged) and not cluster.store.exists(rd1["params"][0])
        st = train.status(cluster, "jr")
        assert st["words"] == sum(c["words"] for log in logs for c in log["contributions"])
        hist = {h["round"]: h for h in st["history"]}
        for r, log in enumerate(logs[:-1]):  # the schedule's word count went back with the round
            assert hist[r + 1]["words_before"] == hist[r]["words_before"] + sum(c["words"] for c in log["contributions"])
    finally:
        wc.close()


def test_damaged_parameters_with_no_round_to_go_back_to_stop_the_worker_with_one_line(cluster, config, cli, monkeypatch):
    from nlpzk import testing
    from nlpzk.errors import IntegrityError
    from nlpzk.train import Worker
    from nlpzk.train.worker import tidy_round
    from nlpzk.zk import rounds

    _setup(cluster)
    wc = testing.Cluster.connect(config)
    try:
        _crashed_before_round_1s_tidy(cluster, wc, "jn2", monkeypatch)
        barrier = rounds.RoundBarrier(cluster.zk, "jn2", [])
        for r in (0, 1):
            tidy_round(cluster, barrier, r)  # the tidy ran: round 1's input is gone
        _zero_a_page(cluster, barrier.round_doc(2)["params"][0])
        w = Worker(wc, "jn2", poll=0.2)
        with pytest.raises(IntegrityError, match="round 2 of job jn2 cannot start: its parameters .* no earlier round is left"):
            w.run()
        res = cli.run_process("train", "worker", "jn2", timeout=120)
        assert res.returncode != 0
        # the worker's log ("joined: ...") and then one error line, no traceback
        assert "Traceback" not in res.stderr, res.stderr
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith("error: round 2 of job jn2 cannot start") and "no earlier round is left to go back to" in last, res.stderr
        assert train.status(cluster, "jn2")["round"] == 2
    finally:
        wc.close()


def test_default_syncs_per_epoch_follow_the_expected_workers(cluster):
    _setup(cluster)
    got = {}
    for i, workers in enumerate([1, 2, 3, 4, 0, None]):
        doc, _ = train.create_job(cluster, f"js{i}", "lee", "lee", epochs=2, workers=workers)
        got[workers] = (doc["spec"]["syncs_per_epoch"], doc["spec"]["rounds"])
    assert got == {1: (4, 8), 2: (4, 8), 3: (16, 32), 4: (16, 32), 0: (16, 32), None: (16, 32)}
    doc, _ = train.create_job(cluster, "jsx", "lee", "lee", epochs=2, workers=4, syncs_per_epoch=3)
    assert doc["spec"]["syncs_per_epoch"] == 3


def test_token_ids_of_row_groups_with_their_own_dictionaries(cluster):
    import pyarrow as pa

    from nlpzk.train.job import load_vocab
    from nlpzk.train.worker import token_ids

    _setup(cluster)
    vocab = load_vocab(cluster, "lee", 1)
    a, b, c = vocab.tokens[:3]  # ids 0, 1, 2

    def encode(words):
        return vocab.view.encode(words, oov=-1)

    def chunk(sentences, strings=pa.string()):
        return pa.array(sentences, type=pa.list_(pa.dictionary(pa.int32(), strings)))

    col = pa.chunked_array([chunk([[a, b], [], ["not-a-word-here", a]]), chunk([[b, c, b]]), chunk([])])
    assert col.chunks[0].flatten().dictionary.to_pylist() != col.chunks[1].flatten().dictionary.to_pylist()
    offsets, ids = token_ids(col, encode)
    assert offsets.tolist() == [0, 2, 2, 4, 7]
    assert ids.tolist() == [0, 1, -1, 0, 1, 2, 1]
    offsets, ids = token_ids(pa.chunked_array([chunk([[c, b], [a]], pa.large_string())]), encode)  # large_string dictionaries too
    assert offsets.tolist() == [0, 2, 3] and ids.tolist() == [2, 1, 0]
    # a dictionary big enough for the vocabulary's Arrow join (not its dict lookups), with a word it lacks
    many = list(vocab.tokens[: len(vocab.tokens) // 2]) + ["not-a-word-here"]
    offsets, ids = token_ids(pa.chunked_array([chunk([many])]), encode)
    assert ids.tolist() == list(range(len(many) - 1)) + [-1]


def test_fewer_shards_than_workers(cluster, cli_env, tmp_path):
    from nlpzk.train import job as job_mod

    _setup(cluster, shards=1)
    doc, _ = train.create_job(cluster, "j1s", "lee", "lee", epochs=2, syncs_per_epoch=2, dim=16)
    units = [u.name for u in job_mod.work_units(doc["spec"], job_mod.frozen_shards(cluster, doc["spec"]))]
    assert len(units) < 3  # one shard: at most a couple of work units for three workers
    procs = [_worker(cli_env, "j1s", tmp_path / f"w{i}.log") for i in range(3)]
    for p in procs:
        assert p.wait(120) == 0  # the idle workers wait at the barrier and leave when the job is done
    logs = _assert_each_shard_once_per_round(cluster, "j1s", ["s-00000"])
    assert all(len(log["contributions"]) <= len(units) and len(log["merge_parts"]) == len(log["contributions"]) for log in logs)


def test_shards_split_into_work_units_cover_every_sentence_once_per_epoch(cluster, cli_env, tmp_path, monkeypatch):
    """A corpus of few big shards is leased in pieces (work units), and the pieces' slices still
    cover every sentence exactly once per epoch."""
    from nlpzk.train import job as job_mod

    shards = _setup(cluster, shards=2, repeat=3)
    # small units for a small corpus (the defaults are 20k tokens per slice, 64 units per job)
    monkeypatch.setattr(job_mod, "UNIT_MIN_SLICE_TOKENS", 1000)
    monkeypatch.setattr(job_mod, "UNIT_TARGET", 8)
    doc, _ = train.create_job(cluster, "ju", "lee", "lee", epochs=2, syncs_per_epoch=2, dim=16, seed=3)
    units = job_mod.work_units(doc["spec"], job_mod.frozen_shards(cluster, doc["spec"]))
    assert len(units) >= 8 and {u.shard for u in units} == set(shards)
    assert all("+" in u.name for u in units)
    procs = [_worker(cli_env, "ju", tmp_path / f"w{i}.log") for i in range(2)]
    for p in procs:
        assert p.wait(180) == 0, (tmp_path / "w0.log").read_text()
    logs = _assert_each_shard_once_per_round(cluster, "ju", shards)
    total = sum(s.tokens for s in job_mod.frozen_shards(cluster, doc["spec"]))
    for epoch in range(2):
        words = sum(c["words"] for log in logs[2 * epoch : 2 * epoch + 2] for c in log["contributions"])
        assert words == total, (epoch, words, total)


def test_workers_are_dealt_disjoint_shards_first_and_the_deal_changes_every_round(cluster):
    """Workers starting a round together prefer different units (no race for the same ones), and
    over the rounds a worker's preferred data changes."""
    from nlpzk.train import Worker

    shards = _setup(cluster, shards=6, repeat=6)
    train.create_job(cluster, "jp", "lee", "lee", epochs=2, syncs_per_epoch=1, dim=8)
    workers = [Worker(cluster, "jp", worker_id=i) for i in ("a", "b", "c")]
    for w in workers:
        w._setup()
    units = sorted(workers[0].units)
    assert len(units) > len(shards)  # units are parts of shards: a shard's units go together
    for members in (["a", "b"], ["a", "b", "c"]):
        deals = []
        for r in (0, 1, 2):
            own = [w._own_shards(r, members) for w in workers if w.id in members]
            assert set().union(*own) == set(shards) and sum(map(len, own)) == len(shards)  # disjoint, complete
            assert max(map(len, own)) - min(map(len, own)) <= 1
            deals.append(own)
            for w, mine in zip(workers, own):
                pref = w._preference(r, members)
                assert sorted(pref) == units
                k = sum(1 for u in units if w.units[u].shard in mine)
                assert {w.units[u].shard for u in pref[:k]} == mine  # its own shards' units first
        assert deals[0] != deals[1] or deals[1] != deals[2]
    assert workers[2]._own_shards(0, ["a", "b"]) == set()  # not a member (yet): no part


def test_the_shard_cache_stays_within_its_budget_and_a_job_still_trains_every_unit_once(cluster, config):
    """A worker whose share of the corpus does not fit its cache evicts the least recently used
    shards and reads them again later, instead of holding the whole corpus in memory."""
    from nlpzk import testing
    from nlpzk.train import Worker

    shards = _setup(cluster, shards=4)
    train.create_job(cluster, "jb", "lee", "lee", epochs=2, syncs_per_epoch=2, dim=16)
    probe = Worker(cluster, "jb")
    probe._setup()
    sizes = {s: probe._shard(s).nbytes for s in shards}
    assert all(n > 0 for n in sizes.values())
    budget = sizes[shards[0]] + sizes[shards[1]]  # room for two shards

    w = Worker(cluster, "jb", cache_bytes=budget)
    w._setup()
    first = w._shard(shards[0])
    w._shard(shards[1])
    assert w._shard(shards[0]) is first  # a hit (and now the most recently used)
    w._shard(shards[2])  # evicts shards[1], the least recently used
    assert list(w._cache) == [shards[0], shards[2]] and w._cache_bytes == sizes[shards[0]] + sizes[shards[2]] <= budget
    again = w._shard(shards[1])  # read again: the same content
    assert again is not first and again.tokens == probe._shard(shards[1]).tokens
    assert list(w._cache) == [shards[2], shards[1]]

    none = Worker(cluster, "jb", cache_bytes=0)
    none._setup()
    assert none._shard(shards[0]).tokens == first.tokens and not none._cache and none._cache_bytes == 0

    wc = testing.Cluster.connect(config)
    small = Worker(wc, "jb", poll=0.2, cache_bytes=max(sizes.values()))  # one shard at a time
    try:
        _run_to_end(small)
        assert small.report.state == "done"
        _assert_each_shard_once_per_round(cluster, "jb", shards)
        assert len(small._cache) == 1 and small._cache_bytes <= small.cache_budget
    finally:
        small.stop.set()
        wc.close()


def test_without_zookeeper_a_worker_exits_after_its_reconnect_limit_instead_of_hanging(tmp_path, monkeypatch):
    """kazoo queues a request made while the connection is down and waits for ever: with no quorum
    a worker's commit blocked for good. Every request now waits at most REQUEST_TIMEOUT for its
    reply, and the worker gives up ``reconnect_timeout`` after the drop, with one clear error."""
    import time

    from kazoo.exceptions import OperationTimeoutError

    from nlpzk import testing
    from nlpzk.errors import ZkUnavailableError
    from nlpzk.train import Worker
    from nlpzk.zk import client as zk_client

    monkeypatch.setattr(zk_client, "REQUEST_TIMEOUT", 2.0)
    server = testing.start_standalone(tmp_path / "zk")
    own = testing.Cluster.connect(testing.config_for(server.address, tmp_path / "store", session_timeout=10.0))
    try:
        _setup(own, repeat=8)
        train.create_job(own, "jz", "lee", "lee", epochs=50, syncs_per_epoch=1, dim=16)
        w = Worker(own, "jz", poll=0.2, reconnect_timeout=5.0)
        t, failure = _worker_thread(w)
        assert wait_for(lambda: w.report.commits >= 1, 60)
        server.stop()  # mid-job, with the session still alive on the client's side
        t0 = time.monotonic()
        t.join(60)
        assert not t.is_alive(), "the worker hung without ZooKeeper"
        assert isinstance(failure[0], ZkUnavailableError) and "lost ZooKeeper for more than 5s" in str(failure[0])
        # the reconnect limit (5 s), plus at most one retried call's deadline (10 s) still under way
        assert time.monotonic() - t0 < 40
        # a request made while the server is down fails within the bound instead of waiting for ever
        with pytest.raises(OperationTimeoutError):
            own.zk.get("/")
    finally:
        own.close()
        server.stop()


def test_a_worker_without_zookeeper_exits_at_its_reconnect_limit_not_twice_that(tmp_path, monkeypatch):
    """In production REQUEST_TIMEOUT equals the reconnect limit (120 s). A worker that gave up then
    tried to delete its membership node on the way out, a request that waited another
    REQUEST_TIMEOUT: `train worker` exited after 240 s instead of the documented 120 s, and
    `train run` (which gives up at 120 s) killed its workers before they printed their error line.
    Leaving is skipped while disconnected (the node is ephemeral)."""
    import time

    from nlpzk.errors import ZkUnavailableError
    from nlpzk.train import Worker

    limit = 12.0  # above the command retry's 10 s deadline, as 120 s is
    server, own = own_server_with_request_timeout(monkeypatch, tmp_path, limit)
    try:
        _setup(own, repeat=8)
        train.create_job(own, "jq", "lee", "lee", epochs=50, syncs_per_epoch=1, dim=16)
        w = Worker(own, "jq", poll=0.2, reconnect_timeout=limit)
        t, failure = _worker_thread(w)
        assert wait_for(lambda: w.report.commits >= 1, 60)
        server.stop()
        t0 = time.monotonic()
        t.join(60)
        elapsed = time.monotonic() - t0
        assert not t.is_alive(), "the worker hung without ZooKeeper"
        assert isinstance(failure[0], ZkUnavailableError)
        assert elapsed < limit + 5, f"the worker gave up {elapsed:.1f}s after the drop, its limit is {limit:g}s"
    finally:
        own.close()
        server.stop()


def test_a_job_with_no_worker_says_so_where_people_look(cluster, cli):
    """`train run --workers 0 --no-wait` (or every worker gone): the job is `running` in its node, but
    the human views say no worker is there and how to start one."""
    _setup(cluster, shards=2)
    res = cli("train", "run", "idle", "--corpus", "lee", "--vocab", "lee", "--workers", "0", "--no-wait", "--epochs", "1")
    assert res.exit_code == 0, res.output
    shown = cli("train", "status", "idle").stdout
    assert "job idle: running, no worker joined (waiting for workers)" in shown
    assert "nlpzk train resume idle" in shown and "nlpzk train worker idle" in shown
    assert "idle: running (no workers) round 0/" in cli("train", "list").stdout
    assert "no workers" in cli("status").stdout
    assert json.loads(cli("train", "status", "idle", "--json").stdout)["state"] == "running"  # the node's state, for scripts


def test_local_workers_get_every_setting_of_the_command_that_starts_them(zk_server, tmp_path):
    """`train run` / `model eval --workers K` start workers with the settings in their environment.
    `--acl-others none` (and TLS, the connect timeout) were left out: with `--acl-others none` given
    as a flag, the nodes the workers created (rounds, the registered model) were readable by anyone."""
    from nlpzk import testing
    from nlpzk.config import Config
    from nlpzk.train.local import worker_env

    config = testing.config_for(zk_server.address, tmp_path / "store", auth="alice:pw", acl_others="none", connect_timeout=7.0)
    tls = config.with_overrides(zk_tls=True, zk_ca="/ca.pem", zk_cert="/me.pem", zk_key="/me.key")
    child = Config.resolve(environ=worker_env(tls), toml_path=None)
    for key in ("zk", "store_uri", "auth", "acl_others", "connect_timeout", "session_timeout", "zk_tls", "zk_ca", "zk_cert", "zk_key"):
        assert getattr(child, key) == getattr(tls, key), key

    owner = testing.Cluster.connect(config)
    try:
        _setup(owner, shards=2)
        train.create_job(owner, "jacl", "lee", "lee", epochs=1, syncs_per_epoch=2, dim=8)
        procs = train.start_local_workers(config, "jacl", 1, log_dir=str(tmp_path / "logs"))
        assert procs[0].wait(180) == 0, (tmp_path / "logs" / "worker-0.log").read_text()
        open_nodes = []

        def walk(p):
            acl, _ = owner.zk.get_acls(p)
            if any(a.id.scheme == "world" for a in acl):
                open_nodes.append(p)
            for c in owner.zk.get_children(p):
                walk(p.rstrip("/") + "/" + c)

        walk("/")
        assert open_nodes == [], f"readable by anyone despite --acl-others none: {open_nodes[:5]}"
    finally:
        owner.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_train_run_stops_at_once_on_ctrl_c_while_zookeeper_is_down(tmp_path, sig):
    """Ctrl-C / SIGTERM of `train run` while ZooKeeper is unreachable: it used to wait for a reply
    to its next status read (REQUEST_TIMEOUT, 120 s) before even looking at the signal, and then
    again for the status it prints on stopping; a second Ctrl-C did nothing. It now stops at once
    with one line saying how to continue."""
    import time

    from nlpzk import testing

    server = testing.start_standalone(tmp_path / "zk")
    config = testing.config_for(server.address, tmp_path / "store", session_timeout=10.0)
    own = testing.Cluster.connect(config)
    try:
        _setup(own, shards=2)
        train.create_job(own, "jq", "lee", "lee", epochs=50, syncs_per_epoch=1, dim=16)
        run = subprocess.Popen(
            [sys.executable, "-m", "nlpzk", "train", "run", "jq", "--workers", "0"],
            env=testing.env_for(config, tmp_path / "state"), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(6.0)  # started, connected and following the job (a status read every second)
        assert run.poll() is None
        server.stop()
        time.sleep(3.0)  # its connection is down, a status read is waiting for ZooKeeper
        t0 = time.monotonic()
        run.send_signal(sig)
        try:
            out, err = run.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            raise AssertionError("train run did not stop within 20 s of the signal while ZooKeeper was down") from None
        assert time.monotonic() - t0 < 20
        assert run.returncode == 130, err
        assert "Traceback" not in err, err
        errors = [l for l in err.splitlines() if l.startswith("error: ")]
        assert len(errors) == 1 and "nlpzk train resume jq" in errors[0], err
        assert "job jq exists: resuming at round 0 of 50" in err, err  # it was following the job when ZooKeeper went
    finally:
        own.close()
        server.stop()


def test_a_worker_told_to_leave_while_zookeeper_is_down_leaves_at_once(tmp_path):
    """SIGTERM of `train worker` while ZooKeeper is unreachable: the worker waited for the connection
    (its reconnect limit, 120 s, and requests as long) before looking at the stop flag, so a
    launcher's stop (Kubernetes, `train run`'s own SIGTERM) ended in a SIGKILL. It now leaves at
    once, exit 0 with its summary line; its leases go with its session."""
    import time

    from nlpzk import testing

    server = testing.start_standalone(tmp_path / "zk")
    config = testing.config_for(server.address, tmp_path / "store", session_timeout=10.0)
    own = testing.Cluster.connect(config)
    try:
        _setup(own, shards=2, repeat=4)
        train.create_job(own, "jw", "lee", "lee", epochs=200, syncs_per_epoch=1, dim=16)
        log = tmp_path / "worker.log"
        w = _worker(testing.env_for(config, tmp_path / "state"), "jw", log)
        wait_for(lambda: train.status(own, "jw")["round"] >= 1, 60, what="a merged round")
        server.stop()
        time.sleep(3.0)  # the worker has seen the connection go
        t0 = time.monotonic()
        w.send_signal(signal.SIGTERM)
        try:
            w.wait(20)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
            raise AssertionError("the worker did not leave within 20 s of SIGTERM while ZooKeeper was down: " + log.read_text()[-2000:]) from None
        assert time.monotonic() - t0 < 20
        text = log.read_text()
        assert w.returncode == 0 and "Traceback" not in text, text
        assert " stopped: " in text.splitlines()[-1], text
    finally:
        own.close()
        server.stop()


def test_a_contribution_this_worker_cannot_read_is_not_thrown_away(cluster, config):
    """An error reading a committed delta (permission denied, an I/O or network error, a worker whose
    store is not quite the others') says nothing about the file: the worker used to take it for an
    unreadable contribution, un-commit it and delete another worker's file. It now stops with the
    store error (exit 10 at the command line) and the contribution stays committed for the others."""
    from nlpzk import testing
    from nlpzk.errors import StoreError
    from nlpzk.train import Worker
    from nlpzk.zk import rounds

    shards = _setup(cluster)
    wc = testing.Cluster.connect(config)
    try:
        kept, doc = _committed_round_1_alone(cluster, wc, "jx")
        real_fs = wc.store.fs

        class Failing:  # the store's filesystem, failing to read that one file (EIO, a dropped connection)
            def __getattr__(self, name):
                return getattr(real_fs, name)

            def open_input_file(self, path):
                if path == wc.store.full(doc["delta"]):
                    raise OSError(5, "Input/output error")
                return real_fs.open_input_file(path)

        wc.store.fs = Failing()
        events = []
        second = Worker(wc, "jx", poll=0.2, on_event=lambda kind, info: events.append((kind, info)))
        with pytest.raises(StoreError, match="Input/output error"):
            second.run()
        assert not [info for kind, info in events if kind == "dropped"]
        assert kept in rounds.RoundBarrier(cluster.zk, "jx", []).contributions(1)
        assert cluster.store.exists(doc["delta"])
        wc.store.fs = real_fs  # the trouble is over: the job finishes with that contribution
        third = Worker(wc, "jx", poll=0.2)
        _run_to_end(third)
        assert third.report.state == "done"
        logs = _assert_each_shard_once_per_round(cluster, "jx", shards)
        assert kept in {c["contrib"] for c in logs[1]["commits"]}
    finally:
        wc.close()


@pytest.mark.parametrize("kind", ["missing", "another"])
def test_a_worker_pointed_at_another_store_says_so(cluster, cli_env, tmp_path, kind):
    """`train worker` on a machine whose --store / NLPZK_STORE is not the job's (one that does not
    exist, or another cluster's): one line that says so, not `store file jobs/.../shards-....json is
    missing — run the matching verify command` (there is no verify command for jobs), and the worker
    never joins. It said so with exit 7 (damaged data), while every other command says a wrong store
    with exit 10 (WrongStoreError)."""
    from nlpzk.errors import WrongStoreError

    _setup(cluster, shards=2)
    train.create_job(cluster, "jo", "lee", "lee", epochs=1, syncs_per_epoch=1, dim=16)
    elsewhere = tmp_path / "elsewhere"
    if kind == "another":
        (elsewhere / "jobs" / "other").mkdir(parents=True)
    env = dict(cli_env, NLPZK_STORE=str(elsewhere))
    res = subprocess.run([sys.executable, "-m", "nlpzk", "train", "worker", "jo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == WrongStoreError.exit_code == 10, res.stderr
    line = one_line_error(res.stderr)
    assert line.startswith(f"error: store {elsewhere} has none of job jo's files (jobs/jo/"), line
    assert "is --store / NLPZK_STORE the store this cluster uses? (see: nlpzk config show)" in line, line
    assert not train.status(cluster, "jo")["workers"]


def test_a_worker_on_a_copy_of_the_store_does_not_join(cluster, cli_env, tmp_path):
    """A worker whose store is a copy of the job's (every file of the job is there, so nothing looks
    missing at start) and another on the real one: each took the other's contributions for lost
    files and dropped them, and whichever finished left the final vectors in its own store only (a
    review found the job `done`, its model registered, and the vectors missing from the real store).
    Each worker writes a probe file named in its membership node; one that cannot see a live
    member's probe is on another store, and refuses to join (exit 10), saying so."""
    import shutil

    _setup(cluster, shards=2)
    train.create_job(cluster, "jc", "lee", "lee", epochs=6, syncs_per_epoch=2, dim=16)
    store = cluster.store.local_path("")
    copy = tmp_path / "store-copy"
    shutil.copytree(store, copy)
    # the real worker waits at its first batch (joined, probe written) until the copy's worker has
    # tried: on a busy machine it could otherwise finish the whole job before the other started
    gate = tmp_path / "gate"
    gate.mkdir()
    real = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "_pause_at.py"), "--gate", str(gate), "nlpzk.train.worker:Worker._train_batch", "train", "worker", "jc"],
        env=cli_env, cwd=ROOT, stdout=open(tmp_path / "real.log", "wb"), stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: (gate / "reached").exists() or real.poll() is not None, timeout=120, what="the first worker joining")
        assert train.status(cluster, "jc")["workers"], (tmp_path / "real.log").read_text()
        res = subprocess.run([sys.executable, "-m", "nlpzk", "train", "worker", "jc"], env=dict(cli_env, NLPZK_STORE=str(copy)),
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 10, res.stderr
        line = one_line_error(res.stderr)
        assert "writes to another store than this worker's" in line and "not a copy" in line, line
        (gate / "go").touch()
        assert real.wait(180) == 0, (tmp_path / "real.log").read_text()
    finally:
        real.kill()
    kv, doc = train.final_vectors(cluster, "jc")  # the result is in the job's own store
    assert doc["state"] == "done" and len(kv) > 0
    assert not [f for f in cluster.store.list(naming.job_dir("jc")) if "/probes/" in f]  # tidied with the job


def test_a_live_worker_s_contribution_this_worker_cannot_see_is_not_dropped(cluster, config):
    """Two workers on different stores that joined at the same moment (neither saw the other's
    membership): at the merge each finds the other's contribution file missing. A live author whose
    probe is missing too is on another store: the worker stops (StoreError) and drops nothing."""
    from nlpzk import testing
    from nlpzk.errors import StoreError
    from nlpzk.zk.rounds import RoundBarrier

    _setup(cluster, shards=2)
    train.create_job(cluster, "jd", "lee", "lee", epochs=1, syncs_per_epoch=1, dim=8)
    here = train.Worker(cluster, "jd", poll=0.2)
    here._setup()
    other = testing.Cluster.connect(config)  # "B": joins right after, writing to a store of its own
    try:
        other.zk.create(paths.job_worker("jd", "B"), json.dumps({"probe": naming.job_probe("jd", "B")}).encode(), ephemeral=True)
        theirs = RoundBarrier(other.zk, "jd", sorted(here.units))
        held = [theirs.lease_next(0, "B")[0] for _ in here.units]
        theirs.commit(0, held, {"worker": "B", "contrib": "cB", "words": 1, "units": [l.unit for l in held]}, separate=True)
        by_name, commits = here._round_contributions(0)
        with pytest.raises(StoreError, match="worker B of job jd writes to another store"):
            here._drop_unreadable(0, by_name, commits)
        assert set(theirs.contributions(0)) == {"cB"}  # B's work stays committed
        # B gone (its session ended): its missing file is lost for real, and is dropped to be trained again
        other.close()
        wait_for(lambda: not cluster.zk.exists(paths.job_worker("jd", "B")), timeout=30)
        here._contribs = None
        assert here._drop_unreadable(0, *here._round_contributions(0)) is True
        assert RoundBarrier(cluster.zk, "jd", sorted(here.units)).contributions(0) == {}
    finally:
        other.close()


def test_sigterm_while_train_run_creates_its_job_is_an_interrupt_not_a_silent_kill(cluster, cli_env, tmp_path):
    """SIGTERM before `train run` follows its job (creating it, starting its workers) killed the
    process silently (exit 143, no line); a signal between starting the workers and following the
    job would have left them running. It now does what Ctrl-C does: one line, exit 130."""

    _setup(cluster, shards=2)
    gate = tmp_path / "gate"
    gate.mkdir()
    run = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "_pause_at.py"), "--gate", str(gate), "nlpzk.zk.rounds:create_job",
         "train", "run", "jt", "--corpus", "lee", "--vocab", "lee", "--workers", "1", "--epochs", "1", "--dim", "8"],
        env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: (gate / "reached").exists() or run.poll() is not None, timeout=120, what="train run creating its job")
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130, (run.returncode, err)
    assert "Traceback" not in err and one_line_error(err) == "error: interrupted", err
    assert cluster.zk.exists(paths.job("jt")) is None and not (tmp_path / "state" / "train" / "jt").exists()  # no job, no worker started


@pytest.mark.parametrize("at", ["nlpzk.train.worker:Worker._global", "nlpzk.train.merge:merge"])
def test_a_worker_paused_between_its_lease_and_loading_the_round_carries_on(cluster, cli_env, tmp_path, at):
    """A worker stopped right after leasing, before loading the round's parameters, for longer than
    its session: the others train and merge the round and tidy its parameter file. On waking, the
    missing file of a round long gone was taken for damage (exit 7, "store file ... is missing");
    seen as a rare failure of the SIGSTOP fencing test. It now carries on from the job node. The same
    for a worker stopped as it starts reducing a merge part: the round's contributions are gone when
    it wakes."""

    _setup(cluster, repeat=2)
    train.create_job(cluster, "jg", "lee", "lee", epochs=4, syncs_per_epoch=1, dim=16)
    victim = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "_pause_at.py"), "--stop", at, "train", "worker", "jg"],
        env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    other = None
    try:
        wait_for(lambda: open(f"/proc/{victim.pid}/stat").read().split(") ")[1][0] == "T", timeout=120, what="the victim stopped")
        other = _worker(cli_env, "jg", tmp_path / "other.log")
        # the other worker trains round 0 once the victim's session expires, merges it and tidies it
        wait_for(lambda: train.status(cluster, "jg")["round"] >= 2, timeout=120, what="round 0 merged and tidied")
        victim.send_signal(signal.SIGCONT)
        out, _ = victim.communicate(timeout=120)
        assert other.wait(120) == 0, (tmp_path / "other.log").read_text()
    finally:
        victim.kill()
        if other is not None:
            other.kill()
    assert victim.returncode == 0, out
    assert "error:" not in out, out
    assert train.status(cluster, "jg")["state"] == "done"


def test_wait_follows_a_job_to_its_registered_model_as_train_run_does(cluster, config):
    """Nothing in the library followed a job: `train run`'s loop lived in the CLI, and a Python
    user polled train.status and had no way to learn the model version the job registered."""
    from nlpzk.models import Model

    _setup(cluster, shards=2)
    train.create_job(cluster, "wj", "lee", "lee", model="wm", epochs=1, syncs_per_epoch=2, dim=8)
    seen = []
    procs = train.start_local_workers(config, "wj", 1)
    try:
        done = train.wait(cluster, "wj", workers=procs, on_round=lambda st: seen.append(st["round"]), every=0.2)
    finally:
        train.stop_local_workers(procs)
    assert done == dict(train.status(cluster, "wj"), model="wm", model_version=1, deleted_model_version=None)
    assert done["state"] == "done" and seen[-1] == 2 and seen == sorted(set(seen)), seen
    assert all(p.poll() is not None for p in procs)  # they left on their own once the job was done
    assert Model.open("wm", version=done["model_version"], cluster=cluster).doc["job"] == "wj"
    assert train.wait(cluster, "wj")["model_version"] == 1  # a done job: at once, and registered once


def test_wait_gives_up_at_its_timeout_or_when_every_local_worker_is_gone(cluster):
    from nlpzk.errors import TrainingError

    _setup(cluster, shards=2)
    train.create_job(cluster, "wt", "lee", "lee", epochs=1, dim=8)
    with pytest.raises(TrainingError, match=r"job 'wt' did not finish within 0.5 s \(at round 0 of ") as err:
        train.wait(cluster, "wt", timeout=0.5, every=0.1)
    assert "\n" not in str(err.value)
    gone = [subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])]
    gone[0].wait()
    with pytest.raises(TrainingError, match=r"all local workers exited \(codes \[3\]\) before job 'wt' finished"):
        train.wait(cluster, "wt", workers=gone, timeout=30)
    assert train.status(cluster, "wt")["state"] == "running"  # left as it was


def test_wait_rides_out_a_lost_connection_as_train_run_does_then_gives_up_at_the_limit(monkeypatch, tmp_path):
    """train.wait raised ZkUnavailableError the moment ZooKeeper went away (a restart, an
    election), while `train run` waits for it as long as its workers do (RECONNECT_LIMIT)."""
    from types import SimpleNamespace

    from nlpzk.errors import ZkUnavailableError
    from nlpzk.zk import client as zk_client

    server, own = own_server_with_request_timeout(monkeypatch, tmp_path, 12.0)
    procs = []
    try:
        _setup(own, shards=2)
        train.create_job(own, "wz", "lee", "lee", epochs=1, syncs_per_epoch=2, dim=8)
        done = []
        t, failure = _worker_thread(SimpleNamespace(run=lambda: done.append(train.wait(own, "wz", timeout=180, every=0.1))))
        time.sleep(0.5)
        server.stop()
        time.sleep(3)  # it raised ZkUnavailableError at once
        assert t.is_alive() and not failure, failure
        server.start()
        procs = train.start_local_workers(own.config, "wz", 1)
        t.join(180)
        assert not failure, failure
        assert done[0]["state"] == "done" and done[0]["model_version"] == 1

        # the same bound as train run's: the connection down RECONNECT_LIMIT seconds, then one clear error
        monkeypatch.setattr(zk_client, "RECONNECT_LIMIT", 2.0)
        train.create_job(own, "wy", "lee", "lee", epochs=1, dim=8)
        t, failure = _worker_thread(SimpleNamespace(run=lambda: train.wait(own, "wy", timeout=180, every=0.1)))
        time.sleep(0.5)
        t0 = time.monotonic()  # (the client sees the drop while stop() still waits for the process to end)
        server.stop()
        t.join(60)
        assert not t.is_alive() and isinstance(failure[0], ZkUnavailableError), failure
        assert 2.0 <= time.monotonic() - t0 < 15, time.monotonic() - t0
        assert re.match(r"lost the connection to ZooKeeper \(\w+\) while following job 'wy' — check the servers \(nlpzk zk status\); once they are back: nlpzk train resume wy$", failure[0].line()), failure[0].line()
    finally:
        train.stop_local_workers(procs)
        own.close()
        server.stop()


def test_train_run_stops_with_one_line_when_every_local_worker_exits_before_the_end(cluster, cli_env, tmp_path):
    """`train run` and `train.wait` share the check: local workers that all exit (here: a shard's file
    is gone from the store, so each stops with exit 7) end the run with one line naming their codes."""
    _setup(cluster, shards=2)
    for rel in cluster.store.list("corpora/lee/shards"):
        cluster.store.delete(rel)
    res = subprocess.run([sys.executable, "-m", "nlpzk", "train", "run", "jx", "--corpus", "lee", "--vocab", "lee", "--workers", "1", "--epochs", "1", "--dim", "8"],
                         env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]  # (after the progress lines)
    assert len(errors) == 1 and "all local workers exited (codes [7]) before job 'jx' finished" in errors[0] and "nlpzk train resume jx" in errors[0], res.stderr
