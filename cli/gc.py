"""``nlpzk gc``: delete store files that no registry document points at."""

from __future__ import annotations

import typer
from rich.table import Table

from . import _util


def gc(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only list what would be deleted."),
    older_than: float = typer.Option(3600.0, "--older-than", min=0, help="Leave files younger than this many seconds (a writer may be about to register them)."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Delete unregistered files (crashed writes, aborted builds) from the store.

    Example: nlpzk gc --dry-run --older-than 600
    """
    from nlpzk import gc as _gc

    garbage = _gc.collect(_util.cluster(ctx), older_than=older_than, dry_run=dry_run)
    data = {"dry_run": dry_run, "files": [g.__dict__ for g in garbage], "bytes": sum(g.bytes for g in garbage)}

    def human(d):
        if not d["files"]:
            _util.out.print("no garbage")
            return
        table = Table("file", "size", "age (s)", "why")
        for f in d["files"]:
            table.add_row(f["path"], _util.human_bytes(f["bytes"]), f"{f['age_seconds']:.0f}", f["reason"])
        _util.out.print(table)
        verb = "would delete" if d["dry_run"] else "deleted"
        _util.out.print(f"{verb} {len(d['files'])} files, {_util.human_bytes(d['bytes'])}")

    _util.emit(data, as_json, human)
