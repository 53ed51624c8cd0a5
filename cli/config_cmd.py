"""``nlpzk config``: what configuration is in force and where each value came from."""

from __future__ import annotations

import typer
from rich.table import Table

from . import _util

app = typer.Typer(help="Show the effective configuration (flags > environment > nlpzk.toml > defaults).", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, as_json: bool = _util.JsonOption) -> None:
    """Print every setting, its value (secrets masked) and its source.

    Example: NLPZK_ZK=zk1:2181/team nlpzk config show
    """
    rows = _util.config(ctx).show()

    def human(rows):
        table = Table("key", "value", "source", "environment variable")
        for r in rows:
            table.add_row(r["key"], "" if r["value"] is None else str(r["value"]), r["source"], r["env"])
        _util.out.print(table)

    _util.emit(rows, as_json, human)
