"""``nlpzk vocab``: immutable vocabulary versions with stable ids, tags and lookups."""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from . import _util

app = typer.Typer(help="Build, tag, diff, export and look up vocabulary versions.", no_args_is_help=True)

SpecArg = typer.Argument(..., help="NAME, NAME@vN or NAME:TAG (default tag: latest).")


def _open(ctx: typer.Context, spec: str):
    from nlpzk.vocab import Vocabulary, parse_spec

    name, version, tag = parse_spec(spec)
    return Vocabulary.open(name, version, tag, cluster=_util.cluster(ctx))


def _integer(text: str) -> int | None:
    """``"-3"`` -> -3; None when ``text`` is not an integer (``"--5"`` and ``"²"`` pass ``str.isdigit()``, not ``int()``)."""
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else None


def _convert_hint(path: str) -> str:
    """How to turn a file that is not UTF-8 into one: iconv from its encoding (UTF-16 if it starts with a BOM)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        head = b""
    source = "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "latin1"
    src = shlex.quote(path)
    dst = shlex.quote(os.path.splitext(path)[0] + ".utf8.txt")
    return f"convert it to UTF-8 first, e.g. iconv -f {source} -t utf-8 {src} > {dst} (file -i {src} tells its encoding)"


def _summary(view) -> dict:
    """The version's document, as vocab list NAME gives it (nlpzk.vocab.version_document)."""
    from nlpzk.vocab import version_document
    from nlpzk.zk import paths, versioned

    tags = [t for t, v in versioned.tags(view.cluster.zk, paths.vocab(view.name)).items() if v == view.version]
    return version_document(view.name, view.version, view.doc, tags, view.unk_id)


