"""Real processes: SIGKILL mid-run then re-run, and two ingesters on the same inputs at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gensim.test.utils import datapath

from nlpzk import testing
from nlpzk.corpus import Corpus
from nlpzk.ingest import ingest
from nlpzk.ingest.pipeline import read_hashes
from nlpzk.zk import paths, registry

from _helpers import own_server_with_request_timeout, wait_for

PAUSE_AT = Path(__file__).resolve().parent / "_pause_at.py"

LEE = [l.strip() for l in open(datapath("lee_background.cor"), encoding="utf-8") if l.strip()]


def _make_inputs(d, files: int, docs: int, shared: int = 0) -> None:
    """``files`` files of ``docs`` unique documents; the first ``shared`` documents of each file repeat across files."""
    d.mkdir()
    for f in range(files):
        lines = [f"Shared opening {i}. " + LEE[i % len(LEE)] for i in range(shared)]
        lines += [f"Document {f} {i}. " + LEE[(f * docs + i) % len(LEE)] for i in range(docs)]
        (d / f"part-{f:02d}.txt").write_text("\n".join(lines) + "\n")


def _popen(cli_env, *args):
    return subprocess.Popen([sys.executable, "-m", "nlpzk", *args], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fingerprint(corpus: Corpus) -> list[tuple]:
    return [(s.id, s.sha256, s.sentences, s.tokens, s.documents) for s in corpus.shards]


def _all_hashes(corpus: Corpus, cluster) -> np.ndarray:
    return np.concatenate([read_hashes(cluster.store, corpus.name, k)["hash"].to_numpy() for k in corpus.inputs()])


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(zk_server, cluster, cli_env, tmp_path):
    inputs = tmp_path / "in"
    _make_inputs(inputs, files=10, docs=200)
    args = ["corpus", "ingest", "killed", str(inputs), "--shard-tokens", "15000"]
    proc = _popen(cli_env, *args)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(registry.children(cluster.zk, paths.inputs("killed"))) >= 2:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = registry.children(cluster.zk, paths.inputs("killed"))
    assert 0 < len(done) < 10, f"the kill must land mid-run (done: {len(done)})"
    corpus = Corpus.open("killed", cluster=cluster)
    # nothing half-registered: every done input has all of its shards, every shard belongs to a done input
    inputs_done = corpus.inputs()
    shards = corpus.shards
    assert sum(doc["shards"] for doc in inputs_done.values()) == len(shards)
    assert {s.id.rsplit("-", 1)[0] for s in shards} <= set(inputs_done)

    rerun = subprocess.run([sys.executable, "-m", "nlpzk", *args, "--json"], env=cli_env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["already_done"] == len(done) and summary["ingested"] == 10 - len(done)

    # the same command, uninterrupted, in a fresh chroot and store
    fresh = testing.cluster_for(zk_server.address, tmp_path / "store2")
    try:
        ingest(fresh, "killed", [str(inputs)], shard_tokens=15000)
        expected = _fingerprint(Corpus.open("killed", cluster=fresh))
    finally:
        fresh.close()
    after = Corpus.open("killed", cluster=cluster)
    assert _fingerprint(after) == expected
    report = after.verify()
    assert report["ok"] and report["stray"] == []


def test_two_concurrent_ingesters_split_the_work_without_duplicates(zk_server, cluster, cli_env, tmp_path):
    inputs = tmp_path / "in"
    _make_inputs(inputs, files=16, docs=400, shared=5)
    args = ["corpus", "ingest", "conc", str(inputs), "--shard-tokens", "8000", "--json"]
    # So that they really overlap however slowly the second starts, the first is held before its
    # first commit (its tokenizing processes and session carry on) until the second holds a claim.
    gate = tmp_path / "gate"
    gate.mkdir()
    first = subprocess.Popen(
        [sys.executable, str(PAUSE_AT), "--gate", str(gate), "nlpzk.ingest.pipeline:_commit", *args],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(lambda: (gate / "reached").exists() or first.poll() is not None, 120, what="the first ingester's first commit")
    second = _popen(cli_env, *args)

    def second_holds_a_claim() -> bool:
        docs = [registry.maybe_json(cluster.zk, paths.claim("conc", k)) for k in registry.children(cluster.zk, paths.claims("conc"))]
        return any(d and d.get("pid") == second.pid for d in docs) or second.poll() is not None

    wait_for(second_holds_a_claim, 120, what="the second ingester holding a claim")
    (gate / "go").touch()
    procs = [first, second]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    summaries = [json.loads(out) for out, _ in outs]
    assert sum(s["ingested"] for s in summaries) == 16
    assert all(s["ingested"] + s["already_done"] == 16 for s in summaries)
    assert all(s["ingested"] >= 1 for s in summaries), summaries  # both did part of the work

    corpus = Corpus.open("conc", cluster=cluster)
    hashes = _all_hashes(corpus, cluster)
    assert len(hashes) == len(np.unique(hashes)) == 16 * 400 + 5  # every distinct document exactly once
    fresh = testing.cluster_for(zk_server.address, tmp_path / "store2")
    try:
        seq = ingest(fresh, "conc", [str(inputs)], shard_tokens=8000)
    finally:
        fresh.close()
    assert sum(s["documents"] for s in summaries) == seq.documents
    assert sum(s["tokens"] for s in summaries) == seq.tokens == sum(s.tokens for s in corpus.shards)
    assert corpus.verify()["ok"] and corpus.ingesters() == []


def test_an_ingester_whose_session_expired_registers_nothing_more(zk_server, cluster, tmp_path):
    """A paused ingester (session expired, claims possibly taken over) must not commit or publish."""
    from nlpzk.errors import FencedError
    from nlpzk.testing import expire_session

    inputs = tmp_path / "in"
    _make_inputs(inputs, files=3, docs=150)
    state = {"expired": False}

    def progress(event):
        if event.get("files") and not state["expired"]:  # the first input is committed: now expire
            expire_session(cluster.zk, zk_server.address)
            state["expired"] = True

    with pytest.raises(FencedError):
        ingest(cluster, "fenced", [str(inputs)], shard_tokens=5000, progress=progress)
    assert state["expired"] and cluster.watch.connected.wait(15)  # kazoo reconnects with a new session
    corpus = Corpus.open("fenced", cluster=cluster)
    assert len(corpus.inputs()) == 1  # the input committed before the expiry, nothing after
    assert sum(doc["shards"] for doc in corpus.inputs().values()) == len(corpus.shards)
    again = ingest(cluster, "fenced", [str(inputs)], shard_tokens=5000)
    assert (again.already_done, again.ingested) == (1, 2)
    assert corpus.verify()["ok"]


def _spawned_workers(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if ppid == pid and b"spawn_main" in cmd:
            out.append(int(entry))
    return out


def test_a_killed_tokenizer_worker_fails_the_run_cleanly(cluster, cli_env, tmp_path):
    from _helpers import one_line_error

    inputs = tmp_path / "in"
    _make_inputs(inputs, files=4, docs=2500)  # large files: many batches each
    args = ["corpus", "ingest", "wk", str(inputs), "--processes", "2"]
    proc = _popen(cli_env, *args)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _spawned_workers(proc.pid)
        if workers and registry.children(cluster.zk, paths.claims("wk")):
            break
        time.sleep(0.05)
    assert workers, "the worker process never appeared"
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "a tokenizer worker process died while ingesting" in one_line_error(err)
    # nothing half-registered (if nothing was committed at all, the run even removed the corpus it created)
    done = registry.children(cluster.zk, paths.inputs("wk"))
    assert len(done) < 4
    if done:
        corpus = Corpus.open("wk", cluster=cluster)
        assert sum(doc["shards"] for doc in corpus.inputs().values()) == len(corpus.shards)
    rerun = subprocess.run([sys.executable, "-m", "nlpzk", *args], env=cli_env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    corpus = Corpus.open("wk", cluster=cluster)
    assert len(corpus.inputs()) == 4 and corpus.verify()["ok"]


def test_a_killed_parallel_ingest_leaves_no_pool_workers_behind(cli_env, tmp_path):
    """SIGKILL cannot shut a process pool down: the spawned workers (and multiprocessing's
    resource tracker) used to stay alive under init. They now exit with their parent."""

    def children(pid: int) -> list[int]:
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
        return out

    lee = open(datapath("lee_background.cor"), encoding="utf-8").read()
    for i in range(4):
        (tmp_path / f"part-{i}.txt").write_text(lee * 40)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "nlpzk", "corpus", "ingest", "killed", str(tmp_path), "--processes", "3"],
                            env=cli_env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pool = wait_for(lambda: len(children(proc.pid)) >= 3 and children(proc.pid), 60, what="the pool's workers started")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    try:
        assert wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in pool), 20, what="the pool's workers gone")
    finally:  # a failed run must not leave them to the rest of the suite
        for p in pool:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_an_ingest_without_zookeeper_fails_at_the_reconnect_limit_not_twice_that(tmp_path, monkeypatch):
    """With no quorum an ingest's request fails after REQUEST_TIMEOUT (120 s in production); its
    clean-up then asked ZooKeeper whether its claims were still its own, another REQUEST_TIMEOUT:
    `corpus ingest` gave up after 240 s. Without a connection it touches nothing (its claims are
    ephemeral; unregistered shard files are gc's) and reports at once."""
    import threading

    from nlpzk.errors import NlpzkError

    limit = 12.0  # above the command retry's 10 s deadline, as 120 s is
    _make_inputs(tmp_path / "in", files=6, docs=3000)
    server, own = own_server_with_request_timeout(monkeypatch, tmp_path, limit)
    started = threading.Event()
    failure: list[BaseException] = []

    def progress(update):
        if update.get("documents"):
            started.set()

    def run():
        try:
            ingest(own, "c", [str(tmp_path / "in")], shard_tokens=20000, progress=progress)
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            failure.append(exc)

    t = threading.Thread(target=run, daemon=True)
    try:
        t.start()
        assert started.wait(60)
        server.stop()
        t0 = time.monotonic()
        t.join(90)
        elapsed = time.monotonic() - t0
        assert not t.is_alive(), "the ingest hung without ZooKeeper"
        assert failure and not isinstance(failure[0], AssertionError), failure
        from nlpzk.cluster import as_nlpzk_error

        assert isinstance(as_nlpzk_error(failure[0]), NlpzkError) and as_nlpzk_error(failure[0]).exit_code == 3
        assert elapsed < limit + 5, f"the ingest gave up {elapsed:.1f}s after the drop, the limit is {limit:g}s"
    finally:
        own.close()
        server.stop()
