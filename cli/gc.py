"""``nlpzk gc``: delete store files that no registry document points at."""

from __future__ import annotations

import typer
from rich.table import Table

from . import _util


def gc(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only list what would be deleted."),
    older_than: float = typer.Option(3600.0, "--older-than", min=0, help="Leave files younger than this many seconds (a writer may be about to register them)."),
    include_unknown: bool = typer.Option(
        False, "--include-unknown", help="Also delete files of corpora/vocabularies/jobs/models this registry does not know (another chroot may share the store!)."
    ),
    as_json: bool = _util.JsonOption,
) -> None:
    """Delete unregistered files (crashed writes, aborted builds) from the store.

    Files under a name this registry does not know are listed as 'unknown owner' and kept, since another
    chroot may share the store; --include-unknown deletes them too.

    Example: nlpzk gc --dry-run --older-than 600
    """
    from nlpzk import gc as _gc

    cluster = _util.cluster(ctx)
    garbage = _gc.collect(cluster, older_than=older_than, dry_run=dry_run, include_unknown=include_unknown)
    freed = [g for g in garbage if _gc.deletes(g, include_unknown)]  # deleted by this run, or with --dry-run would be
    deleted = [] if dry_run else freed
    # unregistered files too young to judge: said, so that "no garbage" does not hide them
    young = [g for g in _gc.find_garbage(cluster, older_than=0.0) if g.age_seconds < older_than] if older_than > 0 else []
    data = {
        "dry_run": dry_run,
        # would_delete: what this run deletes, or with --dry-run would delete (a script need not know the rule)
        "files": [dict(g.__dict__, deleted=g in deleted, would_delete=_gc.deletes(g, include_unknown)) for g in garbage],
        "bytes": sum(g.bytes for g in freed),  # freed, or with --dry-run would be
        "younger_kept": len(young),
    }

    def kept_line(d) -> None:
        if d["younger_kept"]:
            _util.out.print(f"kept {_util.count(d['younger_kept'], 'unregistered file')} younger than {older_than:g} s (a writer may be about to register them; --older-than 0 includes them)")

    def human(d):
        if not d["files"]:
            _util.out.print(f"no garbage older than {older_than:g} s")
            kept_line(d)
            return
        table = Table("file", "size", "age (s)", "why", "deleted")
        for f in d["files"]:
            table.add_row(f["path"], _util.human_bytes(f["bytes"]), f"{f['age_seconds']:.0f}", f["reason"], "yes" if f["deleted"] else "no")
        _util.out.print(table)
        if d["dry_run"]:
            _util.out.print(f"would delete {_util.count(sum(f['would_delete'] for f in d['files']), 'file')}, {_util.human_bytes(d['bytes'])}")
        else:
            _util.out.print(f"deleted {_util.count(sum(f['deleted'] for f in d['files']), 'file')}, {_util.human_bytes(d['bytes'])}")
        if any(f["reason"] == _gc.DAMAGED for f in d["files"]):
            _util.out.print("kept the files of names with a znode that holds no valid document (nlpzk gc cannot tell which files it named); repair or delete that znode, then run gc again")
        kept_line(d)

    _util.emit(data, as_json, human)
