"""The small public surface: every name in ``nlpzk.__all__`` resolves, and the README's API works."""

import re
import subprocess
import sys
from pathlib import Path

import nlpzk
from nlpzk import testing

ROOT = Path(__file__).resolve().parent.parent


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


def readme_journey() -> str:
    """The code block of the README's "From Python: the whole journey" section, exactly as printed."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.partition("\n## From Python: the whole journey\n")[2].partition("\n## ")[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.M | re.S)
    assert len(blocks) == 1, "the section has one ```python block"
    return blocks[0]


def test_the_readmes_python_journey_runs_as_printed(config, tmp_path):
    """Nothing showed, or checked, that the library alone does the journey the CLI does: ingest,
    vocabulary, training with local workers, waiting for the job, opening its model. The README's
    snippet runs here unchanged, from the repository root, on this test's ZooKeeper and store."""
    env = testing.env_for(config, tmp_path / "state")
    res = subprocess.run([sys.executable, "-c", readme_journey()], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    rounds = re.fullmatch(r"round 0 of (\d+)", lines[0])
    assert rounds and lines[-3] == f"round {rounds[1]} of {rounds[1]}", res.stdout
    assert re.fullmatch(r"sample@v1 trained with \('sample', 1\) \[('\w+', ){2}'\w+'\]", lines[-2]), res.stdout
    assert lines[-1] == "sample@v1 evaluated", res.stdout
    with testing.Cluster.connect(config) as cluster:
        model = nlpzk.Model.open("sample:latest", cluster=cluster)
        assert (model.version, model.doc["job"], model.vocab_ref) == (1, "sample-w2v-v1", ("sample", 1))
        assert model.doc["eval"], "evaluate_model stored its scores"
