"""Peak memory of ingesting 10x more text against 1x, in one run.

    .venv/bin/python bench/bench_ingest_memory.py [--mb 4] [--factor 10]

Each ingest is the real command (``python -m nlpzk corpus ingest NAME FILE``, ``--processes 1``) in a
fresh process; its peak resident set size comes from ``wait4``. The input is ONE text file (the
hardest case for flat memory: nothing is ever finished and released between files) of GCIDE
documents (see bench_ingest_throughput.py); the 10x file repeats the dictionary with numbered
prefixes once it runs out, so every document stays unique and is really ingested.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_ingest_throughput import Scratch, gcide_documents  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(env: dict[str, str], name: str, path: str) -> tuple[float, float, dict]:
    """Run one ingest command; its own peak RSS (MB) comes from wait4, not a running maximum."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "nlpzk", "corpus", "ingest", name, path, "--json"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(err.read())
    return usage.ru_maxrss / 1024, time.perf_counter() - t, json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--factor", type=int, default=10)
    args = ap.parse_args()

    from nlpzk import testing

    docs = gcide_documents(int(args.mb * args.factor * 1e6))
    scratch = Scratch()
    try:
        small = scratch.dir / "x1.txt"
        big = scratch.dir / f"x{args.factor}.txt"
        cut = len(docs) // args.factor
        small.write_text("\n".join(docs[:cut]) + "\n", encoding="utf-8")
        big.write_text("\n".join(docs) + "\n", encoding="utf-8")
        env = testing.env_for(scratch.cluster.config)
        rss1, t1, s1 = run(env, "mem1", str(small))
        rss10, t10, s10 = run(env, f"mem{args.factor}", str(big))
        print(f"1x : {small.stat().st_size / 1e6:7.1f} MB text, {s1['documents']:>9,} documents, {s1['tokens']:>11,} tokens: peak RSS {rss1:7.1f} MB ({t1:.1f}s)")
        print(f"{args.factor}x: {big.stat().st_size / 1e6:7.1f} MB text, {s10['documents']:>9,} documents, {s10['tokens']:>11,} tokens: peak RSS {rss10:7.1f} MB ({t10:.1f}s)")
        print(f"peak memory {args.factor}x / 1x: {rss10 / rss1:.2f}  (target <= 1.50)")
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
