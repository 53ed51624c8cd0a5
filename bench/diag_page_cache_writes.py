"""What writing a training round's files into the page cache costs on this machine (a diagnostic,
no target): the file pattern of one worker's rounds without the training.

Each simulated round (1 s) writes two 34 MB "merged parameter" files, fsyncs them in a background
thread and then deletes the previous round's files; 0.9 s in it writes two 17 MB "contributions".
No file is fsynced where the time is measured. Modes:

* ``full``: fsync in the background, then delete (nlpzk's round files from the fourteenth
  session's first change);
* ``recycle``: fsync in the background, then keep the files as spares, and write the next ones
  over them in place (nlpzk's since its second, ``nlpzk/train/spares.py``);
* ``nodelete``: nothing is deleted (every write lands on pages the kernel has not handed out
  recently);
* ``nofsync``: deleted, never fsynced.

    .venv/bin/python bench/diag_page_cache_writes.py [--dir DIR] [--rounds 15] [full nodelete nofsync ...]

On a virtual machine whose balloon device reports free pages to the host (virtio-balloon
``free page reporting``), a page the guest freed a few seconds ago must be faulted in again by the
host on its next use: writing to "fresh" pages runs at a fraction of the speed of writing to
pages just freed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import numpy as np


def _write(path: str, buf: np.ndarray, spares: list[str]) -> float:
    t = time.perf_counter()
    tmp = path + ".tmp"
    same = [p for p in spares if os.path.getsize(p) == buf.nbytes]
    if same:  # recycle: over a retired file of the same size, in place
        spares.remove(same[0])
        os.rename(same[0], tmp)
        with open(tmp, "r+b") as f:
            f.write(buf)
    else:
        with open(tmp, "wb") as f:
            f.write(buf)
    os.rename(tmp, path)
    return time.perf_counter() - t


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(mode: str, folder: str, rounds: int) -> None:
    small = np.random.default_rng(0).integers(0, 2**31, 17_000_000 // 4, dtype=np.uint32)
    big = np.concatenate([small, small])
    saves, params, syncs = [], [], []
    prev: list[str] = []
    spares: list[str] = []
    bg = None
    for r in range(rounds):
        t0 = time.perf_counter()
        parts = [os.path.join(folder, f"p{r}-{i}") for i in range(2)]
        params.append(sum(_write(p, big, spares) for p in parts))

        def tidy(parts=parts, old=prev):
            t = time.perf_counter()
            if mode != "nofsync":
                for p in parts:
                    _fsync(p)
            syncs.append(time.perf_counter() - t)
            if mode == "recycle":
                spares.extend(old)  # as nlpzk does it since the fourteenth session (spares.py)
            elif mode != "nodelete":
                for p in old:
                    os.unlink(p)

        if bg is not None:
            bg.join()
        bg = threading.Thread(target=tidy)
        bg.start()
        time.sleep(0.9)
        contribs = [os.path.join(folder, f"c{r}-{i}") for i in range(2)]
        saves.append(max(_write(c, small, spares) for c in contribs))
        prev = parts + contribs
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))
    if bg is not None:
        bg.join()
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))

    def ms(xs: list[float]) -> str:
        s = sorted(xs)
        return f"median {1000 * s[len(s) // 2]:.0f} ms, max {1000 * s[-1]:.0f} ms  [{' '.join(f'{1000 * x:.0f}' for x in xs)}]"

    print(f"{mode:9s} 2 x 34 MB parameter writes: {ms(params)}")
    print(f"{mode:9s} 17 MB contribution write:   {ms(saves)}")
    print(f"{mode:9s} background fsync of 68 MB:  {ms(syncs)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("modes", nargs="*", default=["full", "recycle", "nodelete", "nofsync"])
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder in the current directory's file system)")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir or ".") as folder:
        for mode in args.modes:
            run(mode, folder, args.rounds)


if __name__ == "__main__":
    main()
