"""``nlpzk train``: distributed word2vec over leased corpus shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

import typer

from . import _util
from .report import report

app = typer.Typer(help="Run, join, resume and inspect distributed word2vec training jobs.", no_args_is_help=True)
app.command("report")(report)


# train run, resume and worker: each worker's shard cache budget
_CACHE_MB = typer.Option(
    None, "--cache-mb", show_default=False,
    help="Memory per worker for shards kept across rounds, in MiB (default: a quarter of RAM / cores, at most 4096; 0 reads every shard every round).",
)


def _install_stop(stop: threading.Event) -> None:
    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _sigterm_as_ctrl_c() -> None:
    """Until the command follows its job: SIGTERM does what Ctrl-C does (one `error: interrupted`
    line, exit 130; files a job creation had written are left to nlpzk gc, as on Ctrl-C) instead of
    killing the process silently (exit 143) half-way through creating the job."""

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _check_local(workers: int | None, threads: int, cache_mb: int | None = None) -> None:
    """Refuse impossible local-process counts before anything is registered (a job, a membership)."""
    from nlpzk.errors import InvalidInputError
    from nlpzk.train.local import check_local_workers

    if workers is not None and workers < 0:
        raise InvalidInputError(f"--workers must be 0 or more, not {workers}")
    if threads < 1:
        raise InvalidInputError(f"--threads must be 1 or more, not {threads}")
    check_local_workers((os.cpu_count() or 1) if workers is None else workers, threads)  # None: train run / resume's default
    if cache_mb is not None and cache_mb < 0:
        raise InvalidInputError(f"--cache-mb must be 0 or more, not {cache_mb}")


def _na(value) -> str:
    """A score for people: 'n/a' where there is none (a benchmark whose words the vocabulary lacks)."""
    return "n/a" if value is None else str(value)


def _scores_line(scores: dict) -> str:
    return (
        f"WS353 {_na(scores.get('ws353'))} (oov {_na(scores.get('ws353_oov_pct'))}%)  SimLex {_na(scores.get('simlex'))} "
        f"(oov {_na(scores.get('simlex_oov_pct'))}%)  analogies {_na(scores.get('analogy'))} ({_na(scores.get('analogy_questions'))} questions)"
    )


def _watch(ctx: typer.Context, job: str, workers: int, threads: int, wait: bool, as_json: bool, cache_mb: int | None = None, created: bool = False) -> None:
    from nlpzk import train

    cluster = _util.cluster(ctx)
    procs = []
    stop = threading.Event()
    if wait:
        _install_stop(stop)  # before the workers start: a signal from here on stops them too
    if workers:
        log_dir = os.path.join(str(cluster.config.state_path), "train", job)
        procs = train.start_local_workers(cluster.config, job, workers, threads, log_dir=log_dir, cache_mb=cache_mb)
        print(f"started {workers} worker(s) (logs in {log_dir})", file=sys.stderr)
    if not wait:
        # the shape of the document printed at the end of a wait: nothing is registered yet
        st = train.status(cluster, job) if as_json else None
        _util.emit(st and _run_document(st, None, None), as_json, lambda _: print(f"job {job} {'created' if created else 'resumed'}"))
        return
    last_round = None
    progress = None
    failed = True  # any exit but the job's end or Ctrl-C stops the workers this command started
    from nlpzk.errors import ConflictError, NotFoundError, ZkUnavailableError
    from nlpzk.train.job import status_through_outage
    from nlpzk.train.local import check_workers_left
    from nlpzk.zk.rounds import CONNECTION_ERRORS

    # (train.status raises ZkUnavailableError for a connection error, as every library call made from outside nlpzk does)
    connection_errors = (ZkUnavailableError, *CONNECTION_ERRORS)

    try:
        if _util.err.is_terminal and not as_json:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=_util.err)
            progress.start()
            task = progress.add_task(f"train {job}", total=1, info="")
        told = False
        while not stop.is_set():
            try:
                # None while ZooKeeper is unreachable (looking at `stop` every second meanwhile);
                # ZkUnavailableError once the workers' reconnect limit has passed
                st = status_through_outage(cluster, job, procs, pause=1.0)
            except (NotFoundError, ConflictError):
                # gone, or marked by a train delete running now (not one stopped half-way: the
                # job was there a moment ago)
                raise ConflictError(
                    f"job {job!r} was deleted while this command followed it (nlpzk train delete)",
                    hint="its local workers were stopped; there is nothing to resume: train it again to get it back",
                ) from None
            if st is None:
                if progress is not None:
                    progress.update(task, info="ZooKeeper connection lost; waiting for it (the workers pause meanwhile)")
                elif not told:
                    print("ZooKeeper connection lost; waiting for it (the workers pause meanwhile)", file=sys.stderr, flush=True)
                told = True
                continue
            told = False  # a later outage is told again
            # total: the last merged round's words over its wall time, sync and merge included (not
            # averaged since this command started: the workers' start-up would read as slowness)
            last = next((h for h in reversed(st["history"]) if h.get("words") and h.get("wall_s")), None)
            rate = f"{last['words'] / last['wall_s']:,.0f}" if last else "-"
            per = ", ".join(f"{w.get('words_per_s', 0)}" for w in st["workers"].values())
            scored = next((h for h in reversed(st["history"]) if h.get("loss") is not None and h.get("words")), None)
            loss = round(scored["loss"] / scored["words"], 4) if scored else None  # per word, as train report gives it
            members = f"workers {len(st['workers'])} [{per}] w/s" if st["workers"] else "waiting for workers to join"
            # rounds are numbered from 0, as train status, train list, nlpzk status and the round znodes number them
            info = f"round {st['round']}/{st['rounds']}  {members}  total {rate} w/s  loss/word {_na(loss)}"
            if progress is not None:
                progress.update(task, total=st["total_words"], completed=st["words"], info=info)
            elif st["round"] != last_round and st["state"] != "done":  # the summary line follows
                print(info, file=sys.stderr, flush=True)
            last_round = st["round"]
            if st["state"] == "done":
                break
            check_workers_left(job, procs, st["workers"])
            time.sleep(1.0)
        failed = False
    finally:
        if progress is not None:
            progress.stop()
        if stop.is_set() or failed:
            train.stop_local_workers(procs)
    if stop.is_set():
        try:
            # not while disconnected: the request would wait for ZooKeeper (up to 120 s) after Ctrl-C
            st = train.status(cluster, job) if cluster.watch.connected.is_set() else None
        except connection_errors:
            st = None
        if st is None:
            _util.error_line(f"stopped while ZooKeeper is unreachable (the job's round is unknown); once it is back, continue with: nlpzk train resume {job}")
            raise typer.Exit(130)
        if st["state"] != "done":
            _util.error_line(f"stopped at round {st['round']} of {st['rounds']}; continue with: nlpzk train resume {job}")
            raise typer.Exit(130)
        # the job finished before the interrupt was handled: report it as done, as without one
    # The job is done; the local workers leave on their own (the last publisher may still be
    # registering the model). One that hangs is stopped rather than waited for: nothing is lost.
    deadline = time.monotonic() + 120
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            train.stop_local_workers([q for q in procs if q.poll() is None])
            break
    st = train.status(cluster, job)
    final = st["final"] or {}
    from nlpzk import models

    # The publisher of the last round registers the model; doing it again is a no-op that covers a
    # publisher that died between finishing the job and registering it. A version it registered
    # and the user deleted since stays deleted.
    deleted = None
    try:
        model, model_version = models.register_job(cluster, job, (st.get("spec") or {}).get("model") or job)
    except models.RegistrationDeleted as exc:
        model, model_version, deleted = exc.name, None, exc
    try:  # what that publisher left undone if it died after publishing (best effort, idempotent)
        train.tidy_finished(cluster, job)
    except Exception as exc:  # noqa: BLE001 - the job is done and registered; a later run or worker tidies
        print(f"warning: tidying the last rounds of {job} failed ({type(exc).__name__}: {exc}); nlpzk train resume {job} tries again", file=sys.stderr)

    def human(_):
        print(f"job {job} done: {st['rounds']} rounds, {st['words']:,} words, vectors for {final.get('vocab')} at {final.get('vectors')}")
        print(f"registered as model {model}@v{model_version}" if deleted is None else f"{deleted.message}: not registered again ({deleted.hint})")
        print(_scores_line(final.get("scores") or {}))

    _util.emit(_run_document(st, model, model_version, deleted), as_json, human)


def _run_document(st: dict, model: str | None, model_version: int | None, deleted=None) -> dict:
    """What `train run` / `train resume` --json print, waiting or not: the job's `train status`
    document, the model its vectors are registered as (``model``, ``model_version``: null until
    registered) and ``deleted_model_version`` (the version registered from it and deleted since, else null)."""
    return dict(
        st,
        model=model or (st.get("spec") or {}).get("model") or st["job"],
        model_version=model_version,
        deleted_model_version=None if deleted is None else deleted.number,
    )


@app.command()
def run(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="Job name (re-running an existing job resumes it)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Corpus to train on."),
    vocab: Optional[str] = typer.Option(None, "--vocab", help="Vocabulary NAME, NAME@vN or NAME:tag."),
    workers: Optional[int] = typer.Option(None, "--workers", "-k", help="Local worker processes to start (default: cores; 0: none; at most 4 per core: run more with train worker elsewhere)."),
    threads: int = typer.Option(1, "--threads", "-t", help="Threads per worker, training its one model copy together."),
    cache_mb: Optional[int] = _CACHE_MB,
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the corpus (default 5)."),
    syncs_per_epoch: Optional[int] = typer.Option(None, "--syncs-per-epoch", help="Merges per epoch (default: 4 with 1-2 workers, 16 with more or with --workers 0: a merge of more deltas needs more syncs to score like one gensim process; each sync costs ~0.1 s with two workers, more with more, so on a small corpus 16 is slower)."),
    dim: Optional[int] = typer.Option(None, "--dim", help="Vector size (default 100)."),
    window: Optional[int] = typer.Option(None, "--window", help="Context window (default 5)."),
    negative: Optional[int] = typer.Option(None, "--negative", help="Negative samples (default 5)."),
    sg: Optional[bool] = typer.Option(None, "--sg/--cbow", help="Skip-gram (default) or CBOW."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Initial learning rate (default 0.025)."),
    min_alpha: Optional[float] = typer.Option(None, "--min-alpha", help="Final learning rate (default 0.0001)."),
    sample: Optional[float] = typer.Option(None, "--sample", help="Downsampling threshold (default 1e-3)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the shared initial parameters (default 1)."),
    merge: Optional[str] = typer.Option(None, "--merge", help="Merge rule: nbmuf-adasum (default), nbmuf, nbmuf-wmean, bmuf-adasum, bmuf, bmuf-wmean, adasum, wmean, mean, sum; see docs/benchmarks.md."),
    eta: Optional[float] = typer.Option(None, "--eta", help="Block momentum for *bmuf* rules (default, K = contributions: 0.8(1 - 1/K) over adasum, 1 - 0.6/K for nbmuf, 1 - 1/K for bmuf)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", help="Training kernel: batched (default for skip-gram: nlpzk's, negatives shared by a window, ~3x gensim's speed per thread, same scores) or gensim (gensim's own, pair by pair; CBOW needs it); see docs/benchmarks.md."),
    delta_dtype: Optional[str] = typer.Option(None, "--delta-dtype", help="How workers store a round's deltas for the merge: bfloat16 (default: half the bytes, each value within 2^-8) or float32 (exact); see docs/architecture.md."),
    lease_timeout: Optional[float] = typer.Option(None, "--lease-timeout", help="Seconds before a stuck worker's lease on a work unit is revoked (default 600)."),
    model: Optional[str] = typer.Option(None, "--model", help="Register the final vectors as the next version of this model (default: the job name)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the job with a progress view."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Create (or resume) a training job, start local workers and follow it to the end.

    Example: nlpzk train run w2v --corpus wiki --vocab wiki@v1 --workers 2 --epochs 5
    """
    from nlpzk import train
    from nlpzk.errors import InvalidInputError
    from nlpzk.zk import paths, registry

    _sigterm_as_ctrl_c()
    _check_local(workers, threads, cache_mb)
    cluster = _util.cluster(ctx)
    exists = registry.maybe_json(cluster.zk, paths.job(job)) is not None
    if not exists and (not corpus or not vocab):
        raise InvalidInputError(f"job {job!r} does not exist yet: --corpus and --vocab are required to create it")
    hyper = dict(
        epochs=epochs, syncs_per_epoch=syncs_per_epoch, dim=dim, window=window, negative=negative, sg=sg, alpha=alpha,
        min_alpha=min_alpha, sample=sample, seed=seed, merge=merge, eta=eta, kernel=kernel, delta_dtype=delta_dtype,
        lease_timeout=lease_timeout,
    )
    workers = (os.cpu_count() or 1) if workers is None else workers
    doc, warnings = train.create_job(cluster, job, corpus or "", vocab or "", model=model, workers=workers, **hyper)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if exists and doc.get("state") == "done":
        print(f"job {job} exists and is done ({doc['spec']['rounds']} rounds)", file=sys.stderr)
    elif exists:
        print(f"job {job} exists: resuming at round {doc.get('round')} of {doc['spec']['rounds']}", file=sys.stderr)
    if doc.get("state") == "done":
        workers = 0
    _watch(ctx, job, workers, threads, wait, as_json, cache_mb, created=not exists)


