"""Damaged state in the registry and the store: every command that reads it answers with one
``error:`` line and the exit code of an integrity problem (7), never a traceback, and registers
nothing. (Missing and checksum-failing files are pinned in test_vocab_cli.py, test_models.py and
test_ingest_pipeline.py; this file covers what those do not: undecodable znodes, a directory where a
file should be, corrupt files of a training job.)"""

from __future__ import annotations

import os
import shutil

import pytest

from _helpers import one_line_error
from nlpzk import errors
from nlpzk.zk import paths

pytestmark = pytest.mark.timeout(120)

INTEGRITY = errors.IntegrityError.exit_code


@pytest.fixture
def world(cluster):
    import numpy as np
    from gensim.models import KeyedVectors

    from nlpzk.corpus import Corpus, ShardWriter
    from nlpzk.ingest import tokenizer_options
    from nlpzk.models import register_model
    from nlpzk.vocab import build
    from nlpzk.zk import registry

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


def _as_directory(cluster, rel):
    full = cluster.store.local_path(rel)
    os.remove(full)
    os.mkdir(full)


def _fails_cleanly(result, needle):
    assert result.exit_code == INTEGRITY, (result.exit_code, result.output)
    line = one_line_error(result.stderr)
    assert needle in line, line
    return line


@pytest.mark.parametrize("node", ["corpus", "shard", "vocab-version", "model-version"])
def test_a_znode_that_holds_no_json_document_is_one_error_line(world, cli, node):
    zk = world.zk
    path = {
        "corpus": paths.corpus("c"),
        "shard": paths.shard("c", "s000"),
        "vocab-version": paths.vocab_version("v", 1),
        "model-version": paths.model_version("m", 1),
    }[node]
    zk.set(path, b'{"path": "cut o')
    commands = {
        "corpus": [("corpus", "list"), ("corpus", "show", "c"), ("vocab", "build", "v2", "--corpus", "c"), ("status",)],
        "shard": [("corpus", "verify", "c"), ("vocab", "build", "v2", "--corpus", "c"), ("status",)],
        "vocab-version": [("vocab", "list", "v"), ("vocab", "show", "v"), ("vocab", "lookup", "v", "the")],
        "model-version": [("model", "list"), ("model", "show", "m"), ("model", "similar", "m", "cat")],
    }[node]
    for argv in commands:
        _fails_cleanly(cli(*argv), f"{path} does not hold a valid JSON document")
    assert zk.exists(paths.vocab_version("v2", 1)) is None  # nothing was registered


def test_a_directory_where_a_vocabulary_or_model_file_should_be(world, cli):
    from nlpzk.zk import registry

    vrel = registry.maybe_json(world.zk, paths.vocab_version("v", 1))["path"]
    mrel = registry.maybe_json(world.zk, paths.model_version("m", 1))["path"]
    _as_directory(world, vrel)
    _as_directory(world, mrel)
    for argv in [("vocab", "show", "v"), ("vocab", "lookup", "v", "the"), ("vocab", "export", "v", "--format", "txt")]:
        _fails_cleanly(cli(*argv), f"its file {vrel} cannot be read")
    _fails_cleanly(cli("vocab", "verify", "v"), "versions of 'v' are broken: v1")
    for argv in [("model", "similar", "m", "cat"), ("model", "export", "m", "--out", "-")]:
        _fails_cleanly(cli(*argv), f"model file {mrel} cannot be read")
