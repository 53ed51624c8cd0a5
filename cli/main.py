"""The root ``nlpzk`` app: global options, and the command groups composed with ``add_typer``."""

from __future__ import annotations

import logging
from typing import Optional

import typer

from . import config_cmd, corpus, demo, gc, model, status, train, vocab, zk
from ._util import NlpzkGroup, State

app = typer.Typer(
    cls=NlpzkGroup,
    name="nlpzk",
    help="Corpus shards, versioned vocabularies and distributed word2vec, coordinated by ZooKeeper.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _setup_logging(verbose: bool) -> None:
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    else:
        # kazoo logs every reconnect attempt; the user gets one clear line from us instead.
        for name in ("kazoo", "nlpzk", "gensim", "smart_open"):
            logging.getLogger(name).addHandler(logging.NullHandler())
            logging.getLogger(name).propagate = False


def _version(value: bool) -> None:
    if value:
        from nlpzk import __version__

        typer.echo(f"nlpzk {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    zk_hosts: Optional[str] = typer.Option(
        None, "--zk", help="ZooKeeper servers, host:port[,host:port...], then an optional /chroot (env NLPZK_ZK). Default: the embedded server.", show_default=False
    ),
    store: Optional[str] = typer.Option(None, "--store", help="Store root: a path or file:// s3:// gs:// hdfs:// URI (env NLPZK_STORE, default ~/.local/share/nlpzk/store)."),
    auth: Optional[str] = typer.Option(None, "--auth", help="ZooKeeper digest credentials user:password (env NLPZK_AUTH; default: none)."),
    acl_others: Optional[str] = typer.Option(None, "--acl-others", help="With --auth: what others may do with new nodes: read|none (env NLPZK_ACL_OTHERS, default read)."),
    zk_port: Optional[int] = typer.Option(None, "--zk-port", help="Client port of the embedded ZooKeeper (env NLPZK_ZK_PORT, default 12181)."),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help="Where the embedded ZooKeeper keeps its data (env NLPZK_STATE_DIR, default ~/.local/state/nlpzk)."),
    connect_timeout: Optional[float] = typer.Option(None, "--connect-timeout", help="Seconds to wait for ZooKeeper (env NLPZK_CONNECT_TIMEOUT, default 5)."),
    session_timeout: Optional[float] = typer.Option(None, "--session-timeout", help="ZooKeeper session timeout in seconds (env NLPZK_SESSION_TIMEOUT, default 10)."),
    zk_tls: Optional[bool] = typer.Option(None, "--zk-tls/--no-zk-tls", help="Talk TLS to ZooKeeper (with --zk-ca/--zk-cert/--zk-key; env NLPZK_ZK_TLS, default off)."),
    zk_ca: Optional[str] = typer.Option(None, "--zk-ca", help="CA bundle for ZooKeeper TLS (env NLPZK_ZK_CA)."),
    zk_cert: Optional[str] = typer.Option(None, "--zk-cert", help="Client certificate for ZooKeeper TLS (env NLPZK_ZK_CERT)."),
    zk_key: Optional[str] = typer.Option(None, "--zk-key", help="Client key for ZooKeeper TLS (env NLPZK_ZK_KEY)."),
    config_file: Optional[str] = typer.Option(None, "--config", help="Read this nlpzk.toml (env NLPZK_CONFIG, default ./nlpzk.toml)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what nlpzk and kazoo do to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    _setup_logging(verbose)
    flags = dict(
        zk=zk_hosts,
        store=store,
        auth=auth,
        acl_others=acl_others,
        zk_port=zk_port,
        state_dir=state_dir,
        connect_timeout=connect_timeout,
        session_timeout=session_timeout,
        zk_tls=zk_tls,
        zk_ca=zk_ca,
        zk_cert=zk_cert,
        zk_key=zk_key,
    )
    st = State(flags={k: v for k, v in flags.items() if v is not None}, config_file=config_file)
    ctx.obj = st
    ctx.call_on_close(st.close)


app.add_typer(zk.app, name="zk")
app.add_typer(config_cmd.app, name="config")
app.add_typer(corpus.app, name="corpus")
app.add_typer(vocab.app, name="vocab")
app.add_typer(train.app, name="train")
app.add_typer(model.app, name="model")
app.command("status")(status.status)
app.command("gc")(gc.gc)
app.command("demo")(demo.demo)


def main() -> None:
    app(prog_name="nlpzk")  # also under `python -m nlpzk`: usage lines name the command people type


if __name__ == "__main__":
    main()