@app.command("build")
def build_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Vocabulary name."),
    corpus: str = typer.Option(..., "--corpus", "-c", help="Corpus whose shards are counted."),
    min_count: int = typer.Option(1, "--min-count", help="Leave out tokens seen fewer times (a parent's tokens stay, marked inactive)."),
    max_size: Optional[int] = typer.Option(None, "--max-size", help="At most this many ids (parent ids and specials always stay)."),
    parent: Optional[str] = typer.Option(None, "--parent", help="vN or TAG of the same vocabulary: keep its ids, append new tokens."),
    specials: str = typer.Option("", "--specials", help='Comma-separated special tokens placed first, e.g. "<unk>,<pad>".'),
    tag: List[str] = typer.Option(["latest"], "--tag", "-t", help="Tag(s) moved to the new version (repeatable)."),
    processes: int = typer.Option(1, "--processes", "-p", help="Worker processes counting shards."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Count a corpus and register the next version of a vocabulary.

    Example: nlpzk vocab build wiki --corpus wiki-2024 --min-count 5 --specials "<unk>,<pad>" --tag latest
    """
    from nlpzk.vocab import build

    special_list = [s.strip() for s in specials.split(",")] if specials.strip() else []
    if any(not s for s in special_list):  # "a,,b" or "," named a special it left empty
        from nlpzk.errors import InvalidInputError

        raise InvalidInputError(f"--specials {specials!r} has an empty item", hint='give tokens comma-separated, e.g. --specials "<unk>,<pad>"')
    cluster = _util.cluster(ctx)
    view = build(cluster, name, corpus, min_count=min_count, max_size=max_size, parent=parent, specials=special_list, tags=tag, processes=processes)
    info = _summary(view)  # tags: those asked for, and `latest` too on a vocabulary's first version
    _util.emit(
        info,
        as_json,
        lambda d: _util.out.print(
            f"{d['name']} v{d['version']}: {_util.count(d['tokens'], 'token')} ({d['active']:,} active) from {d['corpus']} "
            f"({_util.count(d['shards']['count'], 'shard')}, {_util.count(d['shards']['tokens'], 'token')}); tags: {', '.join(d['tags']) or '-'}"
        ),
    )


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Vocabulary name; without it, list the vocabularies."),
    as_json: bool = _util.JsonOption,
) -> None:
    """List vocabularies, or the versions of one (with their tags).

    Example: nlpzk vocab list wiki
    """
    from nlpzk.vocab import versions, vocabularies

    cluster = _util.cluster(ctx)
    if name is None:
        rows = vocabularies(cluster)

        def human(rows):
            if not rows:
                _util.out.print("no vocabularies yet — build one: nlpzk vocab build NAME --corpus CORPUS")
                return
            # tag->v3, as model list and status print them
            _util.print_table(Table("name", "versions", "tags"), rows, lambda r: [
                _util.named(r), str(r["versions"]), ", ".join(f"{k}->v{v}" for k, v in sorted(r["tags"].items())) or "-"])

        _util.emit(rows, as_json, human)
        return
    rows = versions(cluster, name)

    def human_versions(rows):
        _util.print_table(Table("version", "tokens", "active", "parent", "corpus", "min_count", "tags"), rows, lambda r: [
            f"v{r['version']}", str(r["rows"]), str(r["active"]), f"v{r['parent']}" if r.get("parent") else "-", r["corpus"],
            str(r["params"]["min_count"]), ", ".join(r["tags"])], label=lambda r: f"v{r['version']}")

    _util.emit(rows, as_json, human_versions)


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    spec: str = SpecArg,
    head: int = typer.Option(10, "--head", min=0, help="Also show the first N ids."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Show one version: where its table is, what it was built from, its first ids.

    Example: nlpzk vocab show wiki:stable --head 20
    """
    view = _open(ctx, spec)
    info = _summary(view)
    n = min(max(head, 0), len(view))
    info["head"] = [{"id": i, "token": t, "count": int(c), "active": bool(a)} for i, (t, c, a) in enumerate(zip(view.tokens[:n].to_pylist(), view.counts[:n], view.active[:n]))]

    def human(d):
        _util.out.print(f"{d['name']} v{d['version']}: {_util.count(d['tokens'], 'token')}, {d['active']:,} active (min count {d['min_count']:,})")
        _util.out.print(f"  corpus {d['corpus']}: {_util.count(d['shards']['count'], 'shard')}, {_util.count(d['shards']['tokens'], 'token')}, shard set {d['shards']['hash'][:16]}")
        _util.out.print(f"  parent {'v' + str(d['parent']) if d.get('parent') else '-'}; specials {escape(', '.join(d['params']['specials'])) or '-'}")
        _util.out.print(f"  file {d['path']} ({_util.human_bytes(d['size'])}, sha256 {d['sha256'][:16]})")
        t = Table("id", "token", "count", "active")
        for r in d["head"]:
            t.add_row(str(r["id"]), escape(r["token"]), str(r["count"]), "yes" if r["active"] else "no")
        if d["head"]:
            _util.out.print(t)

    _util.emit(info, as_json, human)


@app.command("tag")
def tag_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME[@vN|:TAG]", help="Vocabulary name (then VERSION TAG follow), or NAME@vN / NAME:TAG (then TAG), as for model tag."),
    version: str = typer.Argument(..., metavar="VERSION|TAG", help="Version (vN) or an existing tag to copy; the tag to set after NAME@vN."),
    tag: Optional[str] = typer.Argument(None, metavar="[TAG]", help="Tag to create or move."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Point a tag at a version (followers switch to it).

    Example: nlpzk vocab tag wiki v3 stable
    """
    from nlpzk.vocab import parse_spec
    from nlpzk.vocab import tag as move

    if tag is None:  # nlpzk vocab tag wiki@v3 stable (the model tag form)
        if "@" not in name and ":" not in name:  # a missing argument: a usage error (exit 2)
            from nlpzk.zk.paths import reads_as_version

            if reads_as_version(version):  # `vocab tag wiki v3`: the tag is what is missing, not the version
                raise _util.usage_error(ctx, f"Missing argument 'TAG' (which tag should {name} {version} get? e.g. nlpzk vocab tag {name} {version} stable)")
            raise _util.usage_error(ctx, f"Missing argument 'TAG' (which version of {name!r} should get tag {version!r}? e.g. nlpzk vocab tag {name}@vN {version})")
        vname, number, from_tag = parse_spec(name)
        name, version, tag = vname, (f"v{number}" if number is not None else from_tag), version
    number = move(_util.cluster(ctx), name, version, tag)
    _util.emit({"name": name, "tag": tag, "version": number}, as_json, lambda d: _util.out.print(f"{name}:{tag} -> v{number}"))


@app.command("untag")
def untag_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Vocabulary name."),
    tag: str = typer.Argument(..., help="Tag to remove (not latest)."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Remove a tag (the version it pointed at stays; latest can be moved, not removed).

    Example: nlpzk vocab untag wiki candidate
    """
    from nlpzk.vocab import untag

    untag(_util.cluster(ctx), name, tag)
    _util.emit({"name": name, "tag": tag, "removed": True}, as_json, lambda d: _util.out.print(f"removed tag {d['tag']} of {d['name']}"))


@app.command("delete")
def delete_cmd(
    ctx: typer.Context,
    spec: str = typer.Argument(..., metavar="NAME[@vN|:TAG]", help="A version, or a whole vocabulary."),
    force: bool = typer.Option(False, "--force", help="Delete even while models or training jobs use it (or a job whose node is damaged might)."),
    yes: bool = _util.YesOption,
    as_json: bool = _util.JsonOption,
) -> None:
    """Delete one version (NAME@vN or NAME:TAG: its znode, then its file) or a whole vocabulary (NAME: marked, files, then znodes; run again to finish one stopped half-way).

    Refused while a model version or a training job uses it (they are named), unless --force.

    Example: nlpzk vocab delete wiki@v1 --yes
    """
    from nlpzk.vocab import delete, parse_spec

    name, version, tag = parse_spec(spec)
    if version is None and tag is None:
        what = f"vocabulary {name} with all its versions"
    else:
        what = f"vocabulary {name}@v{version}" if version is not None else f"the version of {name} tagged {tag}"
    _util.confirm(f"delete {what}?", yes)
    result = delete(_util.cluster(ctx), name, version if version is not None else tag, force=force)
    done = f"{name}@v{result['deleted'][0]}" if version is not None or tag is not None else f"vocabulary {name} ({len(result['deleted'])} version{'' if len(result['deleted']) == 1 else 's'})"
    _util.emit(result, as_json, lambda d: _util.out.print(f"deleted {done}" + (f" (tags {', '.join(d['tags'])} removed or moved)" if d["tags"] else "")))


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Vocabulary name."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Check that every version's table exists and matches its checksum (exit 7 if one does not).

    Example: nlpzk vocab verify wiki
    """
    from nlpzk.errors import IntegrityError
    from nlpzk.vocab import verify

    rows = verify(_util.cluster(ctx), name)

    def human(rows):
        for r in rows:
            _util.out.print(f"v{r['version']}  {'ok' if r['ok'] else 'BAD'}  {r['path'] or '-'}" + (f"  {r['problem']}" if r["problem"] else ""))

    _util.emit(rows, as_json, human)
    bad = [r for r in rows if not r["ok"]]
    if bad:
        raise IntegrityError(f"{len(bad)} of {len(rows)} versions of {name!r} are broken: " + ", ".join(f"v{r['version']}" for r in bad), hint="rebuild them or restore the files")


@app.command("diff")
def diff_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Vocabulary name."),
    a: str = typer.Argument(..., help="Older version (vN or tag)."),
    b: str = typer.Argument(..., help="Newer version (vN or tag)."),
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Show at most N entries per list."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Show tokens added, removed or marked inactive, and the largest count changes between two versions.

    Example: nlpzk vocab diff wiki v1 v2 --limit 10
    """
    from nlpzk.vocab import diff

    d = diff(_util.cluster(ctx), name, a, b, limit=limit)

    def human(d):
        _util.out.print(f"{name} v{d['a']} ({_util.count(d['size_a'], 'token')}) -> v{d['b']} ({_util.count(d['size_b'], 'token')}); ids of common tokens {'unchanged' if d['ids_stable'] else 'DIFFER'}")
        for key, label in (("added", "added"), ("removed", "removed"), ("marked", "marked inactive"), ("unmarked", "active again")):
            rows = d[key]
            _util.out.print(f"{label}: {d[key + '_total']}" + (": " + ", ".join(f"{escape(r['token'])} (id {r['id']}, count {r['count']})" for r in rows) if rows else ""))
        if d["changes"]:
            t = Table("id", "token", "before", "after", "change")
            for r in d["changes"]:
                t.add_row(str(r["id"]), escape(r["token"]), str(r["before"]), str(r["after"]), f"{r['change']:+d}")
            _util.out.print(f"largest count changes ({_util.count(d['changed_total'], 'token')} changed):")
            _util.out.print(t)

    _util.emit(d, as_json, human)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    spec: str = SpecArg,
    fmt: str = typer.Option("txt", "--format", "-f", help="txt (vocab.txt, one token per line in id order) | json (token->id) | freq (gensim/word2vec 'token count')."),
    out: str = typer.Option("-", "--out", "-o", help="Output file; - for stdout."),
) -> None:
    """Export a version to a format other tools read.

    Example: nlpzk vocab export wiki:stable --format freq --out wiki.freq
    """
    from nlpzk.vocab import export, write_export

    view = _open(ctx, spec)
    if out == "-":
        write_export(view, fmt, sys.stdout)
        sys.stdout.flush()
    else:
        n = export(view, fmt, out)
        print(f"wrote {n} tokens of {view.name} v{view.version} to {out}", file=sys.stderr)


@app.command("lookup")
def lookup_cmd(
    ctx: typer.Context,
    spec: str = SpecArg,
    items: List[str] = typer.Argument(..., help="Tokens (or ids with --ids)."),
    ids: bool = typer.Option(False, "--ids", help="Look up ids and print their tokens."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Token -> id and count (or id -> token with --ids).

    Example: nlpzk vocab lookup wiki:stable the cat --json
    """
    from nlpzk.errors import InvalidInputError

    view = _open(ctx, spec)
    rows = []
    if ids:
        for item in items:
            i = _integer(item)
            if i is None:
                raise InvalidInputError(f"{item!r} is not an id", hint="ids are integers; drop --ids to look up tokens")
            ok = 0 <= i < len(view)
            rows.append({"id": i, "token": view.token(i) if ok else None, "count": int(view.counts[i]) if ok else None})
    else:
        for item in items:
            i = view.id(item)
            rows.append({"token": item, "id": i, "count": view.count(item), "active": bool(view.active[i]) if i is not None else None})

    def shown(token: str) -> str:
        # one line per item, tab-separated: a tab, newline or other control character is shown escaped
        return token if token.isprintable() else repr(token)

    def human(rows):
        for r in rows:
            if ids:
                print(f"{r['id']}\t{shown(r['token']) if r['token'] is not None else '(no such id)'}\t{r['count'] if r['count'] is not None else ''}")
            else:
                flag = "" if r["id"] is None else ("\tactive" if r["active"] else "\tinactive (below min-count)")
                print(f"{shown(r['token'])}\t{r['id'] if r['id'] is not None else '(unknown)'}\t{r['count']}{flag}")

    _util.emit({"name": view.name, "version": view.version, "results": rows}, as_json, lambda d: human(d["results"]))


@app.command("encode")
def encode_cmd(
    ctx: typer.Context,
    spec: str = SpecArg,
    files: List[str] = typer.Argument(None, help="Text files (UTF-8); none or - reads stdin."),
    oov: str = typer.Option("unk", "--oov", help="Id for unknown tokens: 'unk' (the <unk> special's id, else -1) or an integer."),
    strict: bool = typer.Option(False, "--strict", help="Fail on invalid UTF-8 instead of replacing (and counting) bad bytes, as corpus ingest --strict."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Tokenize text the way the vocabulary's corpus was tokenized and print ids, one sentence per line.

    Example: echo "The cat sat." | nlpzk vocab encode wiki:stable
    """
    from nlpzk.corpus import Corpus
    from nlpzk.errors import InvalidInputError
    from nlpzk.ingest import make_tokenizer

    oov_id = None if oov == "unk" else _integer(oov)
    if oov != "unk" and oov_id is None:
        raise InvalidInputError(f"--oov must be 'unk' or an integer, not {oov!r}")
    view = _open(ctx, spec)
    tokenize = make_tokenizer(Corpus.open(view.doc["corpus"], cluster=view.cluster).options)
    texts = []
    replaced = 0

    def decode(data: bytes, what: str, hint: str) -> str:
        # as corpus ingest reads text: binary (a NUL byte, or over 10 % invalid UTF-8) is refused; a few
        # bad bytes (a legacy encoding's accents) are replaced by U+FFFD and counted, unless --strict
        nonlocal replaced
        if b"\x00" in data:
            raise InvalidInputError(f"{what} looks binary (it has NUL bytes), not UTF-8 text", hint=hint)
        if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows editors), dropped as corpus ingest drops it
            data = data[3:]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            first = exc.start + 1
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
        if len(data) >= 256 and bad > 0.10 * len(data):
            raise InvalidInputError(f"{what} looks binary ({bad:,} invalid UTF-8 sequences in {len(data):,} bytes), not UTF-8 text", hint=hint)
        if strict:
            raise InvalidInputError(f"{what} is not UTF-8 text (byte {first})", hint=hint)
        replaced += bad
        return text

    for f in files or ["-"]:
        if f == "-":
            # bytes, decoded here: a text stdin in the C locale turns bad bytes into surrogates that spaCy chokes on
            texts.append(decode(sys.stdin.buffer.read(), "standard input", "pipe it through iconv first, e.g. ... | iconv -f latin1 -t utf-8 | nlpzk vocab encode SPEC"))
            continue
        try:
            if os.path.exists(f) and not os.path.isdir(f) and not stat.S_ISREG(os.stat(f).st_mode):
                # /dev/zero would fill the memory, a FIFO with no writer would wait forever
                raise InvalidInputError(f"input file {f}: not a regular file (a FIFO, device or socket)", hint="copy the data into a file first, or pipe it to - (stdin)")
            with open(f, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:  # a path the user gave, not a registry name: bad input (exit 5), as for corpus ingest
            raise InvalidInputError(f"input file {f} does not exist", hint="check the path, or pass - (or nothing) to read standard input") from None
        except IsADirectoryError:
            raise InvalidInputError(f"input file {f} is a directory", hint="pass text files (or - for stdin)") from None
        texts.append(decode(data, f"input file {f}", _convert_hint(f)))
    if replaced:
        print(f"warning: replaced {replaced:,} invalid UTF-8 sequence(s) by U+FFFD (use --strict to refuse them)", file=sys.stderr)
    import numpy as np

    sentences = [s for text in texts for s in tokenize(text)]
    # one batch for all sentences: a big input takes the Arrow join instead of a dict call per token
    flat = view.encode([t for s in sentences for t in s], oov=oov_id)
    encoded = [part.tolist() for part in np.split(flat, np.cumsum([len(s) for s in sentences])[:-1])] if sentences else []
    if as_json:
        _util.emit({"name": view.name, "version": view.version, "sentences": [{"tokens": s, "ids": e} for s, e in zip(sentences, encoded)]}, True)
    else:
        sys.stdout.writelines(" ".join(map(str, e)) + "\n" for e in encoded)
