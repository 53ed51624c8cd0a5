"""``nlpzk corpus``: ingest text into tokenized Parquet shards registered in ZooKeeper."""

from __future__ import annotations

import typer

app = typer.Typer(help="Ingest text into tokenized shards; list, show, verify and delete corpora.", no_args_is_help=True)
