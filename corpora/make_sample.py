"""Regenerate the sample corpus in ``corpora/sample/`` (deterministic; public domain, see README.md).

    .venv/bin/python corpora/make_sample.py

Sentences come from small per-topic grammars, so words of one topic share contexts: enough for
word2vec to place ``cat`` near ``dog`` and ``oven`` near ``stove`` in a few seconds of training.
About 2% of documents repeat an earlier one verbatim, to show duplicate removal.
"""

from __future__ import annotations

import gzip
import json
import os
import random

TOPICS = {
    "animals": {
        "nouns": ["cat", "dog", "horse", "rabbit", "fox", "wolf", "sheep", "goat", "cow", "mouse"],
        "verbs": ["chased", "watched", "followed", "ignored", "smelled", "found", "fed", "groomed"],
        "adjs": ["small", "hungry", "sleepy", "wild", "young", "old", "brown", "quiet"],
        "places": ["barn", "field", "meadow", "forest", "stable", "farm"],
    },
    "kitchen": {
        "nouns": ["oven", "stove", "pan", "pot", "knife", "spoon", "bowl", "kettle", "plate", "fork"],
        "verbs": ["heated", "cleaned", "filled", "washed", "dried", "stirred", "carried", "polished"],
        "adjs": ["hot", "clean", "heavy", "shiny", "empty", "greasy", "new", "copper"],
        "places": ["kitchen", "pantry", "sink", "counter", "cupboard", "bakery"],
    },
    "weather": {
        "nouns": ["rain", "snow", "wind", "storm", "fog", "hail", "thunder", "sunshine", "frost", "cloud"],
        "verbs": ["covered", "soaked", "crossed", "battered", "cooled", "darkened", "swept", "reached"],
        "adjs": ["cold", "heavy", "gentle", "sudden", "grey", "bitter", "light", "warm"],
        "places": ["valley", "coast", "mountain", "harbour", "plain", "village"],
    },
    "computing": {
        "nouns": ["server", "database", "network", "compiler", "kernel", "cache", "disk", "processor", "thread", "socket"],
        "verbs": ["crashed", "restarted", "indexed", "compiled", "scheduled", "replicated", "monitored", "queried"],
        "adjs": ["fast", "remote", "busy", "idle", "primary", "virtual", "broken", "patched"],
        "places": ["datacenter", "cluster", "rack", "cloud", "laboratory", "office"],
    },
    "music": {
        "nouns": ["violin", "piano", "guitar", "drum", "flute", "cello", "trumpet", "choir", "orchestra", "song"],
        "verbs": ["played", "tuned", "rehearsed", "recorded", "composed", "performed", "practised", "sang"],
        "adjs": ["loud", "soft", "slow", "lively", "famous", "classical", "gentle", "bright"],
        "places": ["concert", "studio", "theatre", "church", "festival", "academy"],
    },
}

PATTERNS = [
    "The {a1} {n1} {v} the {n2} near the {p}.",
    "A {a1} {n1} {v} a {a2} {n2}.",
    "In the {p}, the {n1} {v} the {n2}.",
    "Yesterday the {n1} {v} the {a2} {n2} again!",
    "Why had the {a1} {n1} {v} the {n2} in the {p}?",
    "Nobody expected that the {n1} {v} the {n2}.",
]


def sentence(rng: random.Random, topic: dict) -> str:
    n1, n2 = rng.sample(topic["nouns"], 2)
    return rng.choice(PATTERNS).format(
        n1=n1, n2=n2, v=rng.choice(topic["verbs"]), a1=rng.choice(topic["adjs"]), a2=rng.choice(topic["adjs"]), p=rng.choice(topic["places"])
    )


def document(rng: random.Random) -> str:
    topic = TOPICS[rng.choice(sorted(TOPICS))]
    return " ".join(sentence(rng, topic) for _ in range(rng.randint(3, 7)))


def main(out_dir: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample"), per_file: int = 700) -> None:
    rng = random.Random(20261127)
    os.makedirs(out_dir, exist_ok=True)
    docs: list[str] = []

    def batch() -> list[str]:
        out = []
        for _ in range(per_file):
            if docs and rng.random() < 0.02:
                out.append(rng.choice(docs))  # an exact duplicate of an earlier document
            else:
                out.append(document(rng))
                docs.append(out[-1])
        return out

    with open(os.path.join(out_dir, "part-1.txt"), "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(batch()) + "\n")
    with open(os.path.join(out_dir, "part-2.jsonl"), "w", encoding="utf-8", newline="\n") as fh:
        for i, text in enumerate(batch()):
            fh.write(json.dumps({"id": i, "text": text}) + "\n")
    # mtime=0 keeps the gzip bytes (and so the input key) identical on every regeneration
    with open(os.path.join(out_dir, "part-3.txt.gz"), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        fh.write(("\n".join(batch()) + "\n").encode())


if __name__ == "__main__":
    main()
