"""``nlpzk model``: trained vectors, versioned and tied to their vocabulary version."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer
from rich.table import Table

from . import _util

app = typer.Typer(help="List, evaluate, query and export trained models.", no_args_is_help=True)

RefArg = typer.Argument(..., metavar="NAME[@v|:tag]", help="Model name, optionally @version or :tag (default :latest).")


def _progress(what: str):
    """A spinner on stderr while long work runs, only when a person is watching."""
    import contextlib

    return _util.err.status(what) if _util.err.is_terminal else contextlib.nullcontext()


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: bool = _util.JsonOption) -> None:
    """Every model name with its version count, tags, vocabulary and headline scores.

    Example: nlpzk model list
    """
    from nlpzk.models import list_models

    rows = list_models(_util.cluster(ctx))

    def human(rows) -> None:
        if not rows:
            _util.out.print("no models yet (a finished training job registers one)")
            return
        def cells(r):
            vocab = f"{r['vocab']['name']}@v{r['vocab']['version']}" if r["vocab"] else "-"
            tags = ", ".join(f"{t}->v{v}" for t, v in r["tags"].items())
            scores = _util.scores_cell(r["eval"], r.get("train_scores"))
            return [_util.named(r), str(r["versions"]), f"v{r['latest']}" if r["latest"] else "-", tags, vocab, _fmt(r["words"]), _fmt(r["dim"]), scores]

        _util.print_table(Table("model", "versions", "latest", "tags", "vocab", "words", "dim", "scores"), rows, cells)

    _util.emit(rows, as_json, human)


@app.command("register")
def register(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="A finished training job."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (default: the job's name)."),
    tags: Optional[List[str]] = typer.Option(None, "--tag", help="Tags to move to the job's version, also when it was registered before (repeat; default: latest, on a new version only)."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Register a finished job's vectors as the next model version (if already registered: only moves the --tag tags;
    if the version registered from it was deleted: registers them again).

    Example: nlpzk model register w2v --name wiki --tag latest --tag candidate
    """
    from nlpzk.models import register_job

    # tags asked for by name also move when the job was registered before; the default latest does not
    # asked for by name: a version from the job that was deleted is registered again (train run does not)
    model, version = register_job(_util.cluster(ctx), job, name, tags=tuple(tags) if tags else ("latest",), retag=bool(tags), again=True)
    _util.emit({"name": model, "version": version, "job": job}, as_json, lambda d: _util.out.print(f"job {d['job']} -> model {d['name']}@v{d['version']}"))


@app.command("show")
def show(ctx: typer.Context, ref: str = RefArg, as_json: bool = _util.JsonOption) -> None:
    """One model version: file, checksum, vocabulary, job, hyper-parameters, stored eval scores.

    Example: nlpzk model show wiki@v2
    """
    from nlpzk.models import model_doc, parse_ref

    name, version, tag = parse_ref(ref)
    doc = model_doc(_util.cluster(ctx), name, version, tag)

    def human(d) -> None:
        vocab = d.get("vocab") or {}
        missing = "" if d["vocab_exists"] else "  [red](deleted!)[/]"
        _util.out.print(f"[bold]{d['name']}@v{d['version']}[/]  tags: {', '.join(d['tags']) or '-'}")
        _util.out.print(f"  vectors  {d.get('words')} x {d.get('dim')}  {d.get('path')}  ({_util.human_bytes(d.get('bytes') or 0)}, sha256 {str(d.get('sha256'))[:12]}...)")
        _util.out.print(f"  vocab    {vocab.get('name')}@v{vocab.get('version')}{missing}")
        _util.out.print(f"  job      {d.get('job') or '-'}")
        if d.get("spec"):
            _util.out.print("  spec     " + ", ".join(f"{k}={v}" for k, v in sorted(d["spec"].items())))
        for bench, s in (d.get("eval") or {}).items():
            parts = ", ".join(f"{k} {_fmt(v)}" for k, v in s.items() if k != "sections")
            _util.out.print(f"  {bench:<11}{parts}")
        if d.get("train_scores"):
            _util.out.print("  at training (30,000 most frequent words): " + ", ".join(f"{k} {_fmt(v)}" for k, v in d["train_scores"].items()))

    _util.emit(doc, as_json, human)


