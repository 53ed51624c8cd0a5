"""nlpzk — corpus shards, versioned vocabularies and distributed word2vec, coordinated by ZooKeeper.

The public surface is small and flat::

    import nlpzk
    with nlpzk.Cluster.connect() as cluster:
        corpus = nlpzk.Corpus.open("wiki", cluster=cluster)
        vocab = nlpzk.Vocabulary.open("wiki", tag="stable", cluster=cluster)
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

__all__ = ["__version__", *_LAZY, *_error_names]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'nlpzk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
