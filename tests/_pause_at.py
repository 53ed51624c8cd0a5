"""Run ``python -m nlpzk ARGS`` with one function made into a pausing point (fault injection).

Usage: ``python _pause_at.py (--stop | --gate DIR) [--nth N] [--match TEXT] module:name ARGS...``,
where ``name`` is a function or a method (``Class.method``). The pause comes before the function
runs, at its first call (or its ``N``th call whose arguments' repr contains ``TEXT``), once:

* ``--stop``: the process SIGSTOPs itself, so a test can SIGKILL it at exactly that point of the
  real command (e.g. after a file is written, before it is registered);
* ``--gate DIR``: the calling thread touches ``DIR/reached`` and waits until ``DIR/go`` exists. The
  process's other threads run on (kazoo keeps the session alive), so a test can line up another
  process first (e.g. hold an ingester before its first commit until a second one holds a claim).

Test-suite code only: nothing in the library knows about it.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import runpy
import signal
import sys
import time


def main() -> None:
    # run as a script, sys.path[0] is this folder; the checkout's root holds nlpzk and cli
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # our options, then module:name, then the command's own arguments untouched
    argv, opts = sys.argv[1:], {"stop": False, "gate": None, "nth": 1, "match": ""}
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)[2:]
        opts[flag] = True if flag == "stop" else argv.pop(0)
    if not argv or bool(opts["stop"]) == bool(opts["gate"]):
        sys.exit(__doc__)
    opts = argparse.Namespace(**dict(opts, nth=int(opts["nth"]), target=argv[0]))
    args = argv[1:]
    module_name, _, attr = opts.target.partition(":")
    owner = importlib.import_module(module_name)
    *outer, leaf = attr.split(".")
    for part in outer:
        owner = getattr(owner, part)
    original, seen = getattr(owner, leaf), [0]

    @functools.wraps(original)
    def pausing(*a, **kw):
        if seen[0] < opts.nth and opts.match in repr((a, kw)):
            seen[0] += 1
            if seen[0] == opts.nth:
                if opts.stop:
                    os.kill(os.getpid(), signal.SIGSTOP)
                else:
                    open(os.path.join(opts.gate, "reached"), "w").close()
                    while not os.path.exists(os.path.join(opts.gate, "go")):
                        time.sleep(0.02)
        return original(*a, **kw)

    setattr(owner, leaf, pausing)
    sys.argv = ["nlpzk", *args]
    runpy.run_module("nlpzk", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
