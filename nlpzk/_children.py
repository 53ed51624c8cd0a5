"""Child processes that do not outlive their parent.

A ``corpus ingest --processes N`` or ``vocab build --processes N`` killed with SIGKILL cannot shut
its process pool down: the spawned workers (150-175 MB each) and multiprocessing's resource
tracker were left running under init. On Linux each pool worker asks the kernel for SIGTERM when
the thread that started it (the command's main thread) exits.
"""

from __future__ import annotations

import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: exit when process ``parent_pid`` goes away (Linux; elsewhere nothing)."""
    if sys.platform != "linux":
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no prctl here: the old behaviour
        return
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(1)
