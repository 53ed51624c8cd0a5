"""``nlpzk status`` reads the whole cluster from ZooKeeper, including a job with live workers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from nlpzk import testing
from nlpzk.models import register_model
from nlpzk.zk import lease, members, paths, rounds
from test_models_support import vocab_and_vectors


def _running_job(cluster, job: str, units: list[str]) -> None:
    """A job node and round 0 laid out by the same recipe the training workers use."""
    spec = {"corpus": "lee", "vocab": "lee", "vocab_version": 1, "rounds": 4, "total_words": 240000}
    doc = {"spec": spec, "state": "running", "round": 0, "words": 60000, "created": 0}
    assert rounds.create_job(cluster.zk, job, doc, {"round": 0, "params": "x", "words_before": 0}, units)


def test_status_json_reflects_a_running_job_with_live_workers(cluster, config, zk_server, cli):
    view, kv = vocab_and_vectors(cluster)
    register_model(cluster, "lee", kv, vocab_name="lee", vocab_version=view.version, job="j1")
    _running_job(cluster, "j1", ["s000", "s001"])

    # two workers, each with its own session, as separate processes would have
    w1 = testing.Cluster.connect(config)
    w2 = testing.Cluster.connect(config)
    try:
        members.Member(w1.zk, "j1", "w1", {"host": "a", "words_per_s": 1500}).ensure()
        members.Member(w2.zk, "j1", "w2", {"host": "b", "words_per_s": 2500}).ensure()
        assert lease.acquire(w2.zk, paths.round_leases("j1", 0), paths.job_fences("j1"), "s001", "w2") is not None

        res = cli("status", "--json")
        assert res.exit_code == 0, res.output
        data = json.loads(res.stdout)
        assert data["servers"] == [{"address": zk_server.address, "serving": True, "mode": "standalone", "version": data["servers"][0]["version"], "znodes": data["servers"][0]["znodes"]}]
        assert data["corpora"][0]["name"] == "lee" and data["corpora"][0]["shards"] == 2
        assert data["corpora"][0]["tokens"] == sum(int(s.tokens) for s in __import__("nlpzk").Corpus.open("lee", cluster=cluster).shards)
        assert data["vocabularies"] == [{"name": "lee", "versions": 1, "latest": 1, "tags": {"latest": 1}, "tokens": len(view), "corpus": "lee",
                                          "deleting": False, "state": "ok", "damaged": None}]
        (job,) = data["jobs"]
        assert (job["name"], job["state"], job["round"], job["rounds"]) == ("j1", "running", 0, 4)
        assert (job["workers_alive"], job["workers"], job["leases_held"], job["words_per_s"]) == (2, ["w1", "w2"], 1, 4000)
        assert job["progress"] == 0.25 and job["vocab"] == "lee@v1"
        (model,) = data["models"]
        assert (model["name"], model["latest"], model["vocab"], model["job"]) == ("lee", 1, "lee@v1", "j1")

        # a worker whose session expires drops out, and so does the lease it held
        testing.expire_session(w2.zk, zk_server.address)
        job = json.loads(cli("status", "--json").stdout)["jobs"][0]
        assert (job["workers_alive"], job["workers"], job["leases_held"], job["words_per_s"]) == (1, ["w1"], 0, 1500)
    finally:
        w1.close()
        w2.close()

    res = cli("status")
    assert res.exit_code == 0, res.output
    for word in ("standalone", "lee", "j1", "models"):
        assert word in res.stdout


def test_status_of_an_empty_cluster_and_watch_mode(cluster, cli_env):
    proc = subprocess.Popen(
        [sys.executable, "-m", "nlpzk", "status", "--watch", "--json", "--interval", "0.3"], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = json.loads(proc.stdout.readline())
        assert first["jobs"] == [] and first["models"] == [] and first["corpora"] == []
        second = json.loads(proc.stdout.readline())  # it refreshes
        assert second["at"] > first["at"]
        # Ctrl-C is how --watch ends: exit code 0, no error line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0 and "error" not in err, err
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def test_status_follows_real_worker_processes(cluster, config, cli):
    """Two real `nlpzk train worker` processes on a long job: status sees them, their leases and speed."""
    import time

    from nlpzk import train
    from nlpzk.vocab import build
    from test_models_support import ingest_sentences, lee_sentences

    ingest_sentences(cluster, "lee", lee_sentences(), shards=4)
    view = build(cluster, "lee", "lee", min_count=2)
    train.create_job(cluster, "long", "lee", f"lee@v{view.version}", epochs=50, syncs_per_epoch=4, dim=16)
    procs = train.start_local_workers(config, "long", 2)
    try:
        seen = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = json.loads(cli("status", "--json").stdout)["jobs"][0]
            if job["workers_alive"] == 2 and job["round"] >= 2 and job["words_per_s"]:
                seen = job
                break
            time.sleep(0.3)
        assert seen is not None, "status never showed two live workers making progress"
        assert seen["state"] == "running" and seen["rounds"] == 200 and 0 < seen["progress"] < 1
        assert 0 <= seen["leases_held"] <= 4 and seen["words_per_s"] > 0
    finally:
        train.stop_local_workers(procs)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # membership nodes go with the processes
        job = json.loads(cli("status", "--json").stdout)["jobs"][0]
        if job["workers_alive"] == 0:
            break
        time.sleep(0.3)
    assert job["workers_alive"] == 0 and job["words_per_s"] is None


def test_a_model_not_evaluated_yet_shows_its_training_scores_as_model_list_does(cluster, cli):
    """status showed '-' in the scores column of a model `model list` showed 'at training: ...' for."""
    view, kv = vocab_and_vectors(cluster)
    register_model(cluster, "lee", kv, vocab_name="lee", vocab_version=view.version, job="j1", train_scores={"simlex": 0.25, "analogy": 0.5})
    (model,) = json.loads(cli("status", "--json").stdout)["models"]
    assert model["eval"] == {} and model["train_scores"] == {"simlex": 0.25, "analogy": 0.5}
    assert "at training: analogy 0.500, simlex 0.250" in " ".join(cli("status").stdout.split())
    assert "at training: analogy 0.500, simlex 0.250" in " ".join(cli("model", "list").stdout.split())


def test_the_live_view_shows_the_jobs_before_the_registry_lists(cluster):
    """--watch is cut at the terminal's height: with many corpora the jobs never showed."""
    from rich.console import Console

    from cli.status import render
    from nlpzk.status import collect

    def text(**kw) -> str:
        console = Console(width=120, record=True)
        console.print(render(collect(cluster), **kw))
        return console.export_text()

    assert text().index("corpora: none") < text().index("jobs: none")
    live = text(jobs_first=True)
    assert live.index("servers") < live.index("jobs: none") < live.index("corpora: none") < live.index("models: none")


