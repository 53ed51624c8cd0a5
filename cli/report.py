"""``nlpzk train report``: a training job as pictures (mounted under ``train`` by cli/main.py)."""

from __future__ import annotations

from typing import List, Optional

import typer

from . import _util


def report(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The training job."),
    out: str = typer.Option(..., "--out", "-o", help="report.html (figures and tables) or report.png (the figures)."),
    words: Optional[List[str]] = typer.Option(None, "--word", "-w", help="A word to place on the PCA map (repeat); default: frequent content words."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Plot loss and words/s per round and per worker, the eval scores, and a PCA map of chosen words.

    Example: nlpzk train report job-1 --out report.html -w king -w queen -w paris
    """
    from nlpzk.eval.report import build_report

    result = build_report(_util.cluster(ctx), job, out, words=words)
    if result["missing_words"]:
        import sys

        print(f"warning: not in the vocabulary, left off the map: {', '.join(result['missing_words'])}", file=sys.stderr)
    _util.emit(
        result,
        as_json,
        lambda r: _util.out.print(f"wrote {r['path']} ({_util.count(r['rounds'], 'round')}, {_util.count(len(r['workers']), 'worker')}, model {r['model'] or '-'}, {_util.count(len(r['words']), 'word')} on the map)"),
    )
