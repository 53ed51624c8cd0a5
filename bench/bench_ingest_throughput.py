"""One-process ingest throughput against spaCy's tokenizer alone, on the same documents, in one run.

    .venv/bin/python bench/bench_ingest_throughput.py [--mb 12] [--files 8]

Anchor: ``nlp.tokenizer.pipe`` of a blank English pipeline over the documents (in memory).
nlpzk:  ``ingest(..., processes=1)`` of the same documents from text files: reading, decoding,
        dedup hashing, tokenizing, sentence splitting, filtering, Parquet + zstd, sha256, ZooKeeper.
Both start cold every time (a fresh ``spacy.blank`` for the anchor, a fresh nlpzk tokenizer for
ingest), as an ingest meets each document once: a second pass of the anchor over the same documents
with a warm tokenizer cache would measure something no ingest does. Runs alternate, ``--repeat``
times; the best of each is compared. Throughput is counted in spaCy tokens of the input per second
for both, so the ratio is the inverse ratio of wall times.

Text: GCIDE (the GNU Collaborative International Dictionary of English, GPL-3+), read from Debian's
``dict-gcide`` package; paragraphs become documents (one per line). Nothing is committed here.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GCIDE = "/usr/share/dictd/gcide.dict.dz"
_MARKUP = re.compile(r"\[1913 Webster\]|\\[^\\\n]*\\")
_SPACE = re.compile(r"\s+")


def gcide_documents(max_bytes: int) -> list[str]:
    """Paragraphs of GCIDE as one-line documents, up to ``max_bytes`` of text (repeated with a
    numbered prefix if more is asked than the dictionary holds, so every document stays unique)."""
    if not os.path.exists(GCIDE):
        raise SystemExit("this benchmark needs Debian's dict-gcide: apt-get install dict-gcide")
    text = gzip.open(GCIDE, "rt", encoding="utf8", errors="replace").read()
    paras = [_SPACE.sub(" ", _MARKUP.sub(" ", p)).strip() for p in re.split(r"\n\s*\n", text)]
    paras = [p for p in paras if len(p) >= 40]
    out, size, rnd = [], 0, 0
    while size < max_bytes:
        for p in paras:
            doc = p if rnd == 0 else f"Round {rnd}. {p}"
            out.append(doc)
            size += len(doc) + 1
            if size >= max_bytes:
                break
        rnd += 1
    return out


def write_inputs(directory: Path, docs: list[str], files: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    per = (len(docs) + files - 1) // files
    for i in range(files):
        (directory / f"part-{i:03d}.txt").write_text("\n".join(docs[i * per : (i + 1) * per]) + "\n", encoding="utf-8")


def zxid(address: str) -> int:
    """The server's last transaction id (``srvr``): every write transaction, a multi included, adds one."""
    import socket

    host, port = address.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"srvr")
        data = b"".join(iter(lambda: sock.recv(4096), b""))
    line = next(l for l in data.decode().splitlines() if l.startswith("Zxid:"))
    return int(line.split(":", 1)[1].strip(), 16)


class Scratch:
    """A throw-away ZooKeeper server, chroot and store."""

    def __init__(self) -> None:
        from nlpzk import testing

        self.dir = Path(tempfile.mkdtemp(prefix="nlpzk-bench-ingest-"))
        self.server = testing.start_standalone(self.dir / "zk")
        self.cluster = testing.cluster_for(self.server.address, self.dir / "store", session_timeout=10.0)

    def close(self) -> None:
        self.cluster.close()
        self.server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=12.0, help="MB of text")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import spacy

    from nlpzk.ingest import ingest, pipeline

    docs = gcide_documents(int(args.mb * 1e6))
    scratch = Scratch()
    try:
        write_inputs(scratch.dir / "in", docs, args.files)
        anchor, ours, n_tokens, summary = [], [], 0, None
        anchor_cpu, ours_cpu = [], []
        for attempt in range(args.repeat):
            pipeline._WORKER.tokenizers.clear()
            t, c = time.perf_counter(), time.process_time()
            nlp = spacy.blank("en")  # inside the timing, as ingest builds its pipeline inside its own
            n_tokens = 0
            for doc in nlp.tokenizer.pipe(docs, batch_size=1000):
                n_tokens += len(doc)
            anchor.append(time.perf_counter() - t)
            anchor_cpu.append(time.process_time() - c)
            z0 = zxid(scratch.server.address)
            t, c = time.perf_counter(), time.process_time()
            summary = ingest(scratch.cluster, f"bench{attempt}", [str(scratch.dir / "in")], processes=1)
            ours.append(time.perf_counter() - t)
            ours_cpu.append(time.process_time() - c)  # all threads of this process (the shard writer too)
            writes = zxid(scratch.server.address) - z0
        a, o = min(anchor), min(ours)
        print(f"input: {len(docs):,} documents, {sum(map(len, docs)) / 1e6:.1f} MB in {args.files} files, {n_tokens:,} spaCy tokens")
        print(f"nlpzk wrote {summary.tokens:,} tokens (after filters) in {summary.sentences:,} sentences, {summary.shards} shards")
        print(f"ZooKeeper write transactions per ingest: {writes} for {summary.shards} shards of {summary.ingested} inputs (claim + one commit per input, plus set-up)")
        print(f"spaCy tokenizer.pipe alone : {n_tokens / a:>12,.0f} tokens/s  ({a:.2f}s; runs {', '.join(f'{x:.2f}' for x in anchor)})")
        print(f"nlpzk ingest --processes 1 : {n_tokens / o:>12,.0f} tokens/s  ({o:.2f}s; runs {', '.join(f'{x:.2f}' for x in ours)})")
        print(f"ratio ingest / tokenizer   : {a / o:.2f}  (target >= 0.80); per pair: {', '.join(f'{x / y:.2f}' for x, y in zip(anchor, ours))}")
        # On a shared machine wall time swings with others' load; CPU time of this process does not.
        print(f"CPU seconds: tokenizer {', '.join(f'{x:.2f}' for x in anchor_cpu)}; ingest {', '.join(f'{x:.2f}' for x in ours_cpu)}; "
              f"ratio of best: {min(anchor_cpu) / min(ours_cpu):.2f}")
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
