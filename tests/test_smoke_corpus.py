from nlpzk.corpus import Corpus, ShardWriter
from nlpzk.zk import paths, registry


def test_shard_write_register_read(cluster):
    corpus = Corpus.create(cluster, "c1", {"lang": "en"})
    with ShardWriter(cluster.store, "c1", "s-00000") as w:
        w.add("d1", "a.txt", ["Hello", "world", "."])
        w.add("d1", "a.txt", ["Bye", "."])
    registry.create_json(cluster.zk, paths.shard("c1", "s-00000"), w.info.doc())
    assert [s.id for s in corpus.shards] == ["s-00000"]
    assert list(corpus.sentences()) == [["Hello", "world", "."], ["Bye", "."]]
    assert w.info.tokens == 5 and w.info.sentences == 2 and w.info.documents == 1
    cluster.store.verify(w.info.path, w.info.sha256)
