"""``nlpzk demo``: the end-to-end run of the README's first command, on the embedded ZooKeeper."""

from __future__ import annotations

import time

import typer

from . import _util


def demo(ctx: typer.Context) -> None:
    """Run the whole pipeline on the sample corpus and print each step briefly.

    Example: nlpzk demo
    """
    t0 = time.perf_counter()
    cluster = _util.cluster(ctx)
    hosts, chroot = cluster.config.hosts_and_chroot()
    _util.out.print(f"[bold]1/1[/] ZooKeeper at {hosts}{chroot}, store {cluster.store.uri}")
    from nlpzk.zk import registry

    registry.put_json(cluster.zk, "/demo", {"hello": "nlpzk", "at": registry.now()})
    doc = registry.maybe_json(cluster.zk, "/demo")
    _util.out.print(f"    wrote and read back the registry: {doc}")
    _util.out.print(f"done in {time.perf_counter() - t0:.1f}s")
