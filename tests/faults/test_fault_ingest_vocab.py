"""Ingest and vocabulary builds under faults on the real 3-server ensemble, with real ``nlpzk``
processes: an ingest SIGKILLed mid-file and re-run, a vocab build killed between writing its table
and registering it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from gensim.test.utils import datapath

from nlpzk import gc, testing, vocab
from nlpzk.corpus import Corpus
from nlpzk.ingest import ingest
from nlpzk.store import is_tmp, naming
from nlpzk.zk import paths, registry

from _faults import ROOT, assert_registry_matches_store, nlpzk_process, nlpzk_process_stopping_at, process_state, stop_leader_while, wait_for
from _train_helpers import lee_sentences, make_corpus

pytestmark = [pytest.mark.ensemble, pytest.mark.timeout(180)]

LEE = [l.strip() for l in open(datapath("lee_background.cor"), encoding="utf-8") if l.strip()]


def _inputs(d):
    """A small file (committed first) and a big one (long enough to be killed in the middle of)."""
    d.mkdir()
    (d / "part-00.txt").write_text("\n".join(f"Small {i}. " + LEE[i % len(LEE)] for i in range(60)) + "\n")
    (d / "part-01.txt").write_text("\n".join(f"Big {i}. " + LEE[i % len(LEE)] for i in range(2500)) + "\n")
    return d


def _fingerprint(corpus: Corpus):
    return [(s.id, s.sha256, s.documents, s.sentences, s.tokens) for s in corpus.shards]


def _totals(corpus: Corpus):
    return {k: v for k, v in corpus.summary().items() if k in ("inputs", "shards", "documents", "sentences", "tokens", "bytes")}


def test_ingest_sigkilled_mid_file_then_rerun_equals_a_clean_run(ensemble, fault_cluster, fault_env, tmp_path, record_recovery):
    src = _inputs(tmp_path / "in")
    args = ["corpus", "ingest", "c", str(src), "--shard-tokens", "4000"]
    store = fault_cluster.store

    def shard_files():
        return [f for f in store.list(naming.corpus_dir("c") + "/shards") if not is_tmp(f)]

    def mid_file():
        # the small input is committed and the big one has written shards that are not registered yet
        done = registry.children(fault_cluster.zk, paths.inputs("c"))
        registered = registry.children(fault_cluster.zk, paths.shards("c"))
        return len(done) == 1 and len(shard_files()) >= len(registered) + 2

    proc = nlpzk_process(fault_env, *args, log=tmp_path / "killed.log")
    try:
        wait_for(mid_file, 120, every=0.005, what="the ingest in the middle of the big file")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    corpus = Corpus.open("c", cluster=fault_cluster)
    assert len(corpus.inputs()) == 1, "the kill must land before the big file commits"
    registered = {s.path for s in corpus.shards}
    unregistered = [f for f in shard_files() if f not in registered]
    assert unregistered, "the big file had written shards"
    report = corpus.verify()  # nothing half-registered; the killed run's files are reported as stray
    assert report["ok"] and set(unregistered) <= set(report["stray"]), report
    assert_registry_matches_store(fault_cluster, garbage_ok=lambda g: g.path.startswith("corpora/c/"))

    t0 = time.monotonic()
    rerun = subprocess.run([sys.executable, "-m", "nlpzk", *args, "--json"], env=fault_env, cwd=ROOT, capture_output=True, text=True, timeout=150)
    record_recovery("ingest SIGKILL mid-file -> re-run finished (2,500 documents)", time.monotonic() - t0)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["already_done"] == 1 and summary["ingested"] == 1

    with testing.cluster_for(ensemble.hosts, tmp_path / "clean-store") as clean:
        ingest(clean, "c", [str(src)], shard_tokens=4000)
        expected = Corpus.open("c", cluster=clean)
        want_shards, want_totals = _fingerprint(expected), _totals(expected)
        assert_registry_matches_store(clean)
    after = Corpus.open("c", cluster=fault_cluster)
    assert _fingerprint(after) == want_shards
    assert _totals(after) == want_totals
    # the re-run rewrote the killed run's shard names; only its unfinished temporary file may be left
    leftovers = assert_registry_matches_store(fault_cluster, garbage_ok=lambda g: g.reason == "unfinished write")
    gc.collect(fault_cluster, older_than=0)
    assert_registry_matches_store(fault_cluster)
    assert all(is_tmp(g.path) for g in leftovers)


def test_vocab_build_killed_between_writing_and_registering(fault_cluster, fault_env, tmp_path):
    make_corpus(fault_cluster, "lee", 3, lee_sentences())
    # the real `nlpzk vocab build`, stopped on entering the registration (after the table is written)
    proc = nlpzk_process_stopping_at(fault_env, "nlpzk.zk.registry:publish_version", "vocab", "build", "v", "--corpus", "lee", log=tmp_path / "build.log")
    try:
        wait_for(lambda: process_state(proc.pid) == "T" or proc.poll() is not None, 120, what="the build reaching its registration")
        assert proc.poll() is None, (tmp_path / "build.log").read_text()
        tables = [f for f in fault_cluster.store.list(naming.vocab_dir("v")) if not is_tmp(f)]
        assert len(tables) == 1 and tables[0].startswith("vocab/v/v0000000001-"), tables
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert registry.children(fault_cluster.zk, paths.vocab_versions("v")) == []  # no version registered
    garbage = assert_registry_matches_store(fault_cluster, garbage_ok=lambda g: g.path in tables)
    assert [(g.path, g.reason) for g in garbage] == [(tables[0], "not registered")]
    # `nlpzk gc` reports the stray table, then deletes it
    dry = subprocess.run([sys.executable, "-m", "nlpzk", "gc", "--older-than", "0", "--dry-run", "--json"], env=fault_env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and [f["path"] for f in json.loads(dry.stdout)["files"]] == tables, dry.stdout + dry.stderr
    run = subprocess.run([sys.executable, "-m", "nlpzk", "gc", "--older-than", "0", "--json"], env=fault_env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and [f["path"] for f in json.loads(run.stdout)["files"]] == tables
    assert not fault_cluster.store.exists(tables[0])
    assert_registry_matches_store(fault_cluster)

    # the interrupted build burned nothing: building again registers v1
    view = vocab.build(fault_cluster, "v", "lee")
    assert view.version == 1
    assert_registry_matches_store(fault_cluster)


def test_ingest_rides_out_a_leader_election(ensemble, fault_cluster, fault_env, tmp_path):
    """The leader stopped while an ingest commits its inputs: the ingest finishes (a commit whose
    connection dropped is tried again once it is back) with what a clean run registers."""
    src = _inputs(tmp_path / "in")
    args = ["corpus", "ingest", "e", str(src), "--shard-tokens", "4000", "--json"]
    log = tmp_path / "ingest.log"
    proc = nlpzk_process(fault_env, *args, log=log)
    # the small input committed, the big one on its way: the election lands among its commits
    rc = stop_leader_while(ensemble, proc, lambda: len(registry.children(fault_cluster.zk, paths.inputs("e"))) >= 1, timeout=150)
    assert rc == 0, log.read_text()[-2000:]
    ensemble.wait_for_leader()
    with testing.cluster_for(ensemble.hosts, tmp_path / "clean-store") as clean:
        ingest(clean, "e", [str(src)], shard_tokens=4000)
        expected = Corpus.open("e", cluster=clean)
        want_shards, want_totals = _fingerprint(expected), _totals(expected)
    after = Corpus.open("e", cluster=fault_cluster)
    assert _fingerprint(after) == want_shards and _totals(after) == want_totals
