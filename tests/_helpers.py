"""Assertion helpers shared by the tests."""

from __future__ import annotations

import subprocess
import time
import sys
from pathlib import Path
from typing import Any, Callable

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


def one_line_error(result_stderr: str) -> str:
    """Assert helper: stderr is exactly one 'error: ...' line and no traceback; returns it."""
    lines = [l for l in result_stderr.strip().splitlines() if l.strip()]
    assert "Traceback" not in result_stderr, result_stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result_stderr
    return lines[0]


class Cli:
    """Runs ``nlpzk`` in-process (CliRunner) or as a real subprocess (``run_process``)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None):
        from cli.main import app

        return self.runner.invoke(app, list(args), env=self.env, input=input, catch_exceptions=False)

    def run_process(self, *args: str, timeout: float = 300, input: str | None = None, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "nlpzk", *args], env=self.env, capture_output=True, text=True, timeout=timeout, input=input, cwd=kw.pop("cwd", ROOT), **kw
        )


def small_world(cluster):
    """Corpus ``c`` (two small shards), vocabulary ``v`` v1 built on it and model ``m`` v1 (random
    4-dimensional vectors of v's tokens): one registered file of every kind."""
    import numpy as np
    from gensim.models import KeyedVectors

    from nlpzk.corpus import Corpus, ShardWriter
    from nlpzk.ingest import tokenizer_options
    from nlpzk.models import register_model
    from nlpzk.vocab import build
    from nlpzk.zk import paths, registry

    Corpus.create(cluster, "c", tokenizer_options())
    for s in range(2):
        with ShardWriter(cluster.store, "c", f"s{s:03d}") as w:
            for i in range(20):
                w.add(f"d{s}-{i}", "x.txt", ["the", "cat", "sat", f"w{i % 5}"])
        registry.create_json(cluster.zk, paths.shard("c", w.info.id), w.info.doc())
    view = build(cluster, "v", "c", min_count=1)
    kv = KeyedVectors(4, count=0)
    kv.add_vectors(view.tokens.to_pylist(), np.random.default_rng(0).normal(size=(len(view), 4)).astype(np.float32))
    register_model(cluster, "m", kv, vocab_name="v", vocab_version=view.version, job=None, spec={"dim": 4})
    return cluster


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, every: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"{what} not reached within {timeout:g}s")


def stop_server_at_next_commit(monkeypatch, zk, server) -> list[float]:
    """Make every transaction of kazoo client ``zk`` stop ``server`` right before it commits (the
    quorum lost at the worst moment: the outcome is unknown to the caller). Returns the list each
    stop's ``time.monotonic()`` is appended to."""
    plain = zk.transaction
    stopped: list[float] = []

    def transaction():
        tx = plain()
        commit = tx.commit

        def stop_then_commit():
            server.stop()
            stopped.append(time.monotonic())
            return commit()

        tx.commit = stop_then_commit
        return tx

    monkeypatch.setattr(zk, "transaction", transaction)
    return stopped


def own_server_with_request_timeout(monkeypatch, tmp_path, limit: float):
    """A standalone ZooKeeper of the test's own (the test stops it to lose the quorum) and a cluster
    on it whose requests wait at most ``limit`` seconds for a reply (120 s in production).
    Returns ``(server, cluster)``; the caller closes both."""
    from nlpzk import testing
    from nlpzk.zk import client as zk_client

    monkeypatch.setattr(zk_client, "REQUEST_TIMEOUT", limit)
    server = testing.start_standalone(tmp_path / "zk")
    return server, testing.Cluster.connect(testing.config_for(server.address, tmp_path / "store", session_timeout=10.0))
