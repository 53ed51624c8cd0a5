"""nlpzk — corpus shards, versioned vocabularies and distributed word2vec, coordinated by ZooKeeper.

The public surface is small and flat: the handles, and the functions of the journey from text to
vectors (the README's "From Python: the whole journey" runs them end to end)::

    import nlpzk
    with nlpzk.Cluster.connect() as cluster:
        nlpzk.ingest_corpus(cluster, "wiki", ["./texts/"])
        nlpzk.build_vocab(cluster, "wiki", "wiki", min_count=5, specials=["<unk>"])
        nlpzk.create_job(cluster, "w2v", "wiki", "wiki:latest", model="wiki")
        procs = nlpzk.start_local_workers(cluster.config, "w2v", workers=2)
        done = nlpzk.wait_for_job(cluster, "w2v", workers=procs)
        model = nlpzk.Model.open("wiki", version=done["model_version"], cluster=cluster)
        vocab = nlpzk.Vocabulary.open("wiki", tag="latest", cluster=cluster)

Each function is its submodule's (``nlpzk.ingest.ingest``, ``nlpzk.vocab.build``,
``nlpzk.train.create_job`` / ``start_local_workers`` / ``wait``, ``nlpzk.eval.evaluate_model``),
under a name that says what it does next to the others and is no submodule's name: ``nlpzk.ingest``
is the package, and would replace a function of that name as soon as anything imports it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _error_names

__version__ = "0.1.0"

# Imported lazily so `import nlpzk` (and the CLI's start-up) does not pay for gensim/spaCy/kazoo.
_LAZY = {
    "Config": ".config",
    "Cluster": ".cluster",
    "Store": ".store",
    "Corpus": ".corpus",
    "Vocabulary": ".vocab",
    "VocabView": ".vocab",
    "Model": ".models",
}

# The journey's functions, by (submodule, name there); same lazy import.
_FUNCTIONS = {
    "ingest_corpus": (".ingest", "ingest"),
    "build_vocab": (".vocab", "build"),
    "create_job": (".train", "create_job"),
    "start_local_workers": (".train", "start_local_workers"),
    "wait_for_job": (".train", "wait"),
    "evaluate_model": (".eval", "evaluate_model"),
}

__all__ = ["__version__", *_LAZY, *_FUNCTIONS, *_error_names]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _FUNCTIONS:
        module, attr = _FUNCTIONS[name]
        return getattr(importlib.import_module(module, __name__), attr)
    raise AttributeError(f"module 'nlpzk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
