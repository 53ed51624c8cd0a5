"""Run ``python -m nlpzk ARGS`` with one function made into a pausing point (fault injection).

Usage: ``python _pause_at.py (--stop | --gate DIR) package.module:function ARGS...``. Only the
first call of ``function`` pauses, before the function runs:

* ``--stop``: the process SIGSTOPs itself, so a test can SIGKILL it at exactly that point of the
  real command (e.g. after a file is written, before it is registered);
* ``--gate DIR``: the calling thread touches ``DIR/reached`` and waits until ``DIR/go`` exists. The
  process's other threads run on (kazoo keeps the session alive), so a test can line up another
  process first (e.g. hold an ingester before its first commit until a second one holds a claim).

Test-suite code only: nothing in the library knows about it.
"""

from __future__ import annotations

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
    if sys.argv[1] == "--stop":
        gate, target, args = None, sys.argv[2], sys.argv[3:]
    elif sys.argv[1] == "--gate":
        gate, target, args = sys.argv[2], sys.argv[3], sys.argv[4:]
    else:
        sys.exit(f"usage: {sys.argv[0]} (--stop | --gate DIR) package.module:function ARGS...")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    original, first = getattr(module, attr), [True]

    @functools.wraps(original)
    def pausing(*a, **kw):
        if first:
            first.clear()
            if gate is None:
                os.kill(os.getpid(), signal.SIGSTOP)
            else:
                open(os.path.join(gate, "reached"), "w").close()
                while not os.path.exists(os.path.join(gate, "go")):
                    time.sleep(0.02)
        return original(*a, **kw)

    setattr(module, attr, pausing)
    sys.argv = ["nlpzk", *args]
    runpy.run_module("nlpzk", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
