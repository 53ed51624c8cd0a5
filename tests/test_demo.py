"""The README's first command: `nlpzk demo` end to end on the embedded ZooKeeper, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from _helpers import ROOT
from nlpzk.zk.server import free_port


def test_demo_runs_end_to_end_twice_on_the_embedded_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NLPZK_")}
    env.update(NLPZK_STATE_DIR=str(tmp_path / "state"), NLPZK_STORE=str(tmp_path / "store"), NLPZK_ZK_PORT=str(free_port()))

    def nlpzk(*args):
        return subprocess.run([sys.executable, "-m", "nlpzk", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    try:
        first = nlpzk("demo", "--epochs", "2")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "started the embedded ZooKeeper" in first.stderr
        for step in ("1/5 ingest", "2/5 build vocabulary", "3/5 train word2vec", "4/5 evaluate model", "5/5 vocabulary lookups"):
            assert step in first.stdout, first.stdout
        assert "registered as model sample@v1" in first.stdout
        assert "'cat': id " in first.stdout and "nearest: " in first.stdout

        second = nlpzk("demo", "--epochs", "2")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "3 already done" in second.stdout and "sample@v2" in second.stdout
        assert "registered as model sample@v2" in second.stdout

        (row,) = [m for m in json.loads(nlpzk("model", "list", "--json").stdout) if m["name"] == "sample"]
        vocab_v2 = json.loads(nlpzk("vocab", "show", "sample@v2", "--json").stdout)
        assert (row["versions"], row["latest"], row["vocab"]) == (2, 2, {"name": "sample", "version": 2, "sha256": vocab_v2["sha256"]})
        # the second vocabulary is a child of the first: every id stays
        v1 = json.loads(nlpzk("vocab", "lookup", "sample@v1", "cat", "oven", "the", "--json").stdout)["results"]
        v2 = json.loads(nlpzk("vocab", "lookup", "sample@v2", "cat", "oven", "the", "--json").stdout)["results"]
        assert [r["id"] for r in v1] == [r["id"] for r in v2] and all(r["id"] >= 0 for r in v1)
    finally:
        nlpzk("zk", "stop")


def test_demo_refuses_more_workers_than_the_machine_runs_before_doing_anything(cluster, cli, monkeypatch):
    """--workers is capped at 16, but train's limit is 4 per core: on a small machine the demo
    ingested, built and created its job, then failed starting the workers."""
    from nlpzk.zk import paths, registry

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    res = cli("demo", "--workers", "5", "--epochs", "1")
    assert res.exit_code == 5 and "--workers 5 is more local worker processes than this machine runs: at most 4" in res.output, res.output
    assert registry.children(cluster.zk, paths.CORPORA) == [] and registry.children(cluster.zk, paths.JOBS) == []
