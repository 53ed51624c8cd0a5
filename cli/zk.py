"""``nlpzk zk``: the embedded ZooKeeper server, a local test ensemble, and a look at the registry."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from nlpzk.zk import server as zkserver

from . import _util

app = typer.Typer(help="Run the embedded ZooKeeper (or a local 3-server ensemble) and inspect servers.", no_args_is_help=True)
ensemble_app = typer.Typer(help="A local ZooKeeper ensemble on one machine (for failure tests and trying replication).", no_args_is_help=True)
app.add_typer(ensemble_app, name="ensemble")


def _int(text):
    """A number from ``srvr``'s text (None stays None)."""
    try:
        return None if text is None else int(text)
    except ValueError:
        return text


def _status_rows(addresses: list[str], tls=None) -> list[dict]:
    rows = []
    for addr in addresses:
        host, _, port = addr.rpartition(":")
        st = zkserver.parse_srvr(zkserver.four_letter(host, int(port), "srvr", tls=tls))
        rows.append({"address": addr, "serving": bool(st), "mode": (st or {}).get("mode"), "version": (st or {}).get("version"), "nodes": _int((st or {}).get("node_count"))})
    return rows


def _print_rows(rows: list[dict]) -> None:
    table = Table("server", "serving", "mode", "version", "znodes")
    for r in rows:
        table.add_row(r["address"], "yes" if r["serving"] else "[red]no[/]", r["mode"] or "-", r["version"] or "-", str(r["nodes"] or "-"))
    _util.out.print(table)


@app.command("start")
def start(ctx: typer.Context, as_json: bool = _util.JsonOption) -> None:
    """Start the embedded standalone ZooKeeper on loopback (does nothing if it already runs).

    Example: nlpzk zk start  (on another port: nlpzk --zk-port 12181 zk start)
    """
    cfg = _util.config(ctx)
    started = zkserver.ensure_embedded(cfg.state_path, cfg.zk_port)
    server = zkserver.embedded_server(cfg.state_path, cfg.zk_port)
    info = {"started": started, "address": server.address, "dir": str(server.dir), "pid": server.pid(), **(server.status() or {})}
    _util.emit(
        info,
        as_json,
        lambda i: _util.out.print(
            f"{'started' if i['started'] else 'already running:'} ZooKeeper {i.get('version', '')} at {i['address']} "
            f"(mode {i.get('mode')}, pid {i['pid']}, data in {i['dir']})"
        ),
    )


@app.command("stop")
def stop(ctx: typer.Context, as_json: bool = _util.JsonOption) -> None:
    """Stop the embedded ZooKeeper (does nothing if it is not running).

    Example: nlpzk zk stop
    """
    cfg = _util.config(ctx)
    server = zkserver.embedded_server(cfg.state_path, cfg.zk_port)
    stopped = server.stop()
    _util.emit({"stopped": stopped, "address": server.address}, as_json, lambda i: _util.out.print("stopped" if i["stopped"] else "not running"))


@app.command("status")
def status(ctx: typer.Context, as_json: bool = _util.JsonOption) -> None:
    """Mode and version of each configured server (via the `srvr` four-letter word). Exit 3 if none serves.

    Example: nlpzk zk status --json  (another ensemble: NLPZK_ZK=zk1:2181,zk2:2181 nlpzk zk status)
    """
    cfg = _util.config(ctx)
    hosts, chroot = cfg.hosts_and_chroot()
    from nlpzk.zk.client import tls_context

    rows = _status_rows(hosts.split(","), tls=None if cfg.embedded else tls_context(cfg))
    if cfg.embedded:
        server = zkserver.embedded_server(cfg.state_path, cfg.zk_port)
        for r in rows:
            r.update(embedded=True, pid=server.pid(), dir=str(server.dir))
    _util.emit({"chroot": chroot, "servers": rows}, as_json, lambda d: _print_rows(d["servers"]))
    if not any(r["serving"] for r in rows):
        if cfg.embedded:
            hint = "start it with: nlpzk zk start"
        else:
            where = "--zk" if cfg.source("zk") == "flag" else cfg.source("zk")
            hint = f"check the address (from {where}) and that a ZooKeeper server runs there"
        _util.error_line(f"no ZooKeeper server answers at {hosts} — {hint}")
        raise typer.Exit(3)


