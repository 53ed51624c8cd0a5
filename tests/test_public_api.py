"""The small public surface: every name in ``nlpzk.__all__`` resolves, and the README's API works."""

import nlpzk


def test_exported_members_resolve():
    for name in nlpzk.__all__:
        assert getattr(nlpzk, name) is not None, name
    assert {"Cluster", "Corpus", "Vocabulary", "VocabView", "Model", "NlpzkError"} <= set(nlpzk.__all__)


def test_the_journeys_functions_are_top_level_and_stay_so_once_their_submodules_are_imported():
    """Ingest, vocabulary build, training and evaluation were only in submodules (`nlpzk.ingest.ingest`,
    `nlpzk.vocab.build`, ...): `nlpzk` itself could open what exists but not make it. A top-level
    name equal to a submodule's (`nlpzk.ingest`) would be replaced by the module once imported."""
    import importlib
    import pkgutil

    expected = {
        "ingest_corpus": ("nlpzk.ingest", "ingest"),
        "build_vocab": ("nlpzk.vocab", "build"),
        "create_job": ("nlpzk.train", "create_job"),
        "start_local_workers": ("nlpzk.train", "start_local_workers"),
        "wait_for_job": ("nlpzk.train", "wait"),
        "evaluate_model": ("nlpzk.eval", "evaluate_model"),
    }
    submodules = {m.name for m in pkgutil.iter_modules(nlpzk.__path__) if m.name != "__main__"}
    assert not submodules & set(nlpzk.__all__), submodules & set(nlpzk.__all__)
    for name in submodules:
        importlib.import_module(f"nlpzk.{name}")
    for name, (module, attr) in expected.items():
        assert name in nlpzk.__all__, name
        assert getattr(nlpzk, name) is getattr(importlib.import_module(module), attr), name
        assert callable(getattr(nlpzk, name)) and getattr(nlpzk, name).__doc__, name


def test_readme_python_api(cluster):
    from nlpzk.corpus import ShardWriter
    from nlpzk.zk import paths, registry

    corpus = nlpzk.Corpus.create(cluster, "api", {"lang": "en"})
    with ShardWriter(cluster.store, "api", "s-0000") as w:
        for _ in range(3):
            w.add("d", "a.txt", ["the", "cat", "sat"])
    registry.create_json(cluster.zk, paths.shard("api", "s-0000"), w.info.doc())
    from nlpzk import vocab

    vocab.build(cluster, "api", "api", specials=["<unk>"], tags=("latest", "stable"))
    view = nlpzk.Vocabulary.open("api", tag="stable", cluster=cluster)
    assert view.encode(["cat", "dog"]).tolist() == [view["cat"], view.unk_id]
    assert list(nlpzk.Corpus.open("api", cluster=cluster).sentences())[0] == ["the", "cat", "sat"]
    assert corpus.name == "api"

