"""Child processes that do not outlive their parent.

A ``corpus ingest --processes N`` or ``vocab build --processes N`` killed with SIGKILL cannot shut
its process pool down: the spawned workers (150-175 MB each) and multiprocessing's resource
tracker were left running under init. On Linux each pool worker asks the kernel for SIGTERM when
the thread that started it (the command's main thread) exits.

A test or benchmark run (:func:`reap_at_exit`) goes further: every process it or its descendants
start, whatever their session or parent thread, is SIGKILLed when it ends, however it ends. A
pytest killed by a timeout left its ZooKeeper servers (java, started in a session of their own so
that they outlive ``nlpzk zk start``) and its ``train run`` processes running under init.

This file is also the reaper's program: ``python -I _children.py MARK`` (stdlib only, so it starts
in milliseconds and does not depend on the package being importable).
"""

from __future__ import annotations

import os
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_REAP_PREFIX = "NLPZK_REAP_"
_reaper: tuple[str, object, int] | None = None  # (mark, the reaper's Popen, our end of its pipe): held for life


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


def reap_at_exit() -> str:
    """Make every process this one starts from now on, and their descendants, die with it (SIGKILL).

    For test and benchmark runs only; idempotent. The processes are marked by an environment
    variable (``NLPZK_REAP_<token>=1``, returned) that children inherit, whatever session they
    start (``nlpzk zk start`` detaches its server: in a test run it must still go). A reaper
    process in a session of its own waits for EOF on a pipe whose only writer is this process: when
    this process ends, even by SIGKILL, it kills every live process carrying the mark. Needs
    ``/proc`` (Linux); a process started with an environment built from scratch is not marked.
    Nested runs (a test that runs pytest) stack their marks, so each run's reaper sees its own.
    """
    global _reaper
    if _reaper is not None:
        return _reaper[0]
    import subprocess
    import uuid

    mark = f"{_REAP_PREFIX}{uuid.uuid4().hex}"
    read_end, write_end = os.pipe()  # both close-on-exec: no child but the reaper (its stdin) holds an end
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), mark],
            stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
    finally:
        os.close(read_end)
    _reaper = (mark, proc, write_end)
    os.environ[mark] = "1"
    return mark


def marked_processes(mark: str) -> list[int]:
    """Pids of the live processes (this one aside) whose environment carries ``mark``."""
    needle = f"{mark}=1".encode()
    out = []
    for name in os.listdir("/proc"):
        if not (name.isascii() and name.isdigit()) or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                environ = fh.read()  # empty for a zombie: it is already dead
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            out.append(int(name))
    return out


def _reap(mark: str, give_up_after: float = 30.0) -> None:
    """Wait for EOF on stdin (the run has ended), then SIGKILL the marked processes until none is left
    (a process being killed may still fork: the next pass finds its child)."""
    while os.read(0, 4096):
        pass
    deadline = time.monotonic() + give_up_after
    while time.monotonic() < deadline:
        pids = marked_processes(mark)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


if __name__ == "__main__":
    _reap(sys.argv[1])
