"""``nlpzk model``: trained vectors, versioned and tied to their vocabulary version."""

from __future__ import annotations

import typer

app = typer.Typer(help="List, evaluate, query and export trained models.", no_args_is_help=True)
