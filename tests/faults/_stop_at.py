"""Run ``python -m nlpzk ARGS`` with one function made into a stopping point (fault injection).

Usage: ``python _stop_at.py package.module:function ARGS...``. The first call of ``function``
SIGSTOPs the process before the function runs, so a test can SIGKILL it at exactly that point of the
real command (e.g. after a file is written, before it is registered). Test-suite code only: nothing
in the library knows about it.
"""

from __future__ import annotations

import functools
import importlib
import os
import runpy
import signal
import sys


def main() -> None:
    # run as a script, sys.path[0] is this folder; the checkout's root holds nlpzk and cli
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    target, args = sys.argv[1], sys.argv[2:]
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    original = getattr(module, attr)

    @functools.wraps(original)
    def stopping(*a, **kw):
        os.kill(os.getpid(), signal.SIGSTOP)
        return original(*a, **kw)

    setattr(module, attr, stopping)
    sys.argv = ["nlpzk", *args]
    runpy.run_module("nlpzk", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