@app.command()
def resume(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="Job to continue."),
    workers: Optional[int] = typer.Option(None, "--workers", "-k", help="Local worker processes to start (default: cores; at most 4 per core)."),
    threads: int = typer.Option(1, "--threads", "-t", help="Threads per worker, training its one model copy together."),
    cache_mb: Optional[int] = _CACHE_MB,
    as_json: bool = _util.JsonOption,
) -> None:
    """Continue a stopped job from its last published round (its checkpoint).

    Example: nlpzk train resume w2v --workers 2
    """
    from nlpzk import train

    _sigterm_as_ctrl_c()
    _check_local(workers, threads, cache_mb)
    st = train.status(_util.cluster(ctx), job)
    if st["state"] == "done":
        print(f"job {job} is done ({st['rounds']} rounds): nothing to resume", file=sys.stderr)
    else:
        print(f"resuming {job} at round {st['round']} of {st['rounds']}", file=sys.stderr)
    _watch(ctx, job, 0 if st["state"] == "done" else ((os.cpu_count() or 1) if workers is None else workers), threads, True, as_json, cache_mb)


@app.command()
def worker(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="Job to join."),
    threads: int = typer.Option(1, "--threads", "-t", help="Threads training this worker's one model copy together."),
    cache_mb: Optional[int] = _CACHE_MB,
    as_json: bool = _util.JsonOption,
) -> None:
    """Join a job as a worker (from any machine that reaches the ZooKeeper and the store); SIGTERM leaves cleanly.

    Example: nlpzk train worker w2v --threads 2   (with NLPZK_ZK and NLPZK_STORE naming the shared ZooKeeper and store)
    """
    from nlpzk.train import Worker

    _check_local(1, threads, cache_mb)  # this process is the one worker
    stop = threading.Event()
    _install_stop(stop)

    def event(kind: str, info: dict) -> None:
        if kind in ("joined", "rejoined", "fenced", "committed", "merged"):
            # seconds and loss to 3 decimals: not seconds=0.1210152920029941, loss=99504.92500000002
            print(f"{kind}: " + " ".join(f"{k}={round(v, 3) if isinstance(v, float) else v}" for k, v in info.items() if k != "final"), file=sys.stderr, flush=True)

    w = Worker(_util.cluster(ctx), job, threads=threads, stop=stop, on_event=event, cache_bytes=None if cache_mb is None else cache_mb << 20)
    report = w.run()
    _util.emit(vars(report), as_json, lambda r: print(f"worker {r['worker']} {r['state']}: {r['commits']} commits, {r['fenced']} fenced, {r['merges']} merges, {r['words']:,} words"))


