"""The znode layout, in one place. Every path nlpzk reads or writes is built here.

All paths are relative to the chroot (default ``/nlpzk``); ``docs/architecture.md`` documents each
node's document::

    /corpora/<c>                                 {options, created[, deleting]}
    /corpora/<c>/inputs                          {"last": key}: bumped by every commit
    /corpora/<c>/inputs/<key>                    done-marker of one input file
    /corpora/<c>/shards/<key>-<seq>              {path, sha256, bytes, sentences, tokens, documents, ...}
    /corpora/<c>/claims/<key>                    ephemeral: an ingester works on this input
    /corpora/<c>/ingesters/<member>              ephemeral: one per running ingest
    /vocab/<name>                                {next_version[, deleting]}
    /vocab/<name>/versions/vNNNNNNNNNN           {path, sha256, size, parent, corpus, shards, params}
    /vocab/<name>/tags/<tag>                     "vNNNNNNNNNN"
    /jobs/<job>                                  {spec, state, round, words, final}
    /jobs/<job>/workers/<worker-id>              ephemeral membership
    /jobs/<job>/fences/<shard>                   fence counter per shard (its znode version)
    /jobs/<job>/mfences/<part>                   fence counter per merge part
    /jobs/<job>/rounds/<r>                       {params, sums, words_before, opened; when merged: words, loss, ...}
    /jobs/<job>/rounds/<r>/leases/<shard>        ephemeral lease
    /jobs/<job>/rounds/<r>/done/<shard>          {worker, contrib, words, loss}
    /jobs/<job>/rounds/<r>/mleases/<part>        ephemeral lease of a merge row range
    /jobs/<job>/rounds/<r>/mdone/<part>          {worker, path, rows, sum}
    /jobs/<job>/rounds/<r>/merge                 ephemeral: the worker publishing round r
    /models/<name>                               {next_version[, deleting]}
    /models/<name>/versions/vNNNNNNNNNN          {path, sha256, vocab, job, spec, eval}
    /models/<name>/tags/<tag>                    "vNNNNNNNNNN"
    /models/<name>/evals/<id>[/owner|fences|leases|done/<shard>]   a running distributed evaluation
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..errors import InvalidInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

CORPORA = "/corpora"
VOCAB = "/vocab"
JOBS = "/jobs"
MODELS = "/models"
ROOTS = (CORPORA, VOCAB, JOBS, MODELS)
#: ``/pending/jobs/<job>``: a job whose files are being written before its node exists (so that gc
#: can tell a creation killed half-way from another installation's files on a shared store)
PENDING = "/pending"
GUARDS = "/guards"


def check_name(kind: str, name: str) -> str:
    """Names become znode and file names: letters, digits, ``._-``, at most 128 characters."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise InvalidInputError(
            f"invalid {kind} name {name!r}",
            hint="use letters, digits, '.', '_' or '-' (at most 128, not starting with '.', '_' or '-')",
        )
    return name


def reads_as_version(text: str) -> bool:
    """``v7``, ``V7`` or ``7``: what a version argument looks like (and a tag name may not)."""
    return re.fullmatch(r"[vV]?[0-9]+", text) is not None


def check_tag(tag: str) -> str:
    """A tag name: a name (:func:`check_name`) that does not read as a version (``v7``, ``7``),
    which every ``NAME:tag`` / ``NAME@v7`` argument would otherwise take one for the other."""
    check_name("tag", tag)
    if reads_as_version(tag):
        raise InvalidInputError(f"tag name {tag!r} looks like a version number", hint="pick a name that is not v<digits> or <digits>, e.g. stable or release-7")
    return tag


def version_name(n: int) -> str:
    """``7 -> 'v0000000007'`` (ZooKeeper sequence width, so names sort as numbers)."""
    return f"v{n:010d}"


def parse_version(text: str) -> int:
    """``'v7'``, ``'7'`` or ``'v0000000007'`` -> 7."""
    if not reads_as_version(text):  # (ASCII digits only: str.isdigit() also says yes to '²', which int() refuses)
        raise InvalidInputError(f"{text!r} is not a version", hint="versions look like v7 or 7")
    return int(text.lstrip("vV"))


def open_args(name: Any, version: Any, tag: Any, parse: Callable[[str], tuple[str, Any, Any]]) -> tuple[Any, Any, Any]:
    """``(name, version, tag)`` of an ``open()`` call: ``name`` may be a ref such as ``wiki@v3`` or
    ``wiki:stable`` (split by ``parse``), and then comes without ``version``/``tag``; a version and a
    tag are not both given (InvalidInputError)."""
    if isinstance(name, str) and ("@" in name or ":" in name):
        if version is not None or tag is not None:
            raise InvalidInputError(f"{name!r} already says which version: give it there or as version=/tag=, not both")
        name, version, tag = parse(name)
    if version is not None and tag is not None:
        raise InvalidInputError("give a version or a tag, not both")
    return name, version, tag


def stored_version(data: bytes, znode: str) -> int:
    """The version a tag or once-marker znode holds; IntegrityError naming the znode when it holds none
    (it was changed outside nlpzk: not the user's typo that ``parse_version`` reports)."""
    from ..errors import IntegrityError

    text = data.decode("utf-8", "replace")
    if not reads_as_version(text):
        raise IntegrityError(
            f"znode {znode} should hold a version and holds {data[:40]!r}",
            hint="it was changed outside nlpzk; set it to a version name such as v0000000007 (e.g. nlpzk vocab tag), or delete the znode",
        )
    return int(text.lstrip("vV"))


