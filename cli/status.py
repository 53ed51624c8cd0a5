"""``nlpzk status``: one screen of what the cluster holds and does, read from ZooKeeper."""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from . import _util


def _n(value: Any) -> str:
    """A count for the status tables, in one format: 999, 1.3k, 10.3k, 2.0M (a 1300 next to a 10.3k
    read as the smaller number)."""
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and abs(value) >= 1000:
        for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(value) >= div:
                return f"{value / div:.1f}{unit}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _tags(tags: dict[str, int]) -> str:
    return ", ".join(f"{t}->v{v}" for t, v in sorted(tags.items())) or "-"


def render(data: dict[str, Any], jobs_first: bool = False) -> Group:
    """The status dict as rich tables (one per section).

    ``jobs_first`` (``--watch``): the jobs right after the servers. A live view is cut at the
    terminal's height, and the running jobs are what it is watched for.
    """
    zk = data["zk"]
    head = Text.assemble(
        ("ZooKeeper ", "bold"),
        f"{zk['hosts']}{zk['chroot']}",
        " (embedded)" if zk["embedded"] else "",
        f"  session {zk['session']}  store {data['store']}  ",
        (time.strftime("%H:%M:%S", time.localtime(data["at"])), "dim"),
    )
    parts: list[Any] = [head]

    t = Table("server", "mode", "version", "znodes", title="servers", title_justify="left")
    for s in data["servers"]:
        t.add_row(s["address"], s["mode"] or "[red]not serving[/]", s["version"] or "-", _n(s["znodes"]))
    parts.append(t)

    t = Table("corpus", "shards", "sentences", "tokens", "size", title="corpora", title_justify="left")
    _util.add_rows(t, data["corpora"], lambda c: [_util.named(c), str(c["shards"]), _n(c["sentences"]), _n(c["tokens"]), _util.human_bytes(c["bytes"])])
    parts.append(_with_damaged(t, "corpus", data["corpora"]) if data["corpora"] else Text("corpora: none (nlpzk corpus ingest NAME FILES...)"))

    t = Table("vocabulary", "versions", "latest", "tokens", "tags", title="vocabularies", title_justify="left")
    _util.add_rows(t, data["vocabularies"], lambda v: [_util.named(v), str(v["versions"]), f"v{v['latest']}" if v["latest"] else "-", _n(v["tokens"]), _tags(v["tags"])])
    parts.append(_with_damaged(t, "vocabulary", data["vocabularies"]) if data["vocabularies"] else Text("vocabularies: none"))

    t = Table("job", "state", "round", "progress", "workers", "leases", "words/s", "vocab", title="jobs", title_justify="left")
    for j in data["jobs"]:
        rounds = f"{j['round']}/{j['rounds']}" if j["rounds"] else _n(j["round"])
        progress = f"{100 * j['progress']:.0f}%" if j["progress"] is not None else "-"
        state = j["state"] or "-"
        if state == "running":
            state = "[green]running[/]" if j["workers_alive"] else "[yellow]no workers[/]"
        if state == "damaged":
            state = "[red]damaged[/]"
        if j.get("deleting"):
            state += " (being deleted)"
        t.add_row(j["name"], state, rounds, progress, str(j["workers_alive"]), str(j["leases_held"]), _n(j["words_per_s"]), j["vocab"] or "-")
    parts.insert(2 if jobs_first else len(parts), _with_damaged(t, "job", data["jobs"]) if data["jobs"] else Text("jobs: none"))

    t = Table("model", "versions", "latest", "vocab", "tags", "scores", title="models", title_justify="left")
    # scores as model list shows them
    _util.add_rows(t, data["models"], lambda m: [_util.named(m), str(m["versions"]), f"v{m['latest']}" if m["latest"] else "-", m["vocab"] or "-", _tags(m["tags"]),
                                                 _util.scores_cell(m["eval"], m.get("train_scores"))])
    parts.append(_with_damaged(t, "model", data["models"]) if data["models"] else Text("models: none"))
    return Group(*parts)


def _with_damaged(table: Table, kind: str, rows: list[dict[str, Any]]) -> Group:
    """``table`` and under it, for each damaged row, ``KIND NAME: what is wrong and what to do``."""
    return Group(table, *[Text(f"{kind} {r['name']}: {r['damaged']}") for r in rows if r.get("damaged")])


def status(
    ctx: typer.Context,
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep refreshing the screen until Ctrl-C."),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between refreshes with --watch."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Servers and their mode, corpora, vocabularies, running jobs (round, workers, leases, words/s) and models.

    Example: nlpzk status --watch
    """
    from nlpzk.status import collect

    cluster = _util.cluster(ctx)
    if not watch:
        _util.emit(collect(cluster), as_json, lambda d: _util.out.print(render(d)))
        return
    from nlpzk.zk.client import RECONNECT_LIMIT
    from nlpzk.errors import ZkUnavailableError
    from nlpzk.zk.rounds import CONNECTION_ERRORS

    # (collect raises ZkUnavailableError for a connection error, as every library call made from outside nlpzk does)
    connection_errors = (ZkUnavailableError, *CONNECTION_ERRORS)

    def snapshot() -> dict | None:
        """The registry now, or None while ZooKeeper is unreachable (an election, a lost quorum):
        a monitor rides that out, and gives up RECONNECT_LIMIT seconds after the drop (exit 3)."""
        try:
            return collect(cluster)
        except connection_errors:
            if cluster.watch.down_for() > RECONNECT_LIMIT:
                raise
            cluster.watch.connected.wait(interval)
            return None

    try:
        if as_json:
            # one JSON document per line and refresh, for scripts that follow a job
            while True:
                data = snapshot()
                if data is not None:
                    print(json.dumps(data, sort_keys=True, default=str), flush=True)
                time.sleep(interval)
        from rich.live import Live

        first = None
        while first is None:
            first = snapshot()
        with Live(render(first, jobs_first=True), console=_util.out, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval)
                data = snapshot()
                live.update(render(data, jobs_first=True) if data is not None else Text("ZooKeeper unreachable; waiting for it..."))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None  # Ctrl-C is how --watch ends, not an error
