"""The store filling up mid-write, or read-only, under a real ``nlpzk corpus ingest`` process on the
3-server ensemble: one clear error line, a non-zero exit, and no partial shard registered.

The store is a small tmpfs mounted by the test (root ignores file modes, so a read-only *mount* is
what makes it read-only); it is unmounted in a ``finally``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
from gensim.test.utils import datapath

from nlpzk import testing
from nlpzk.corpus import Corpus
from nlpzk.zk import paths, registry

from _faults import ROOT, assert_registry_matches_store
from _helpers import one_line_error

pytestmark = [pytest.mark.ensemble, pytest.mark.timeout(120)]

LEE = [l.strip() for l in open(datapath("lee_background.cor"), encoding="utf-8") if l.strip()]


@contextlib.contextmanager
def _tmpfs(where, size: str):
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _env_and_cluster(ensemble, store, tmp_path):
    config = testing.config_for(ensemble.hosts, store, session_timeout=3.0)
    return testing.env_for(config, tmp_path / "state"), testing.Cluster.connect(config)


def _ingest(env, *args):
    return subprocess.run([sys.executable, "-m", "nlpzk", "corpus", "ingest", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _write(path, prefix, docs):
    path.write_text("\n".join(f"{prefix} {i}. " + LEE[i % len(LEE)] for i in range(docs)) + "\n")
    return path


def test_store_full_mid_write(ensemble, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _write(src / "a-small.txt", "Small", 30)
    _write(src / "b-big.txt", "Big", 6000)  # several MB of shards: cannot fit
    with _tmpfs(tmp_path / "store", "400k") as store:
        env, cluster = _env_and_cluster(ensemble, store, tmp_path)
        try:
            res = _ingest(env, "c", str(src), "--shard-tokens", "3000")
            assert res.returncode == 10, res.stderr  # StoreError
            line = one_line_error(res.stderr)
            assert "store is full while writing corpora/c/" in line and "nothing was registered" in line, line
            corpus = Corpus.open("c", cluster=cluster)
            done = corpus.inputs()
            assert [d["source"].rsplit("/", 1)[-1] for d in done.values()] == ["a-small.txt"]  # the small file fits and is kept
            assert {s.id.rsplit("-", 1)[0] for s in corpus.shards} == set(done)  # nothing of the big one
            assert registry.children(cluster.zk, paths.claims("c")) == []
            assert_registry_matches_store(cluster)  # the failed run removed its unregistered files
        finally:
            cluster.close()


def test_store_read_only(ensemble, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    first = _write(src / "first.txt", "First", 40)
    with _tmpfs(tmp_path / "store", "4m") as store:
        env, cluster = _env_and_cluster(ensemble, store, tmp_path)
        try:
            assert _ingest(env, "c", str(first)).returncode == 0
            before = [(s.id, s.sha256) for s in Corpus.open("c", cluster=cluster).shards]
            subprocess.run(["mount", "-o", "remount,ro", str(store)], check=True)
            res = _ingest(env, "c", str(_write(src / "second.txt", "Second", 40)))
            assert res.returncode == 10, res.stderr
            line = one_line_error(res.stderr)
            assert "store is not writable while" in line and "Read-only file system" in line, line
            corpus = Corpus.open("c", cluster=cluster)
            assert [(s.id, s.sha256) for s in corpus.shards] == before and len(corpus.inputs()) == 1
            assert registry.children(cluster.zk, paths.claims("c")) == []
            assert_registry_matches_store(cluster)
        finally:
            cluster.close()
