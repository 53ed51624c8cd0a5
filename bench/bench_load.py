"""Load on one ZooKeeper: concurrent vocab opens/lookups and tag followers while versions are
published, then many ingest processes registering shards of one corpus at once.

Reports ZooKeeper operations per second (the server's ``mntr`` packet counters), latencies
(p50/p95/max) of publish -> follower sees it, of ``Vocabulary.open`` and of ingest start -> input
registered, and checks that no update was lost or done twice:

* every published version number is distinct and the numbers are contiguous (1..N);
* every follower ends on the last version of ``latest`` and on the last move of ``stable``;
* every input's shards are registered exactly once (shard count and tokens equal the input's
  done-marker; a concurrent re-run of every input registers nothing new).

It starts its own standalone ZooKeeper and store in a temporary directory (loopback only) and
removes them at the end. Bounded: a fixed number of builds, tag moves and ingest processes.

    .venv/bin/python bench/bench_load.py [--followers 4] [--lookers 3] [--publishers 2] [--builds 5]
                                         [--moves 20] [--ingesters 6]

Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nlpzk import testing  # noqa: E402
from nlpzk.zk.server import four_letter  # noqa: E402

VOCAB, CORPUS, INGESTED = "lv", "load", "ingested"


# -- measuring ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def fmt_ms(values: list[float]) -> str:
    ms = [v * 1e3 for v in values]
    return f"p50 {pct(ms, 0.5):7.1f} ms  p95 {pct(ms, 0.95):7.1f} ms  max {max(ms) if ms else float('nan'):7.1f} ms  (n={len(ms)})"


class ServerStats:
    """Requests the server received and its own request latency, from the ``mntr``/``srst`` words."""

    def __init__(self, server) -> None:
        self.server = server

    def _mntr(self) -> dict[str, str]:
        text = four_letter(self.server.host, self.server.client_port, "mntr") or ""
        return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)

    def start(self) -> None:
        four_letter(self.server.host, self.server.client_port, "srst")  # resets min/avg/max latency
        self._t0, self._p0 = time.perf_counter(), int(self._mntr()["zk_packets_received"])

    def stop(self) -> dict[str, float]:
        m = self._mntr()
        seconds = time.perf_counter() - self._t0
        ops = int(m["zk_packets_received"]) - self._p0
        return {"seconds": seconds, "ops": ops, "ops_per_s": ops / seconds, "server_avg_ms": float(m["zk_avg_latency"]), "server_max_ms": float(m["zk_max_latency"])}


def _connect(hosts: str, store: str, chroot: str):
    return testing.Cluster.connect(testing.config_for(hosts, store, chroot=chroot, session_timeout=10.0))


# -- child processes ------------------------------------------------------------------------------


def follower(hosts, store, chroot, ready, stop, final_latest, final_stable, results) -> None:
    """Follow ``latest`` and ``stable``; record when each switch was seen; end on the final versions."""
    from nlpzk.vocab import Vocabulary

    cluster = _connect(hosts, store, chroot)
    seen: dict[str, list[tuple[int, float]]] = {"latest": [], "stable": []}
    views = {}
    for tag in ("latest", "stable"):
        views[tag] = Vocabulary.open(VOCAB, tag=tag, cluster=cluster)
        views[tag].follow(tag, on_change=lambda v, tag=tag: seen[tag].append((v.version, time.time())))
    ready.put(os.getpid())
    stop.wait(600)
    ended = {tag: views[tag].wait_for_version(v, 30) for tag, v in (("latest", final_latest.value), ("stable", final_stable.value))}
    results.put({"role": "follower", "pid": os.getpid(), "seen": seen, "final": {t: views[t].version for t in views}, "reached": ended,
                 "errors": [repr(v.follow_error) for v in views.values() if v.follow_error]})
    for v in views.values():
        v.unfollow()
    cluster.close()


def looker(hosts, store, chroot, ready, stop, results) -> None:
    """Open the latest version again and again, and look tokens up in it, until told to stop."""
    from nlpzk.vocab import Vocabulary

    cluster = _connect(hosts, store, chroot)
    opens, lookups, versions = [], 0, set()
    ready.put(os.getpid())
    t_start = time.perf_counter()
    while not stop.is_set():
        t0 = time.perf_counter()
        view = Vocabulary.open(VOCAB, cluster=cluster)
        opens.append(time.perf_counter() - t0)
        versions.add(view.version)
        tokens = view.tokens.to_pylist()[:2000]
        for t in tokens:
            if view.id(t) is None:
                raise AssertionError(f"token {t!r} of v{view.version} has no id")
        lookups += len(tokens)
    results.put({"role": "looker", "opens": opens, "lookups": lookups, "seconds": time.perf_counter() - t_start, "versions": sorted(versions)})
    cluster.close()


def publisher(hosts, store, chroot, builds, go, results) -> None:
    """Build ``builds`` new versions of the vocabulary (moving ``latest``), racing other publishers."""
    from nlpzk.vocab import build

    cluster = _connect(hosts, store, chroot)
    go.wait(600)
    out = []
    for _ in range(builds):
        t0 = time.time()
        view = build(cluster, VOCAB, CORPUS, min_count=1, parent="latest")
        out.append({"version": view.version, "start": t0, "returned": time.time()})
    results.put({"role": "publisher", "builds": out})
    cluster.close()


# -- phases ---------------------------------------------------------------------------------------


def setup(cluster) -> None:
    from gensim.test.utils import datapath

    from nlpzk.corpus import Corpus, ShardWriter
    from nlpzk.ingest import tokenizer_options
    from nlpzk.vocab import build
    from nlpzk.zk import paths, registry

    with open(datapath("lee_background.cor"), encoding="utf8") as fh:
        sentences = [line.lower().split() for line in fh if line.strip()]
    Corpus.create(cluster, CORPUS, tokenizer_options())
    for s in range(2):
        with ShardWriter(cluster.store, CORPUS, f"s{s}") as w:
            for i, sent in enumerate(sentences[s::2]):
                w.add(f"d{s}-{i}", "lee", sent)
        registry.create_json(cluster.zk, paths.shard(CORPUS, w.info.id), w.info.doc())
    build(cluster, VOCAB, CORPUS, min_count=1, tags=["latest", "stable"])


def vocab_phase(args, server, cluster, hosts, store, chroot) -> tuple[dict, list[str]]:
    from nlpzk.vocab import tag
    from nlpzk.zk import paths, registry

    ctx = mp.get_context("spawn")  # the parent holds a live kazoo client (threads): never fork it
    ready, results, stop, go = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    final_latest, final_stable = ctx.Value("i", 0), ctx.Value("i", 0)
    procs = [ctx.Process(target=follower, args=(hosts, store, chroot, ready, stop, final_latest, final_stable, results)) for _ in range(args.followers)]
    procs += [ctx.Process(target=looker, args=(hosts, store, chroot, ready, stop, results)) for _ in range(args.lookers)]
    pubs = [ctx.Process(target=publisher, args=(hosts, store, chroot, args.builds, go, results)) for _ in range(args.publishers)]
    for p in procs + pubs:
        p.start()
    for _ in range(args.followers + args.lookers):
        ready.get(timeout=120)

    stats = ServerStats(server)
    stats.start()
    go.set()
    # tag moves from here, interleaved with the publishers' builds: stable alternates between v1 and
    # whatever latest is, spaced so that each move can be seen on its own
    moves = []
    for i in range(args.moves):
        target = 1 if i % 2 else registry.resolve_version(cluster.zk, paths.vocab(VOCAB), "vocabulary", VOCAB, None, "latest")
        t0 = time.time()
        tag(cluster, VOCAB, target, "stable")
        moves.append({"version": target, "start": t0, "returned": time.time()})
        time.sleep(args.move_interval)
    for p in pubs:
        p.join(600)
    published = []
    got = []
    for _ in range(args.publishers):
        r = results.get(timeout=60)
        got.append(r)
        published += r["builds"]
    versions = [n for n, _ in registry.list_versions(cluster.zk, paths.vocab(VOCAB))]
    final_latest.value = max(versions)
    final_stable.value = registry.resolve_version(cluster.zk, paths.vocab(VOCAB), "vocabulary", VOCAB, None, "stable")
    stop.set()
    for _ in range(args.followers + args.lookers):
        got.append(results.get(timeout=120))
    for p in procs:
        p.join(60)
    zk = stats.stop()

    failures: list[str] = []
    if moves and final_stable.value != moves[-1]["version"]:
        failures.append(f"stable is at v{final_stable.value}, the last move was to v{moves[-1]['version']}")
    numbers = sorted(b["version"] for b in published)
    if len(set(numbers)) != len(numbers):
        failures.append(f"a version number was handed out twice: {numbers}")
    if versions != list(range(1, len(versions) + 1)) or numbers != list(range(2, 2 + args.publishers * args.builds)):
        failures.append(f"versions not contiguous: registry {versions}, publishers got {numbers}")
    ctimes = {n: registry.get_json(cluster.zk, paths.vocab_version(VOCAB, n))[1].ctime / 1000 for n in numbers}

    follow_latency, move_latency, opens, lookups, look_seconds = [], [], [], 0, 0.0
    for r in got:
        if r["role"] == "follower":
            if not all(r["reached"].values()) or r["final"] != {"latest": final_latest.value, "stable": final_stable.value}:
                failures.append(f"follower {r['pid']} ended on {r['final']}, not latest v{final_latest.value} / stable v{final_stable.value}")
            if r["errors"]:
                failures.append(f"follower {r['pid']} could not switch: {r['errors']}")
            for version, t in r["seen"]["latest"]:
                follow_latency.append(t - ctimes[version])  # version znode created -> follower switched
            for version, t in r["seen"]["stable"]:
                before = [m for m in moves if m["version"] == version and m["start"] <= t]
                if before:
                    move_latency.append(t - before[-1]["start"])  # tag call started -> follower switched
        elif r["role"] == "looker":
            opens += r["opens"]
            lookups += r["lookups"]
            look_seconds = max(look_seconds, r["seconds"])
    report = {
        "zk": zk,
        "published": len(numbers),
        "moves": len(moves),
        "build_seconds": [b["returned"] - b["start"] for b in published],
        "publish_to_follower": follow_latency,
        "move_to_follower": move_latency,
        "open": opens,
        "lookups_per_s": lookups / look_seconds if look_seconds else 0.0,
    }
    return report, failures


def ingest_phase(args, server, cluster, config, workdir: Path) -> tuple[dict, list[str]]:
    from gensim.test.utils import datapath

    from nlpzk.corpus import Corpus
    from nlpzk.zk import paths, registry

    with open(datapath("lee_background.cor"), encoding="utf8") as fh:
        lines = [line for line in fh if line.strip()]
    inputs = []
    for i in range(args.ingesters):
        p = workdir / f"part-{i:02d}.txt"
        # distinct documents per input (a shared document would be deduplicated, not counted twice)
        p.write_text("".join(f"part {i} line {j}: {line}" for j, line in enumerate(lines[i :: args.ingesters])))
        inputs.append(p)
    env = testing.env_for(config)
    env["NLPZK_STATE_DIR"] = str(workdir / "state")
    cmd = [sys.executable, "-m", "nlpzk", "corpus", "ingest", INGESTED, "--shard-tokens", "2000", "--json"]

    def run_all() -> tuple[list[dict], list[float], float]:
        t0 = time.time()
        procs = [(time.time(), subprocess.Popen(cmd + [str(p)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for p in inputs]
        out, walls = [], []
        for started, proc in procs:
            stdout, stderr = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"ingest failed ({proc.returncode}): {stderr}")
            out.append(json.loads(stdout))
            walls.append(time.time() - started)
        return out, walls, t0

    stats = ServerStats(server)
    stats.start()
    summaries, walls, t0 = run_all()
    zk = stats.stop()
    corpus = Corpus.open(INGESTED, cluster=cluster)
    done = corpus.inputs()
    shards = corpus.shards
    docs = dict(zip([s.id for s in shards], registry.many_json(cluster.zk, [paths.shard(INGESTED, s.id) for s in shards])))
    failures: list[str] = []
    if sorted(d["source"] for d in done.values()) != sorted(str(p) for p in inputs):
        failures.append(f"inputs registered: {sorted(d['source'] for d in done.values())}")
    for key, d in done.items():
        mine = [s for s in shards if docs[s.id].get("input") == key]
        if len(mine) != d["shards"] or sum(s.tokens for s in mine) != d["tokens"] or len({s.id for s in mine}) != len(mine):
            failures.append(f"input {d['source']}: {len(mine)} shards / {sum(s.tokens for s in mine)} tokens registered, done-marker says {d['shards']} / {d['tokens']}")
    if sum(s["ingested"] for s in summaries) != len(inputs):
        failures.append(f"{sum(s['ingested'] for s in summaries)} inputs ingested by {len(inputs)} processes")
    registered = [d["finished"] - t0 for d in done.values()]
    before = sorted(s.id for s in shards)
    # the same inputs again, all at once: every one is found done, nothing is registered twice
    again, _, _ = run_all()
    after = sorted(s.id for s in Corpus.open(INGESTED, cluster=cluster).shards)
    if after != before or any(s["ingested"] for s in again):
        failures.append(f"a concurrent re-run registered more: {len(before)} -> {len(after)} shards, ingested {[s['ingested'] for s in again]}")
    verify = corpus.verify()
    if not verify["ok"]:
        failures.append(f"corpus verify: {verify}")
    return {"zk": zk, "inputs": len(inputs), "shards": len(shards), "tokens": sum(s.tokens for s in shards), "registered": registered, "walls": walls, "own": [s["seconds"] for s in summaries]}, failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--followers", type=int, default=4, help="processes following latest and stable")
    ap.add_argument("--lookers", type=int, default=3, help="processes opening the vocabulary and looking tokens up")
    ap.add_argument("--publishers", type=int, default=2, help="processes building new versions concurrently")
    ap.add_argument("--builds", type=int, default=5, help="versions each publisher builds")
    ap.add_argument("--moves", type=int, default=20, help="moves of the stable tag")
    ap.add_argument("--move-interval", type=float, default=0.15)
    ap.add_argument("--ingesters", type=int, default=6, help="concurrent `nlpzk corpus ingest` processes (one input each)")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="nlpzk-bench-load-"))
    server = testing.start_standalone(workdir / "zk")
    try:
        store, chroot = str(workdir / "store"), "/bench-load"
        config = testing.config_for(server.address, store, chroot=chroot, session_timeout=10.0)
        with testing.Cluster.connect(config) as cluster:
            setup(cluster)
            v, f1 = vocab_phase(args, server, cluster, server.address, store, chroot)
            i, f2 = ingest_phase(args, server, cluster, config, workdir)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"nlpzk load bench ({os.cpu_count()} cores, standalone ZooKeeper on loopback)")
    print(f"\nvocabulary: {args.followers} followers x 2 tags, {args.lookers} lookup processes, {args.publishers} publishers x {args.builds} builds, {v['moves']} tag moves")
    print(f"  ZooKeeper               {v['zk']['ops_per_s']:8.0f} requests/s ({v['zk']['ops']} in {v['zk']['seconds']:.1f} s; server latency avg {v['zk']['server_avg_ms']:.1f} ms, max {v['zk']['server_max_ms']:.0f} ms)")
    print(f"  build (count+publish)   {fmt_ms(v['build_seconds'])}")
    print(f"  publish -> follower     {fmt_ms(v['publish_to_follower'])}")
    print(f"  tag move -> follower    {fmt_ms(v['move_to_follower'])}")
    print(f"  Vocabulary.open         {fmt_ms(v['open'])}")
    print(f"  lookups (all lookers)   {v['lookups_per_s']:8.0f} id()/s   (single id() calls, re-opening the version between rounds of 2000)")
    print(f"\ningest: {i['inputs']} concurrent `nlpzk corpus ingest` processes, one input each -> {i['shards']} shards, {i['tokens']} tokens")
    print(f"  ZooKeeper               {i['zk']['ops_per_s']:8.0f} requests/s ({i['zk']['ops']} in {i['zk']['seconds']:.1f} s; server latency avg {i['zk']['server_avg_ms']:.1f} ms, max {i['zk']['server_max_ms']:.0f} ms)")
    print(f"  start -> registered     {fmt_ms(i['registered'])}   (all processes launched -> the input's done-marker written)")
    print(f"  ingest's own time       {fmt_ms(i['own'])}   (the command's summary: claim, tokenize, write, register)")
    print(f"  process wall time       {fmt_ms(i['walls'])}   (with interpreter start and imports)")
    failures = f1 + f2
    print("\nchecks: " + ("no update lost, none done twice (versions distinct and contiguous, followers on the last versions, every input's shards once)" if not failures else "FAILED"))
    for f in failures:
        print(f"  FAIL {f}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
