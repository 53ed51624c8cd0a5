"""``nlpzk vocab``: immutable vocabulary versions with stable ids, tags and lookups."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build, tag, diff, export and look up vocabulary versions.", no_args_is_help=True)
