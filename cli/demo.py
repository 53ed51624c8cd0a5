"""``nlpzk demo``: the end-to-end run of the README's first command, on the embedded ZooKeeper."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Optional

import typer

from . import _util

SAMPLE = Path(__file__).resolve().parent.parent / "corpora" / "sample"


def _step(n: int, text: str) -> None:
    _util.out.print(f"[bold]{n}/5[/] {text}")


def demo(
    ctx: typer.Context,
    corpus_dir: Optional[Path] = typer.Option(None, "--corpus-dir", help="Text to use (default: the bundled sample corpus under corpora/sample)."),
    name: str = typer.Option("sample", "--name", help="Name of the corpus, vocabulary and model."),
    workers: int = typer.Option(2, "--workers", "-k", min=1, max=16, help="Local training worker processes."),
    epochs: int = typer.Option(5, "--epochs", min=1, max=100, help="Training epochs."),
) -> None:
    """Run the whole pipeline and print each step briefly: ingest -> vocab build -> distributed training
    with local workers -> evaluation -> lookups and nearest neighbours. Re-running it is safe: the
    ingest finds its inputs done, and vocabulary, job and model get new versions.

    Example: nlpzk demo --workers 2
    """
    from nlpzk import vocab
    from nlpzk.eval.showcase import showcase, summary_lines
    from nlpzk.ingest import ingest
    from nlpzk.train import create_job
    from nlpzk.train.local import check_local_workers

    from .train import _watch

    check_local_workers(workers)  # before anything is ingested, built or created
    t0 = time.perf_counter()
    cluster = _util.cluster(ctx)
    hosts, chroot = cluster.config.hosts_and_chroot()
    _util.out.print(f"ZooKeeper {hosts}{chroot}{' (embedded)' if cluster.config.embedded else ''}, store {cluster.store.uri}")

    source = corpus_dir or SAMPLE
    _step(1, f"ingest {source} into corpus {name!r}")
    summary = ingest(cluster, name, [str(source)])
    _util.out.print(
        f"    {_util.count(summary.files, 'file')} ({summary.ingested:,} new, {summary.already_done:,} already done), {_util.count(summary.documents, 'document')}, "
        f"{_util.count(summary.duplicates, 'duplicate')} dropped, {_util.count(summary.sentences, 'sentence')}, {_util.count(summary.tokens, 'token')}, "
        f"{_util.count(summary.shards, 'new shard')}"
    )

    _step(2, f"build vocabulary {name!r} from the corpus")
    # a re-run builds a child of the latest version, so every id the first run gave stays the same
    parent = "latest" if vocab.Vocabulary.exists(name, cluster=cluster) else None
    view = vocab.build(cluster, name, name, min_count=2, specials=["<unk>"], parent=parent, tags=("latest",))
    _util.out.print(f"    {name}@v{view.version}: {_util.count(len(view), 'token')}, {int(view.active.sum()):,} at or above min-count 2")

    job = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"  # two demos in one second differ
    _step(3, f"train word2vec job {job!r} with {_util.count(workers, 'local worker')} ({_util.count(epochs, 'epoch')})")
    _, warnings = create_job(cluster, job, name, f"{name}@v{view.version}", model=name, epochs=epochs, dim=50, window=5, negative=5, syncs_per_epoch=2, seed=1)
    for w in warnings:
        _util.error_line(w)
    _watch(ctx, job, workers, 1, True, False)

    _step(4, f"evaluate model {name!r} and look up a few words")
    result = showcase(cluster, name, words=["cat", "oven", "server", "rain"], topn=4)
    for line in summary_lines(result):
        _util.out.print("    " + line, markup=False)
    if source == SAMPLE:
        _util.out.print(
            f"    (the sample corpus has {len(view):,} word types, so the public benchmarks barely overlap it: its neighbours "
            "are the thing to look at; docs/benchmarks.md has scores on a real corpus)",
            markup=False,
        )

    _step(5, f"vocabulary lookups in {name}@v{view.version}")
    probe = ["the", "cat", "kettle", "zebra"]
    ids = view.encode(probe)
    _util.out.print("    encode " + ", ".join(f"{t!r}->{i}" for t, i in zip(probe, ids.tolist())) + f"  (unknown -> {view.unk_id})", markup=False)
    _util.out.print(f"    decode {ids.tolist()[:3]} -> {view.decode(ids[:3])}", markup=False)
    _util.out.print(f"done in {time.perf_counter() - t0:.0f}s. Next: nlpzk status; nlpzk model similar {name} dog; nlpzk train report {job} --out report.html")
