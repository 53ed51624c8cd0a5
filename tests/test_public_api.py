"""The small public surface: every name in ``nlpzk.__all__`` resolves, and the README's API works."""

import nlpzk


def test_exported_members_resolve():
    for name in nlpzk.__all__:
        assert getattr(nlpzk, name) is not None, name
    assert {"Cluster", "Corpus", "Vocabulary", "VocabView", "Model", "NlpzkError"} <= set(nlpzk.__all__)


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
