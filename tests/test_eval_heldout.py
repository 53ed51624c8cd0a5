"""Held-out loss spread over worker processes through fenced shard leases, merged to one number."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from nlpzk import testing
from nlpzk.errors import FencedError, InvalidInputError
from nlpzk.eval import heldout
from nlpzk.models import model_doc, register_model
from nlpzk.zk import paths, registry, workset
from test_models_support import run_tiny_job, vocab_and_vectors


@pytest.fixture
def job_model(cluster, config):
    view = run_tiny_job(cluster, config)
    from nlpzk.train import final_vectors

    kv, _ = final_vectors(cluster, "j1")
    register_model(cluster, "lee", kv, vocab_name="lee", vocab_version=view.version, job="j1")
    return kv


def test_shard_loss_is_the_negative_sampling_objective():
    rng = np.random.default_rng(0)
    syn0, syn1 = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    index = {w: i for i, w in enumerate("abcdef")}
    sentences = [["a", "b", "zz", "c"], ["d", "e"], ["f"]]
    got = heldout.shard_loss(sentences, index, syn0, syn1, heldout.noise_table(np.ones(6)), window=2, negative=0, seed=1, shard_id="s")
    # by hand: pairs within distance 2 after dropping the unknown word, both directions
    pairs = [("a", "b"), ("a", "c"), ("b", "c"), ("d", "e")]
    want = 0.0
    for x, y in pairs:
        for ctx, ctr in ((x, y), (y, x)):
            want += np.logaddexp(0, -syn0[index[ctx]] @ syn1[index[ctr]])
    assert got["pairs"] == 8 and got["words"] == 7 and got["oov"] == 1
    assert got["loss"] == pytest.approx(want, rel=1e-12)
    with_noise = heldout.shard_loss(sentences, index, syn0, syn1, heldout.noise_table(np.ones(6)), window=2, negative=3, seed=1, shard_id="s")
    assert with_noise["loss"] > got["loss"]
    again = heldout.shard_loss(sentences, index, syn0, syn1, heldout.noise_table(np.ones(6)), window=2, negative=3, seed=1, shard_id="s")
    assert again == with_noise  # deterministic per shard


def test_two_worker_processes_give_the_in_process_number_and_it_is_stored(cluster, job_model, cli):
    alone = heldout.evaluate_heldout(cluster, "lee", workers=0, save=False)
    assert alone["shards"] == 4 and alone["pairs"] > 0 and alone["loss_per_pair"] > 0 and alone["corpus"] == "lee"

    res = cli("model", "eval", "lee", "--only", "heldout", "--workers", "2", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["models"][0]["scores"]["heldout"]
    assert got["loss_per_pair"] == alone["loss_per_pair"] and got["pairs"] == alone["pairs"]
    assert 1 <= got["workers"] <= 2
    # the id that workers on other machines join by is said (on stderr: stdout stays one JSON document)
    assert re.search(r"held-out evaluation (e-[0-9a-f]{12}): more workers can join with: nlpzk model eval-worker lee \1$", res.stderr, re.M), res.stderr
    stored = model_doc(cluster, "lee")["eval"]["heldout"]
    assert stored["loss_per_pair"] == round(alone["loss_per_pair"], 4) and stored["shards"] == 4
    assert registry.children(cluster.zk, paths.model_evals("lee")) == []  # cleaned up


def test_a_model_deleted_while_its_evaluation_starts_does_not_come_back(cluster, job_model, monkeypatch):
    """The work set's parent was made with ensure_path: a model deleted between `model eval
    --workers` opening it and creating the evaluation came back as an empty /models/<name>."""
    from nlpzk.errors import NotFoundError
    from nlpzk.models import delete_model

    real_open = heldout.Corpus.open

    def open_after_a_delete(*args, **kwargs):  # the delete lands while the evaluation is being set up
        delete_model(cluster, "lee")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(heldout.Corpus, "open", open_after_a_delete)
    with pytest.raises(NotFoundError, match="model 'lee' was deleted while its evaluation started"):
        heldout.start(cluster, "lee")
    assert cluster.zk.exists(paths.model("lee")) is None


def test_a_worker_whose_session_expired_cannot_commit_and_its_shard_is_redone(cluster, config, zk_server, job_model):
    eval_id, _ = heldout.start(cluster, "lee")
    base = paths.model_eval("lee", eval_id)
    paused = testing.Cluster.connect(config)
    try:
        held, _ = workset.lease_next(paused.zk, base, "paused")
        testing.expire_session(paused.zk, zk_server.address)
    finally:
        paused.close()
    with pytest.raises(FencedError):
        workset.commit(cluster.zk, base, held, {"loss": 0.0, "pairs": 1, "words": 1, "oov": 0, "worker": "paused"})
    report = heldout.work(cluster, "lee", eval_id, owner="w2")
    assert report["shards"] == 4  # including the one the paused worker had leased
    merged = heldout.merge(cluster, "lee", eval_id)
    assert merged["workers"] == 1 and merged["loss_per_pair"] > 0
    workset.delete(cluster.zk, base)


def test_a_shard_replaced_since_it_was_registered_is_not_scored(cluster, job_model):
    import shutil

    from nlpzk.corpus import Corpus
    from nlpzk.errors import IntegrityError

    a, b = Corpus.open("lee", cluster=cluster).shards[:2]
    # a valid shard of the same schema in another's place: it parses; only its sha256 tells
    shutil.copyfile(cluster.store.local_path(b.path), cluster.store.local_path(a.path))
    with pytest.raises(IntegrityError, match=f"shard {a.id} .* fails its checksum"):
        heldout.evaluate_heldout(cluster, "lee", workers=0, save=False)


def test_held_out_loss_needs_a_job_trained_model(cluster):
    view, kv = vocab_and_vectors(cluster)
    register_model(cluster, "plain", kv, vocab_name="lee", vocab_version=view.version)
    with pytest.raises(InvalidInputError, match="was not registered by a training job"):
        heldout.evaluate_heldout(cluster, "plain", workers=0)
