"""The Python API's edge: a public call made from outside nlpzk raises NlpzkError (with a line and a
hint), never kazoo's or the OS's exceptions; the same calls made inside nlpzk keep kazoo's (its code
uses them for control flow). Real ZooKeeper servers throughout."""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.exceptions import ConnectionClosedError

import nlpzk
from _helpers import own_server_with_request_timeout
from nlpzk import status, testing, train
from nlpzk import vocab as vocab_api
from nlpzk.corpus import list_corpora
from nlpzk.errors import ZkUnavailableError
from nlpzk.models import list_models, register_model
from test_models_support import vocab_and_vectors


def _entry_points(cluster, corpus, view, model):
    """Every public way in, as a user's script reaches it (name -> call)."""
    return {
        "Corpus.open": lambda: nlpzk.Corpus.open(corpus.name, cluster=cluster),
        "Corpus.shards": lambda: corpus.shards,
        "Corpus.summary": lambda: corpus.summary(),
        "Corpus.sentences": lambda: next(iter(corpus.sentences())),
        "list_corpora": lambda: list_corpora(cluster),
        "Vocabulary.open": lambda: nlpzk.Vocabulary.open(view.name, cluster=cluster),
        "Vocabulary.names": lambda: nlpzk.Vocabulary.names(cluster=cluster),
        "vocab.versions": lambda: vocab_api.versions(cluster, view.name),
        "vocab.tag": lambda: vocab_api.tag(cluster, view.name, view.version, "stable"),
        "Model.open": lambda: nlpzk.Model.open(model, cluster=cluster),
        "list_models": lambda: list_models(cluster),
        "train.status": lambda: train.status(cluster, "nojob"),
        "train.list_jobs": lambda: train.list_jobs(cluster),
        "status.collect": lambda: status.collect(cluster),
    }


def test_public_calls_on_a_closed_cluster_raise_zk_unavailable_saying_it_is_closed(config):
    # before: kazoo's ConnectionClosedError ("Connection has been closed") from every one of them
    user = testing.Cluster.connect(config)
    view, kv = vocab_and_vectors(user)
    register_model(user, "m", kv, vocab_name=view.name, vocab_version=view.version, job=None)
    corpus = nlpzk.Corpus.open(view.name, cluster=user)
    user.close()
    for name, call in _entry_points(user, corpus, view, "m").items():
        with pytest.raises(ZkUnavailableError, match="this cluster is closed") as info:
            call()
        assert "Cluster.connect()" in info.value.line(), name
        assert isinstance(info.value.__cause__, ConnectionClosedError), name  # kept for debugging
    # what was loaded before still answers
    assert view.encode(["the"]).tolist() == [view["the"]]


def test_public_calls_without_zookeeper_raise_zk_unavailable_and_follow_does_not_hang(tmp_path, monkeypatch):
    server, own = own_server_with_request_timeout(monkeypatch, tmp_path, 1.5)
    try:
        view, kv = vocab_and_vectors(own)
        register_model(own, "m", kv, vocab_name=view.name, vocab_version=view.version, job=None)
        corpus = nlpzk.Corpus.open(view.name, cluster=own)
        server.stop()
        calls = _entry_points(own, corpus, view, "m")
        for name in ("Corpus.open", "Corpus.sentences", "Vocabulary.open", "Model.open", "train.status", "status.collect"):
            with pytest.raises(ZkUnavailableError, match="lost the connection to ZooKeeper"):  # before: OperationTimeoutError
                calls[name]()
        # before: follow() blocked until ZooKeeper came back (kazoo's DataWatch retries its first read for ever)
        done = threading.Event()
        t = threading.Thread(target=lambda: (view.follow("latest"), done.set()), daemon=True)
        t0 = time.monotonic()
        t.start()
        assert done.wait(10), "follow() hung while ZooKeeper was unreachable"
        assert time.monotonic() - t0 < 5 and view.following == "latest" and view.version == 1
        view.unfollow()
    finally:
        own.close()
        server.stop()


def test_inside_nlpzk_kazoo_errors_stay_raw_and_outside_they_are_translated(cluster, config):
    """The edge is where a call leaves the package: nlpzk's own code calling a public function still
    sees kazoo's exceptions (a worker waits out a ConnectionLoss instead of failing)."""
    from nlpzk.cluster import public

    closed = testing.Cluster.connect(config)
    closed.close()

    # the same call, from a module of nlpzk and from here
    inside = {"__name__": "nlpzk.some_module", "nlpzk": nlpzk, "closed": closed}
    exec("def call():\n    return nlpzk.Corpus.open('nope', cluster=closed)", inside)
    with pytest.raises(ConnectionClosedError):
        inside["call"]()
    with pytest.raises(ZkUnavailableError):
        nlpzk.Corpus.open("nope", cluster=closed)

    @public
    def items():
        yield 1
        raise ConnectionClosedError("Connection has been closed")

    it = items()
    assert next(it) == 1
    with pytest.raises(ZkUnavailableError, match="this cluster is closed"):
        next(it)
