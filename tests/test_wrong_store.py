"""A store that is not the cluster's (a mistyped --store / NLPZK_STORE): one line that says the store
looks wrong (exit 10), not that the registered data is damaged (exit 7); a store root that cannot
be a directory is one line too; a read-only command never creates the store it was pointed at."""

from __future__ import annotations

import pytest

from _helpers import one_line_error, small_world
from nlpzk import errors, testing
from nlpzk.corpus import Corpus
from nlpzk.store import Store

pytestmark = pytest.mark.timeout(120)

STORE = errors.StoreError.exit_code

READS = [
    ("corpus", "verify", "c"),
    ("vocab", "lookup", "v", "the"),
    ("vocab", "verify", "v"),
    ("vocab", "build", "v2", "--corpus", "c"),
    ("model", "similar", "m", "cat"),
]


@pytest.fixture
def world(cluster):
    return small_world(cluster)


@pytest.mark.parametrize("argv", READS, ids=lambda a: "-".join(a[:2]))
@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_a_read_on_a_store_that_is_not_the_clusters_says_the_store_looks_wrong(world, cli, tmp_path, argv, kind):
    """It said `store file ... is missing` (exit 7), as if the data were damaged, and created the
    mistyped store directory."""
    wrong = tmp_path / "wrong"
    if kind == "empty":
        wrong.mkdir()
    r = cli("--store", str(wrong), *argv)
    assert r.exit_code == STORE, (r.exit_code, r.output)
    line = one_line_error(r.stderr)
    assert f"store {wrong} " in line and "none of the files registered in ZooKeeper" in line, line
    assert "NLPZK_STORE" in line and "nlpzk config show" in line, line
    assert wrong.exists() == (kind == "empty")  # a read does not create the store


@pytest.mark.parametrize("below", [False, True])
def test_a_store_root_that_is_a_file_is_one_line_with_a_hint(world, cli, tmp_path, below):
    """It said `store error while creating the store at X: [Errno 17] File exists` with no hint."""
    afile = tmp_path / "afile"
    afile.write_text("not a store\n")
    root = afile / "store" if below else afile
    r = cli("--store", str(root), "corpus", "verify", "c")
    assert r.exit_code == STORE, (r.exit_code, r.output)
    line = one_line_error(r.stderr)
    assert str(root) in line and "a file" in line and "point --store / NLPZK_STORE at a directory" in line, line
    with pytest.raises(errors.StoreError, match="is a file"):
        Store(str(root))


def test_a_file_missing_from_the_right_store_is_still_damage_and_names_its_verify_command(world):
    """A shard missing from the cluster's own store is an integrity error whose hint names the
    command that checks it (it said `run the matching verify command`)."""
    corpus = Corpus.open("c", cluster=world)
    shard = corpus.shards[0]
    world.store.delete(shard.path)
    with pytest.raises(errors.IntegrityError) as exc:
        list(corpus.sentences(shard))
    assert not isinstance(exc.value, errors.StoreError)
    assert exc.value.line() == f"store file {shard.path} is missing — check it with: nlpzk corpus verify c"


def test_the_library_on_a_missing_store_raises_wrong_store_and_creates_nothing(world, config, tmp_path):
    wrong = tmp_path / "nowhere"
    with testing.Cluster.connect(config.with_overrides(store=str(wrong))) as other:
        corpus = Corpus.open("c", cluster=other)
        with pytest.raises(errors.WrongStoreError, match="does not exist"):
            list(corpus.sentences())
    assert not wrong.exists()