def test_status_prints_every_count_in_one_format():
    """A corpus of 1,300 tokens read '1300' next to another's '10.3k'."""
    from rich.console import Console

    from cli.status import render

    data = {
        "at": 0, "zk": {"hosts": "h:1", "chroot": "/nlpzk", "embedded": False, "session": "CONNECTED"}, "store": "/s", "servers": [],
        "corpora": [{"name": "small", "shards": 1, "sentences": 999, "tokens": 1300, "bytes": 10}, {"name": "big", "shards": 2, "sentences": 1500, "tokens": 10300, "bytes": 10}],
        "vocabularies": [], "jobs": [], "models": [],
    }
    console = Console(width=120, record=True)
    console.print(render(data))
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in console.export_text().splitlines() if line.startswith("│")]
    assert cells == [["small", "1", "999", "1.3k", "10 B"], ["big", "2", "1.5k", "10.3k", "10 B"]], cells


def test_a_vocabulary_or_model_being_deleted_is_marked_as_model_list_marks_it(cluster, cli):
    """status marked a corpus or job being deleted, but not a vocabulary or model (model list
    marks them: every other command refuses them already)."""
    from nlpzk.zk import versioned

    view, kv = vocab_and_vectors(cluster)
    register_model(cluster, "lee", kv, vocab_name="lee", vocab_version=view.version, job="j1")
    shown = " ".join(cli("status").stdout.split())
    assert "(being deleted)" not in shown
    versioned.mark_deleting(cluster.zk, paths.vocab("lee"))
    versioned.mark_deleting(cluster.zk, paths.model("lee"))
    data = json.loads(cli("status", "--json").stdout)
    assert data["vocabularies"][0]["deleting"] and data["models"][0]["deleting"]
    shown = cli("status").stdout
    assert [line.split()[1:4] for line in shown.splitlines() if "(being deleted)" in line] == [["lee", "(being", "deleted)"]] * 2, shown
