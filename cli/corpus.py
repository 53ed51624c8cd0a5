"""``nlpzk corpus``: ingest text into tokenized Parquet shards registered in ZooKeeper."""

from __future__ import annotations

import sys
import time
from typing import Any, List

import typer

from . import _util

app = typer.Typer(help="Ingest text into tokenized shards; list, show, verify and delete corpora.", no_args_is_help=True)


class _ProgressBar:
    """A rich progress bar on stderr (files, documents, tokens/s) — only when stderr is a terminal."""

    def __init__(self, total_files: int | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.t0 = time.perf_counter()
        self.docs = self.tokens = self.dups = 0
        self.waiting = 0
        self.progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[docs]:,} docs · {task.fields[dups]:,} dups · {task.fields[rate]:,.0f} tokens/s{task.fields[wait]}"),
            TimeElapsedColumn(),
            console=_util.err,
            transient=True,
        )
        self.task = self.progress.add_task("ingest", total=total_files, docs=0, dups=0, rate=0, wait="")

    def __enter__(self) -> "_ProgressBar":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        self.docs += event.get("documents", 0)
        self.tokens += event.get("tokens", 0)
        self.dups += event.get("duplicates", 0)
        if "total_files" in event:
            self.progress.update(self.task, total=event["total_files"])
        if "waiting" in event:
            self.waiting = event["waiting"]
        elif event.get("files"):
            self.waiting = 0
        rate = self.tokens / max(time.perf_counter() - self.t0, 1e-6)
        wait = f" · waiting for {self.waiting} file(s) claimed by other ingesters" if self.waiting else ""
        self.progress.update(self.task, advance=event.get("files", 0), docs=self.docs, dups=self.dups, rate=rate, wait=wait)


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Corpus name (letters, digits, . _ -)."),
    paths: List[str] = typer.Argument(..., help="Files, directories (recursive) or globs: .txt .jsonl .csv .tsv .parquet, optionally .gz/.bz2/.xz/.zst."),
    lang: str = typer.Option("en", "--lang", help="spaCy language code of the blank tokenizer (no model download)."),
    lowercase: bool = typer.Option(True, "--lowercase/--no-lowercase", help="Lower-case tokens."),
    lemmatize: bool = typer.Option(False, "--lemmatize", help="Replace tokens by their lookup lemma (spacy-lookups-data)."),
    drop_punct: bool = typer.Option(True, "--drop-punct/--keep-punct", help="Drop punctuation tokens."),
    drop_numbers: bool = typer.Option(False, "--drop-numbers/--keep-numbers", help="Drop pure numbers (12, 3.5, 1,000)."),
    drop_urls: bool = typer.Option(True, "--drop-urls/--keep-urls", help="Drop URLs and e-mail addresses."),
    max_token_length: int = typer.Option(50, "--max-token-length", help="Drop tokens longer than this many characters."),
    min_sentence_tokens: int = typer.Option(1, "--min-sentence-tokens", help="Drop sentences with fewer tokens (after filtering)."),
    shard_tokens: int = typer.Option(1_000_000, "--shard-tokens", help="Start a new shard after this many tokens (at a document boundary)."),
    processes: int = typer.Option(1, "--processes", "-p", help="Tokenize in this many processes (same output for any number)."),
    text_field: str = typer.Option("text", "--text-field", help="JSON field / CSV or Parquet column holding the text."),
    paragraphs: bool = typer.Option(False, "--paragraphs", help=".txt: a document per blank-line separated paragraph (default: per line)."),
    strict: bool = typer.Option(False, "--strict", help="Fail on invalid UTF-8 instead of replacing (and counting) bad bytes."),
    max_line_bytes: int = typer.Option(1_000_000, "--max-line-bytes", help="Refuse lines (documents) longer than this."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Tokenize text files into Parquet shards and register them; safe to re-run and to run concurrently.

    Example: nlpzk corpus ingest sample corpora/sample --processes 2
    """
    from nlpzk.ingest import ReadOptions, ingest as run_ingest, tokenizer_options

    options = tokenizer_options(
        lang=lang,
        lowercase=lowercase,
        lemmatize=lemmatize,
        drop_punct=drop_punct,
        drop_numbers=drop_numbers,
        drop_urls=drop_urls,
        max_token_length=max_token_length,
        min_sentence_tokens=min_sentence_tokens,
    )
    read = ReadOptions(doc_mode="paragraph" if paragraphs else "line", text_field=text_field, strict=strict, max_line_bytes=max_line_bytes)
    cluster = _util.cluster(ctx)
    if _util.err.is_terminal and not as_json:
        with _ProgressBar() as bar:
            summary = run_ingest(cluster, name, paths, options=options, read=read, shard_tokens=shard_tokens, processes=processes, progress=bar)
    else:
        summary = run_ingest(cluster, name, paths, options=options, read=read, shard_tokens=shard_tokens, processes=processes)
    _util.emit(summary.as_dict(), as_json, _print_summary)


def _print_summary(s: dict[str, Any]) -> None:
    out = _util.out
    done = f"{s['ingested']} new file(s)"
    if s["already_done"]:
        done += f", {s['already_done']} already done"
    if s["same_content"]:
        done += f", {s['same_content']} with the same bytes as another input"
    out.print(f"corpus [bold]{s['corpus']}[/]: {done}")
    out.print(
        f"  {s['documents']:,} documents ({s['duplicates']:,} duplicates dropped), {s['sentences']:,} sentences, "
        f"{s['tokens']:,} tokens in {s['shards']} shard(s), {_util.human_bytes(s['bytes'])}"
    )
    out.print(f"  {s['seconds']:.1f}s, {s['tokens_per_s']:,} tokens/s")
    if s["replaced_bytes"]:
        out.print(f"  [yellow]replaced {s['replaced_bytes']:,} invalid UTF-8 sequence(s) by U+FFFD[/] (use --strict to refuse them)")
    if s["skipped_empty"]:
        out.print(f"  skipped {len(s['skipped_empty'])} empty file(s): {', '.join(s['skipped_empty'][:5])}")
    if s["redone"]:
        out.print(f"  rewrote {s['redone']} file(s) without documents that a concurrently committed file holds")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = _util.JsonOption) -> None:
    """List corpora with their shard, document and token totals (a corpus whose node is damaged: a row saying what to do).

    Example: nlpzk corpus list
    """
    from nlpzk.corpus import list_corpora

    rows = list_corpora(_util.cluster(ctx))

    def human(rows: list[dict[str, Any]]) -> None:
        from rich.table import Table

        if not rows:
            _util.out.print("no corpora yet — try: nlpzk corpus ingest NAME PATH")
            return
        t = Table("corpus", "lang", "inputs", "shards", "documents", "sentences", "tokens", "size")
        _util.print_table(t, rows, lambda r: [_util.named(r), str(r["options"].get("lang", "")), str(r["inputs"]), str(r["shards"]),
                                              f"{r['documents']:,}", f"{r['sentences']:,}", f"{r['tokens']:,}", _util.human_bytes(r["bytes"])])

    _util.emit(rows, as_json, human)


@app.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(..., help="Corpus name."), as_json: bool = _util.JsonOption) -> None:
    """Show a corpus: the options it was built with, its inputs, and counts per shard.

    Example: nlpzk corpus show sample
    """
    from nlpzk.corpus import Corpus

    corpus = Corpus.open(name, cluster=_util.cluster(ctx))
    shards = corpus.shards
    data = corpus.summary(shards)
    data["shard_list"] = [s.doc() | {"id": s.id} for s in shards]
    data["input_list"] = [dict(d, key=k) for k, d in sorted(corpus.inputs().items(), key=lambda kv: kv[1].get("source", ""))]
    data["ingesters_running"] = len(corpus.ingesters())

    def human(d: dict[str, Any]) -> None:
        from rich.table import Table

        out = _util.out
        out.print(f"corpus [bold]{d['name']}[/]: {d['inputs']} input(s), {d['shards']} shard(s), {d['documents']:,} documents, {d['sentences']:,} sentences, {d['tokens']:,} tokens, {_util.human_bytes(d['bytes'])}")
        out.print("options: " + ", ".join(f"{k}={v}" for k, v in sorted(d["options"].items()) if k != "scheme"))  # scheme: the tokenizer format version, for nlpzk itself (kept in --json)
        if d["ingesters_running"]:
            out.print(f"[yellow]{d['ingesters_running']} ingest run(s) in progress[/]")
        t = Table("shard", "source", "documents", "sentences", "tokens", "size", "sha256")
        for s in d["shard_list"]:
            t.add_row(s["id"], ", ".join(s.get("sources", [])), f"{s['documents']:,}", f"{s['sentences']:,}", f"{s['tokens']:,}", _util.human_bytes(s["bytes"]), s["sha256"][:12])
        out.print(t)

    _util.emit(data, as_json, human)


@app.command("verify")
def verify(ctx: typer.Context, name: str = typer.Argument(..., help="Corpus name."), as_json: bool = _util.JsonOption) -> None:
    """Re-read every shard: check its file exists, its sha256 and its counts; list unregistered files.

    Exits with code 7 when a shard is missing or corrupt. Example: nlpzk corpus verify sample
    """
    from nlpzk.corpus import Corpus
    from nlpzk.errors import IntegrityError

    report = Corpus.open(name, cluster=_util.cluster(ctx)).verify()

    def human(r: dict[str, Any]) -> None:
        out = _util.out
        out.print(f"corpus [bold]{r['corpus']}[/]: checked {r['shards']} shard(s) and {r['inputs']} input hash file(s)")
        for m in r["missing"]:
            out.print(f"  [red]missing[/] {m.get('shard') or 'hashes of input ' + m['input']}: {m['path']}")
        for c in r["corrupt"]:
            out.print(f"  [red]corrupt[/] {c.get('shard') or 'hashes of input ' + c['input']}: {c['problem']}")
        for s in r["stray"]:
            out.print(f"  [yellow]stray[/] {s} (no znode" + ("; an ingester holds claims: still running, or killed less than a session timeout ago" if r["ingesters_running"] else "; left by an interrupted ingest") + ")")
        for s in r["temporary"]:
            out.print(f"  [yellow]temporary[/] {s}")
        if r["ok"]:
            out.print("  [green]ok[/]")

    _util.emit(report, as_json, human)
    if not report["ok"]:
        sys.stdout.flush()
        raise IntegrityError(
            f"corpus {name!r}: {len(report['missing'])} missing and {len(report['corrupt'])} corrupt file(s)",
            hint="re-ingest the affected inputs into a new corpus, or delete and re-ingest this one",
        )


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Corpus name."),
    yes: bool = _util.YesOption,
    force: bool = typer.Option(False, "--force", help="Delete even while an ingest is running or unfinished training jobs use it (or a job whose node is damaged might), or when its node holds no JSON document."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Delete a corpus: mark it, delete its shard files, then its registry nodes (run again to finish one stopped half-way).

    Example: nlpzk corpus delete sample --yes
    """
    from nlpzk.corpus import Corpus

    corpus = Corpus.open_to_delete(name, cluster=_util.cluster(ctx), force=force)  # finishes a delete stopped half-way; deletes a damaged one
    _util.confirm(f"delete corpus {name!r} and all its shards?", yes)
    result = corpus.delete(force=force)

    def human(r):
        damaged = f" (damaged: its {r['damaged']})" if r["damaged"] else ""
        _util.out.print(f"deleted corpus [bold]{name}[/]{damaged}: {r['shards']} shard(s), {r['files']} file(s)")

    _util.emit(dict(result, corpus=name), as_json, human)
