"""Helpers of the fault-injection suite: real ``nlpzk`` processes, waiting, and the end-of-test check
that the registry (ZooKeeper) and the store agree."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from _helpers import wait_for  # noqa: F401 - the fault tests import it from here
from nlpzk import gc, vocab
from nlpzk.cluster import Cluster
from nlpzk.corpus import Corpus
from nlpzk.store import naming
from nlpzk.zk import paths, registry

ROOT = Path(__file__).resolve().parents[2]
PAUSE_AT = Path(__file__).resolve().parents[1] / "_pause_at.py"


def nlpzk_process(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen:
    """A real ``python -m nlpzk ARGS`` process, stdout and stderr into ``log``."""
    return subprocess.Popen([sys.executable, "-m", "nlpzk", *args], env=env, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def nlpzk_process_stopping_at(env: dict[str, str], function: str, *args: str, log: Path, nth: int = 1, match: str = "") -> subprocess.Popen:
    """Like :func:`nlpzk_process`, but the process SIGSTOPs itself when it first calls ``function``
    (``"package.module:name"``, or ``"module:Class.method"``), or at the ``nth`` call whose
    arguments' repr contains ``match``: a deterministic place to kill it. The hook lives in the test suite."""
    hook = [sys.executable, str(PAUSE_AT), "--stop", "--nth", str(nth), "--match", match, function]
    return subprocess.Popen([*hook, *args], env=env, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def stop_leader_while(ensemble, proc: subprocess.Popen, ready: Callable[[], Any], *, timeout: float) -> int:
    """Once ``ready()`` holds, stop the ensemble's leader; return ``proc``'s exit code. Every member
    is started again afterwards (the ensemble is shared by the session) and ``proc`` never outlives it."""
    try:
        wait_for(ready, 120, every=0.005, what="the moment to stop the leader")
        leader = ensemble.leader()
        assert leader is not None
        ensemble.members[leader].stop()
        return proc.wait(timeout)
    finally:
        for m in ensemble.members:
            m.start()
        if proc.poll() is None:
            proc.kill()


def process_state(pid: int) -> str:
    """One-letter state from /proc (R, S, T = stopped, Z, ...); '' when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return ""


def _checked_files(doc: Any) -> Iterator[tuple[str, str]]:
    """``(store path, sha256)`` pairs a registry document vouches for: a ``path``-like key next to
    ``sha256`` (``path``/``vectors``), or ``X_path`` next to ``X_sha256``."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(value, str) and key in ("path", "vectors") and isinstance(doc.get("sha256"), str):
                yield value, doc["sha256"]
            elif isinstance(value, str) and key.endswith("_path") and isinstance(doc.get(key[: -len("_path")] + "_sha256"), str):
                yield value, doc[key[: -len("_path")] + "_sha256"]
            else:
                yield from _checked_files(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _checked_files(item)


def _store_refs(doc: Any) -> Iterator[str]:
    """Every string in a document that names a live file in the store (``corpora/...``, ``jobs/...``).

    A merged round's summary keeps the names of the parameters it started from as history; those
    files are pruned by design once the next round is published, so they are not live references.
    """
    if isinstance(doc, str):
        if doc.split("/", 1)[0] in gc.MANAGED_PREFIXES and "/" in doc:
            yield doc
    elif isinstance(doc, dict):
        merged_round = doc.get("state") == "merged" and "round" in doc
        for key, value in doc.items():
            if not (merged_round and key == "params"):
                yield from _store_refs(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _store_refs(item)


def assert_registry_matches_store(cluster: Cluster, *, garbage_ok: Callable[[gc.Garbage], bool] | None = None) -> list[gc.Garbage]:
    """The registry and the store agree: nothing registered is missing or corrupt, nothing is doubled.

    * every store path any znode names exists, and every file a znode gives a sha256 for has it;
    * each corpus passes ``verify`` (counts too), its shards' inputs are all done, every done input's
      shards are all there (for ingested corpora), no two shards hold the same bytes;
    * each vocabulary passes ``verify`` and no two versions share a file;
    * a finished job's round logs show every frozen shard trained exactly once per round;
    * ``nlpzk gc``'s :func:`~nlpzk.gc.find_garbage` with no grace period finds nothing (or only what
      ``garbage_ok`` accepts: the debris a killed writer may leave, which gc must then be able to delete).

    Returns the garbage found (empty unless ``garbage_ok`` accepted some).
    """
    zk, store = cluster.zk, cluster.store
    problems: list[str] = []
    for root in paths.ROOTS:
        for znode, doc in registry.walk(zk, root):
            for rel in _store_refs(doc):
                if not store.exists(rel):
                    problems.append(f"{znode} names {rel}, which is not in the store")
            for rel, sha in _checked_files(doc):
                if store.exists(rel) and store.sha256(rel) != sha:
                    problems.append(f"{znode}: {rel} does not have the registered sha256")

    for name in registry.children(zk, paths.CORPORA):
        corpus = Corpus.open(name, cluster=cluster)
        report = corpus.verify()
        # stray and temporary files are judged below with the rest of the garbage
        if not report["ok"]:
            problems.append(f"corpus {name}: verify says {json.dumps({k: report[k] for k in ('missing', 'corrupt', 'stray', 'temporary')})}")
        shards, inputs = corpus.shards, corpus.inputs()
        for sha, n in collections.Counter(s.sha256 for s in shards).items():
            if n > 1:
                problems.append(f"corpus {name}: {n} shards hold the same bytes (sha256 {sha[:12]})")
        per_input = collections.Counter(s.id.rsplit("-", 1)[0] for s in shards) if inputs else collections.Counter()
        for key in per_input.keys() - inputs.keys():
            problems.append(f"corpus {name}: shards of input {key} are registered but the input is not done")
        for key, doc in inputs.items():
            if per_input.get(key, 0) != doc.get("shards", 0):
                problems.append(f"corpus {name}: input {key} says {doc.get('shards')} shards, {per_input.get(key, 0)} registered")

    for name in registry.children(zk, paths.VOCAB):
        rows = vocab.verify(cluster, name)
        problems += [f"vocabulary {name} v{r['version']}: {r['problem']}" for r in rows if not r["ok"]]
        for rel, n in collections.Counter(r["path"] for r in rows).items():
            if n > 1:
                problems.append(f"vocabulary {name}: {n} versions share {rel}")

    for name in registry.children(zk, paths.JOBS):
        problems += job_problems(cluster, name)

    garbage = gc.find_garbage(cluster, older_than=0)
    unexpected = [g for g in garbage if not (garbage_ok and garbage_ok(g))]
    problems += [f"garbage in the store: {g.path} ({g.reason})" for g in unexpected]
    assert not problems, "registry and store disagree:\n  " + "\n  ".join(problems)
    return garbage


def job_problems(cluster: Cluster, job: str) -> list[str]:
    """For a finished job: every round merged once, every work unit of the frozen shards (a shard, or
    a piece of a big one) trained exactly once in it."""
    from nlpzk.train import job as job_mod

    doc = registry.maybe_json(cluster.zk, paths.job(job)) or {}
    if doc.get("state") != "done":
        return []
    spec = doc["spec"]
    shard_ids = sorted(u.name for u in job_mod.work_units(spec, job_mod.frozen_shards(cluster, spec)))
    out = []
    for r in range(int(spec["rounds"])):
        try:
            log = json.loads(cluster.store.read_bytes(naming.round_log(job, r)))
        except Exception as exc:  # noqa: BLE001 - reported as a problem, not raised
            out.append(f"job {job} round {r}: no round log ({exc})")
            continue
        trained = sorted(c["shard"] for c in log["commits"])
        if trained != shard_ids:
            twice = sorted(u for u, n in collections.Counter(trained).items() if n > 1)
            out.append(f"job {job} round {r}: trained {len(trained)} unit slices for {len(shard_ids)} units (twice: {twice}, missing: {sorted(set(shard_ids) - set(trained))})")
    return out