@app.command()
def status(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="Job to show."),
    as_json: bool = _util.JsonOption,
) -> None:
    """Rounds, live workers, leases, words and loss per round of a job.

    Example: nlpzk train status w2v
    """
    from nlpzk import train

    st = train.status(_util.cluster(ctx), job)

    def human(s):
        spec = s["spec"]
        idle = s["state"] == "running" and not s["workers"]
        state = "running, no worker joined (waiting for workers)" if idle else s["state"]
        print(f"job {s['job']}: {state}, round {s['round']}/{s['rounds']}, {s['words']:,}/{s['total_words']:,} words")
        if idle:
            print(f"  start workers with: nlpzk train resume {s['job']} (here), or nlpzk train worker {s['job']} (on any machine)")
        print(f"  corpus {spec['corpus']}  vocab {spec['vocab']}@v{spec['vocab_version']}  merge {spec['merge']}  kernel {train.kernel_of(spec)}  deltas {spec.get('delta_dtype') or 'float32'}  dim {spec['dim']}  epochs {spec['epochs']} x {spec['syncs_per_epoch']} syncs")
        for wid, w in s["workers"].items():
            print(f"  worker {wid}: round {w.get('round')}  {w.get('words_per_s', '-')} w/s  threads {w.get('threads')}")
        for unit, owner in s["leases"].items():
            print(f"  lease {unit}: {owner}")
        for h in s["history"]:
            if h.get("state") == "merged":
                print(f"  round {h['round']}: {h['words']:,} words  loss {_na(h.get('loss'))}  {_util.count(h['commits'], 'commit')} from {_util.count(h['workers'], 'worker')}  wall {h['wall_s']}s (merge {h['merge_s']}s)")
        if s["final"]:
            print(f"  vectors {s['final']['vectors']} ({s['final']['vocab']})")
            print("  " + _scores_line(s["final"].get("scores") or {}))

    _util.emit(st, as_json, human)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = _util.JsonOption) -> None:
    """Training jobs with their state and progress (a job whose node is damaged: a row saying what to do).

    Example: nlpzk train list --json
    """
    from nlpzk import train

    jobs = train.list_jobs(_util.cluster(ctx))

    def human(rows):
        if not rows:
            print("no training jobs")
        for j in rows:
            if j["damaged"]:
                print(f"{j['job']}: damaged: {j['damaged']}")
                continue
            state = "running (no workers)" if j["state"] == "running" and not j["workers"] else j["state"]
            if j.get("deleting"):
                state += " (being deleted)"
            print(f"{j['job']}: {state} round {j['round']}/{j['rounds']} corpus {j['corpus']} vocab {j['vocab']} workers {j['workers']}")
            if j.get("scores"):
                print("  " + _scores_line(j["scores"]))

    _util.emit(jobs, as_json, human)


