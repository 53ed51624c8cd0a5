"""``nlpzk train``: distributed word2vec over leased corpus shards."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run, join, resume and inspect distributed word2vec training jobs.", no_args_is_help=True)