# -- corpora ---------------------------------------------------------------------------------------

def corpus(name: str) -> str:
    return f"{CORPORA}/{check_name('corpus', name)}"


def shards(name: str) -> str:
    return f"{corpus(name)}/shards"


def shard(name: str, shard_id: str) -> str:
    return f"{shards(name)}/{shard_id}"


def inputs(name: str) -> str:
    return f"{corpus(name)}/inputs"


def input_done(name: str, key: str) -> str:
    return f"{inputs(name)}/{key}"


def claims(name: str) -> str:
    return f"{corpus(name)}/claims"


def claim(name: str, key: str) -> str:
    return f"{claims(name)}/{key}"


def ingesters(name: str) -> str:
    return f"{corpus(name)}/ingesters"


def ingester(name: str, member: str) -> str:
    return f"{ingesters(name)}/{member}"


def corpus_users(name: str) -> str:
    """Empty node whose znode version every job creation on the corpus and its delete bump (the guard).

    Outside the corpus's tree: the delete removes it last, and only while nobody holds it
    (``versioned.GuardHold``), so nobody sets a version read from a guard since deleted."""
    return f"{GUARDS}/corpora/{check_name('corpus', name)}"


# -- vocabularies ----------------------------------------------------------------------------------

def vocab(name: str) -> str:
    return f"{VOCAB}/{check_name('vocabulary', name)}"


def vocab_versions(name: str) -> str:
    return f"{vocab(name)}/versions"


def vocab_version(name: str, n: int) -> str:
    return f"{vocab_versions(name)}/{version_name(n)}"


def vocab_tags(name: str) -> str:
    return f"{vocab(name)}/tags"


def vocab_users(name: str) -> str:
    """Empty node whose znode version every job creation on the vocabulary, every model registered
    on it and its deletes bump (the guard). Outside the vocabulary's tree, as for corpora; deleted
    with the whole vocabulary."""
    return f"{GUARDS}/vocab/{check_name('vocabulary', name)}"


def vocab_tag(name: str, tag: str) -> str:
    return f"{vocab_tags(name)}/{check_name('tag', tag)}"


# -- jobs ------------------------------------------------------------------------------------------

def job(name: str) -> str:
    return f"{JOBS}/{check_name('job', name)}"


def pending_job(name: str) -> str:
    return f"{PENDING}/jobs/{check_name('job', name)}"


def job_workers(name: str) -> str:
    return f"{job(name)}/workers"


def job_worker(name: str, worker_id: str) -> str:
    return f"{job_workers(name)}/{worker_id}"


def job_rounds(name: str) -> str:
    return f"{job(name)}/rounds"


def job_round(name: str, r: int) -> str:
    return f"{job_rounds(name)}/{r:08d}"


def round_leases(name: str, r: int) -> str:
    return f"{job_round(name, r)}/leases"


def round_lease(name: str, r: int, shard_id: str) -> str:
    return f"{round_leases(name, r)}/{shard_id}"


def round_done(name: str, r: int) -> str:
    return f"{job_round(name, r)}/done"


def round_done_shard(name: str, r: int, shard_id: str) -> str:
    return f"{round_done(name, r)}/{shard_id}"


# -- models ----------------------------------------------------------------------------------------

def model(name: str) -> str:
    return f"{MODELS}/{check_name('model', name)}"


def model_versions(name: str) -> str:
    return f"{model(name)}/versions"


def model_version(name: str, n: int) -> str:
    return f"{model_versions(name)}/{version_name(n)}"


def model_tags(name: str) -> str:
    return f"{model(name)}/tags"


def model_tag(name: str, tag: str) -> str:
    return f"{model_tags(name)}/{check_name('tag', tag)}"


def job_fences(name: str) -> str:
    """Persistent per-shard fence counters of a job (see :mod:`nlpzk.zk.lease`)."""
    return f"{job(name)}/fences"


def round_merge(name: str, r: int) -> str:
    """Ephemeral: the worker merging round ``r`` (one merger per round)."""
    return f"{job_round(name, r)}/merge"


# -- distributed evaluation of a model version (held-out loss over leased shards) --------------------

def model_evals(name: str) -> str:
    return f"{model(name)}/evals"


def model_eval(name: str, eval_id: str) -> str:
    return f"{model_evals(name)}/{check_name('evaluation', eval_id)}"


def eval_leases(name: str, eval_id: str) -> str:
    return f"{model_eval(name, eval_id)}/leases"


def eval_fences(name: str, eval_id: str) -> str:
    return f"{model_eval(name, eval_id)}/fences"


def eval_done(name: str, eval_id: str) -> str:
    return f"{model_eval(name, eval_id)}/done"


def job_merge_fences(name: str) -> str:
    """Persistent fence counters of merge parts (row ranges), like :func:`job_fences` for shards."""
    return f"{job(name)}/mfences"


def round_merge_leases(name: str, r: int) -> str:
    """Ephemeral leases of round ``r``'s merge parts (row ranges reduced by one worker each)."""
    return f"{job_round(name, r)}/mleases"


def round_merge_done(name: str, r: int) -> str:
    """``{worker, path, rows, seconds}`` per merged part of round ``r``."""
    return f"{job_round(name, r)}/mdone"


def round_contribs(name: str, r: int) -> str:
    """One node per contribution committed in round ``r``: ``{worker, units, words, loss, timings}``.

    The merge reads these (one per commit, a handful) instead of every unit's done marker."""
    return f"{job_round(name, r)}/contribs"
