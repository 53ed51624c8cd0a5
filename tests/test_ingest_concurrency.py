"""Real processes: SIGKILL mid-run then re-run, and two ingesters on the same inputs at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from gensim.test.utils import datapath

from nlpzk import testing
from nlpzk.corpus import Corpus
from nlpzk.ingest import ingest
from nlpzk.ingest.pipeline import read_hashes
from nlpzk.zk import paths, registry

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
    _make_inputs(inputs, files=6, docs=60, shared=5)
    args = ["corpus", "ingest", "conc", str(inputs), "--shard-tokens", "8000", "--json"]
    procs = [_popen(cli_env, *args) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    summaries = [json.loads(out) for out, _ in outs]
    assert sum(s["ingested"] for s in summaries) == 6
    assert all(s["ingested"] + s["already_done"] == 6 for s in summaries)

    corpus = Corpus.open("conc", cluster=cluster)
    hashes = _all_hashes(corpus, cluster)
    assert len(hashes) == len(np.unique(hashes)) == 6 * 60 + 5  # every distinct document exactly once
    texts = [t for t in corpus.read(corpus.shards[0]).column("doc_id").to_pylist()]
    assert texts  # shards are readable
    fresh = testing.cluster_for(zk_server.address, tmp_path / "store2")
    try:
        seq = ingest(fresh, "conc", [str(inputs)], shard_tokens=8000)
    finally:
        fresh.close()
    assert sum(s["documents"] for s in summaries) == seq.documents
    assert sum(s["tokens"] for s in summaries) == seq.tokens == sum(s.tokens for s in corpus.shards)
    assert corpus.verify()["ok"] and corpus.ingesters() == []