@app.command("tag")
def tag(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME@vN", help="The version to tag (or NAME:TAG to copy a tag)."),
    tag_name: str = typer.Argument(..., metavar="TAG", help="Tag to create or move (not a version-like name such as v3)."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Point TAG at a version (created or moved atomically); readers following the tag see the move.

    Example: nlpzk model tag wiki@v3 stable
    """
    from nlpzk.models import parse_ref, tag_model

    name, version, from_tag = parse_ref(ref)
    cluster = _util.cluster(ctx)
    if version is None:
        from nlpzk.models import model_doc

        version = model_doc(cluster, name, None, from_tag)["version"]
    tag_model(cluster, name, version, tag_name)
    _util.emit({"name": name, "tag": tag_name, "version": version}, as_json, lambda d: _util.out.print(f"{d['name']}:{d['tag']} -> v{d['version']}"))


@app.command("untag")
def untag(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="Model name."),
    tag_name: str = typer.Argument(..., metavar="TAG", help="Tag to remove (not latest)."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Remove a tag (the version it pointed at stays).

    Example: nlpzk model untag wiki stable
    """
    from nlpzk.models import untag_model

    untag_model(_util.cluster(ctx), name, tag_name)
    _util.emit({"name": name, "tag": tag_name, "removed": True}, as_json, lambda d: _util.out.print(f"removed tag {d['tag']} of {d['name']}"))


@app.command("delete")
def delete(ctx: typer.Context, ref: str = typer.Argument(..., metavar="NAME[@v]", help="A version, or a whole model."), yes: bool = _util.YesOption, as_json: bool = _util.JsonOption) -> None:
    """Delete one version (NAME@v: its znode, then its file) or a whole model (NAME: marked, files, then znodes; run again to finish one stopped half-way).

    Example: nlpzk model delete wiki@v1 --yes
    """
    from nlpzk.models import delete_model, parse_ref

    name, version, tag = parse_ref(ref)
    cluster = _util.cluster(ctx)
    if tag is not None:
        from nlpzk.models import model_doc

        version = model_doc(cluster, name, None, tag)["version"]
    what = f"version v{version} of model {name}" if version is not None else f"model {name} with all its versions"
    _util.confirm(f"delete {what}?", yes)
    result = delete_model(cluster, name, version)
    _util.emit(result, as_json, lambda d: _util.out.print(f"deleted {what}" + (f" (tags {', '.join(d['tags'])} removed or moved)" if d["tags"] else "")))


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    ref: str = RefArg,
    against: Optional[str] = typer.Option(None, "--against", metavar="OTHER", help="Evaluate another model too and print both side by side."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Run only these benchmarks: wordsim353, simlex999, analogy, sentiment, heldout."),
    workers: Optional[int] = typer.Option(None, "--workers", "-k", min=0, help="Also compute held-out loss over corpus shards with K local worker processes (leased shards)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Held-out corpus for --workers / --only heldout (default: the corpus the job trained on)."),
    save: bool = typer.Option(True, "--save/--no-save", help="Store the scores on the model version's znode."),
    sections: bool = typer.Option(False, "--sections", help="Also print analogy accuracy per section."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Score a model on WordSim-353, SimLex-999, Google analogies, a sentiment classifier (and held-out loss).

    With --workers K the held-out loss is computed by K worker processes that lease corpus shards.

    Example: nlpzk model eval wiki --against wiki@v1
    """
    from nlpzk.eval import BENCHMARKS, compare, evaluate_model
    from nlpzk.models import parse_ref

    from nlpzk.errors import InvalidInputError

    unknown = [b for b in only or () if b not in BENCHMARKS + ("heldout",)]
    if unknown:
        raise InvalidInputError(f"unknown benchmark {unknown[0]!r}", hint=f"choose from: {', '.join(BENCHMARKS + ('heldout',))}")
    cluster = _util.cluster(ctx)
    benchmarks = tuple(b for b in only if b != "heldout") if only else BENCHMARKS
    heldout = workers is not None or (only is not None and "heldout" in only)
    if corpus is not None and not heldout:
        raise InvalidInputError("--corpus is the held-out corpus: it needs --workers K (or --only heldout)", hint=f"e.g. nlpzk model eval {ref} --workers 2 --corpus {corpus}")
    results = []
    for r in [ref] + ([against] if against else []):
        name, version, tag = parse_ref(r)
        with _progress(f"evaluating {r} ({', '.join(benchmarks)})"):
            result = evaluate_model(cluster, name, version, tag, benchmarks=benchmarks, save=save)
        if heldout:
            from nlpzk.eval.heldout import evaluate_heldout

            k = 2 if workers is None else workers

            def started(eval_id: str) -> None:  # the id is what `model eval-worker` on another machine needs
                print(f"held-out evaluation {eval_id}: more workers can join with: nlpzk model eval-worker {name} {eval_id}", file=sys.stderr, flush=True)

            with _progress(f"held-out loss of {result['model']} with {k} worker(s)"):
                result["scores"]["heldout"] = evaluate_heldout(cluster, name, result["version"], workers=k, corpus=corpus, save=save, on_start=started)
        results.append(result)
    rows = compare(*results)

    def human(_) -> None:
        table = Table("metric", *(r["model"] for r in results))
        for row in rows:
            if row["metric"].startswith("  ") and not sections:
                continue
            table.add_row(row["metric"], *(_fmt(row.get(r["model"])) for r in results))
        _util.out.print(table)
        for r in results:
            s = r["scores"].get("sentiment")
            if s:
                verdict = "beats" if s["accuracy"] > s["baseline"] else "does NOT beat"
                _util.out.print(f"{r['model']}: sentiment classifier {verdict} the majority baseline ({s['accuracy']:.3f} vs {s['baseline']:.3f}, {s['folds']}-fold CV)")

    _util.emit({"models": results, "table": rows}, as_json, human)


@app.command("eval-worker")
def eval_worker(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model being evaluated."),
    eval_id: str = typer.Argument(..., help="The running evaluation (a child of /models/NAME/evals: nlpzk zk tree /models/NAME/evals)."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Join a running held-out evaluation from another machine: score its shards until none is left.

    Example: nlpzk model eval-worker wiki e-0123456789ab
    """
    from nlpzk.eval.heldout import work

    report = work(_util.cluster(ctx), name, eval_id)
    _util.emit(report, as_json, lambda r: _util.out.print(f"worker {r['worker']}: {r['shards']} shards scored, {r['fenced']} fenced"))


@app.command("similar")
def similar(
    ctx: typer.Context,
    ref: str = RefArg,
    word: str = typer.Argument(..., help="The word to find neighbours of."),
    n: int = typer.Option(10, "-n", "--topn", min=1, help="How many neighbours."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Nearest neighbours of WORD by cosine similarity. An unknown word gets close-token suggestions.

    Example: nlpzk model similar wiki king -n 5
    """
    from nlpzk.models import Model

    model = Model.open(ref, cluster=_util.cluster(ctx))
    hits = model.similar(word, n)
    _util.emit({"model": model.ref, "word": word, "similar": [{"token": t, "similarity": s} for t, s in hits]}, as_json, lambda d: _print_hits(d["similar"]))


@app.command("analogy")
def analogy(
    ctx: typer.Context,
    ref: str = RefArg,
    a: str = typer.Argument(..., metavar="A", help="A word (man, in man : king = woman : ?)."),
    b: str = typer.Argument(..., metavar="B", help="The word A relates to (king)."),
    c: str = typer.Argument(..., metavar="C", help="The word to relate the same way (woman)."),
    n: int = typer.Option(5, "-n", "--topn", min=1, help="How many answers."),
    as_json: bool = _util.JsonOption,
) -> None:
    """A is to B as C is to ...? (nearest to B - A + C).

    Example: nlpzk model analogy wiki man king woman
    """
    from nlpzk.models import Model

    model = Model.open(ref, cluster=_util.cluster(ctx))
    hits = model.analogy(a, b, c, n)
    _util.emit({"model": model.ref, "query": [a, b, c], "answers": [{"token": t, "similarity": s} for t, s in hits]}, as_json, lambda d: _print_hits(d["answers"]))


def _print_hits(hits) -> None:
    table = Table("token", "cosine")
    for h in hits:
        table.add_row(h["token"], f"{h['similarity']:.4f}")
    _util.out.print(table)


@app.command("export")
def export(
    ctx: typer.Context,
    ref: str = RefArg,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="word2vec (text), word2vec-bin, or tsv (TensorBoard projector); default: word2vec-bin for a .bin file, else word2vec.", show_default=False),
    out: str = typer.Option(..., "--out", "-o", help="Output file (word2vec formats; - for standard output, text only) or directory (tsv)."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Write the vectors in a format other tools read (gensim load_word2vec_format, TensorBoard projector).

    Example: nlpzk model export wiki@v2 --format word2vec-bin --out wiki.bin
    """
    from nlpzk.models import Model

    if fmt is None:  # gensim's own convention: .bin is the binary format
        fmt = "word2vec-bin" if out.lower().endswith(".bin") else "word2vec"
    model = Model.open(ref, cluster=_util.cluster(ctx))
    if out == "-" and as_json:
        from nlpzk.errors import InvalidInputError

        raise InvalidInputError("--json and --out - would share standard output", hint="drop --json, or give --out a file name")
    written = model.export(fmt, out)
    if out == "-":
        return  # the vectors were the output
    _util.emit({"model": model.ref, "format": fmt, "files": written}, as_json, lambda d: _util.out.print(f"wrote {', '.join(d['files'])}"))