@app.command("tree")
def tree(
    ctx: typer.Context,
    path: str = typer.Argument("/", help="Path under the chroot."),
    depth: int = typer.Option(4, min=0, help="How deep to go (0: the node alone)."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Print the znodes under the chroot (a quick look at the registry).

    Example: nlpzk zk tree /vocab --depth 3
    """
    from nlpzk.errors import InvalidInputError, NotFoundError
    from nlpzk.zk.registry import children, exists

    if not path.startswith("/") or "/../" in f"{path}/" or "//" in path:
        raise InvalidInputError(f"invalid znode path {path!r}", hint="an absolute path under the chroot, e.g. /corpora")
    zk = _util.cluster(ctx).zk
    if path != "/" and not exists(zk, path):  # (a chroot nothing was written to yet is an empty registry)
        raise NotFoundError(f"no znode {path} under the chroot", hint="see: nlpzk zk tree /")
    chroot = _util.config(ctx).hosts_and_chroot()[1]
    nodes: list[str] = []  # depth first, each node before its children: the order the tree is printed in

    def walk(p: str, level: int) -> None:
        nodes.append(p)
        if level < depth:
            for child in children(zk, p):
                walk(p.rstrip("/") + "/" + child, level + 1)

    walk(path, 0)

    def human(d):
        top = d["path"].rstrip("/").count("/")
        for node in d["nodes"]:
            _util.out.print("  " * (node.rstrip("/").count("/") - top) + (node.rsplit("/", 1)[-1] or d["chroot"]), markup=False)

    _util.emit({"chroot": chroot, "path": path, "depth": depth, "nodes": nodes}, as_json, human)


DEFAULT_BASE_PORT = 12281
DEFAULT_SERVERS = 3
_SERVERS_HELP = f"How many servers (default: as many as it was last started with, else {DEFAULT_SERVERS})."
_BASE_PORT_HELP = (
    "Client ports base..base+n-1; quorum +100; election +200 "
    f"(default: the ports it was last started with, else {DEFAULT_BASE_PORT})."
)


def _ensemble(cfg, servers: Optional[int], base_port: Optional[int]) -> zkserver.Ensemble:
    """The local ensemble in the state dir.

    Without --base-port it is the one last started there: its ports are read back from its members'
    zoo.cfg (so `ensemble start --base-port 22481` is then found by a plain `status`/`stop`). An
    explicit --base-port wins; with neither, the default base port.
    """
    base_dir = cfg.state_path / "ensemble"
    if base_port is None:
        recorded = zkserver.Ensemble.recorded_ports(base_dir)
        if recorded and servers in (None, len(recorded)):
            return zkserver.Ensemble(base_dir, len(recorded), ports=recorded)
        base_port = recorded[0][0] if recorded else DEFAULT_BASE_PORT
    return zkserver.Ensemble(base_dir, servers or DEFAULT_SERVERS, base_port=base_port)


@ensemble_app.command("start")
def ensemble_start(
    ctx: typer.Context,
    servers: Optional[int] = typer.Option(None, "--servers", min=1, max=9, help=_SERVERS_HELP),
    base_port: Optional[int] = typer.Option(None, "--base-port", help=_BASE_PORT_HELP),
    as_json: bool = _util.JsonOption,
) -> None:
    """Start a local ensemble and wait for a leader. Use it with --zk set to the printed hosts.

    Example: nlpzk zk ensemble start --servers 3 --base-port 12281
    """
    cfg = _util.config(ctx)
    ens = _ensemble(cfg, servers, base_port)
    recorded = zkserver.Ensemble.recorded_ports(cfg.state_path / "ensemble")
    if recorded and recorded != [(p.client_port, p.quorum_port, p.election_port) for p in ens.peers]:
        running = zkserver.Ensemble(cfg.state_path / "ensemble", len(recorded), ports=recorded)
        if any(m.pid() for m in running.members):  # its members would not take the new ports: a 60 s wait, then a failure
            from nlpzk.errors import ConflictError

            raise ConflictError(
                f"a local ensemble is already running in this state dir, at {running.hosts}",
                hint="stop it first (nlpzk zk ensemble stop), or give this one its own state dir (nlpzk --state-dir DIR zk ensemble start ...)",
            )
    ens.start()
    ens.wait_for_leader()
    rows = _status_rows(ens.hosts.split(","))
    _util.emit({"hosts": ens.hosts, "servers": rows}, as_json, lambda d: (_print_rows(d["servers"]), _util.out.print(f"--zk {d['hosts']}")))


@ensemble_app.command("stop")
def ensemble_stop(
    ctx: typer.Context,
    servers: Optional[int] = typer.Option(None, "--servers", min=1, max=9, help=_SERVERS_HELP),
    base_port: Optional[int] = typer.Option(None, "--base-port", help=_BASE_PORT_HELP),
    member: Optional[int] = typer.Option(None, "--member", help="Stop only this server id (1-based), e.g. to test fail-over."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Stop the local ensemble (or one member of it), found at the ports it was started with.

    Example: nlpzk zk ensemble stop --member 2
    """
    cfg = _util.config(ctx)
    ens = _ensemble(cfg, servers, base_port)
    n = len(ens.members)
    if member is not None:
        if not 1 <= member <= n:
            raise typer.BadParameter(f"--member must be between 1 and {n}")
        ids = [member]
    else:
        ids = list(range(1, n + 1))
    stopped = [i for i in ids if ens.members[i - 1].stop()]  # False: that member was not running
    _util.emit(
        {"hosts": ens.hosts, "stopped": stopped},
        as_json,
        lambda d: _util.out.print(f"stopped member(s) {', '.join(map(str, d['stopped']))}" if d["stopped"] else "not running"),
    )


@ensemble_app.command("status")
def ensemble_status(
    ctx: typer.Context,
    servers: Optional[int] = typer.Option(None, "--servers", min=1, max=9, help=_SERVERS_HELP),
    base_port: Optional[int] = typer.Option(None, "--base-port", help=_BASE_PORT_HELP),
    as_json: bool = _util.JsonOption,
) -> None:
    """Mode of each member of the local ensemble, at the ports it was started with. Exit 3 if none serves.

    Example: nlpzk zk ensemble status --json
    """
    cfg = _util.config(ctx)
    recorded = zkserver.Ensemble.recorded_ports(cfg.state_path / "ensemble")
    if recorded and base_port is None and servers not in (None, len(recorded)):
        # rows for members that were never started would read as members that are down
        raise _util.usage_error(ctx, f"the local ensemble has {len(recorded)} members, not {servers}; leave out --servers")
    ens = _ensemble(cfg, servers, base_port)
    rows = _status_rows(ens.hosts.split(","))
    _util.emit({"hosts": ens.hosts, "servers": rows}, as_json, lambda d: _print_rows(d["servers"]))
    if not any(r["serving"] for r in rows):
        again = "nlpzk zk ensemble start" + (f" --base-port {base_port}" if base_port is not None else "")
        _util.error_line(f"no member of the local ensemble answers at {ens.hosts} (start it with: {again})")
        raise typer.Exit(3)