@app.command("delete")
def delete(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="The training job."),
    force: bool = typer.Option(False, "--force", help="Delete even while workers are in it (they stop with an error) or when no model holds its finished vectors (they are lost)."),
    yes: bool = _util.YesOption,
    as_json: bool = _util.JsonOption,
) -> None:
    """Delete a training job: its znodes, its store files and this machine's worker logs of it.

    Models registered from it keep their own copy of the vectors (their held-out loss, which needs
    the job's final parameters, is no longer possible). Refused while workers are in the job, or
    when it finished and no model holds its vectors, unless --force. Deletes an abandoned job, too:
    one never finished keeps its corpus and vocabulary from being deleted. Marked first, then
    files, then znodes; run it again to finish one stopped half-way.

    Example: nlpzk train delete wiki-w2v --yes
    """
    import shutil

    from nlpzk import train
    from nlpzk.store import naming

    cluster = _util.cluster(ctx)
    _util.confirm(f"delete training job {job} and its files?", yes)
    result = train.delete_job(cluster, job, force=force)
    logs = os.path.join(str(cluster.config.state_path), "train", job)
    result["logs_deleted"] = os.path.isdir(logs)
    shutil.rmtree(logs, ignore_errors=True)

    def human(d):
        if d.get("damaged"):
            _util.out.print(
                f"deleted damaged training job {job} ({_util.count(d['files'], 'file')} under {naming.job_dir(job)}/; its node: {d['damaged']}); "
                f"not known without its node: {'; '.join(d['unknown'])}"
            )
            return
        _util.out.print(
            f"deleted training job {job} ({d['state']}; {_util.count(d['files'], 'file')})"
            + (f"; its vectors stay in model {', '.join(d['registered_as'])}" if d["registered_as"] else "")
        )

    _util.emit(result, as_json, human)
