"""What a test run starts dies with it: a pytest killed by a timeout (SIGKILL) leaves no ZooKeeper
server, no ``nlpzk`` process and none of their children running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from _helpers import ROOT, wait_for
from nlpzk.zk.server import four_letter

# Run by a pytest of its own with this suite's conftest: the session's standalone server, plus the
# kinds of process tests start: a child, one in a session of its own (as `nlpzk zk start` detaches
# its server), and the child of a child (as `train run` starts its workers). Then it waits to be killed.
_HELD_RUN = '''
import json, os, subprocess, sys, time

SLEEP = "import sys, time; time.sleep(600)"


def test_hold(zk_server):
    here = os.environ["HELD_RUN_DIR"]
    child = subprocess.Popen([sys.executable, "-c", SLEEP, here])
    detached = subprocess.Popen([sys.executable, "-c", SLEEP, here], start_new_session=True)
    parent = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]]).pid, flush=True); "
        + SLEEP, SLEEP, here], stdout=subprocess.PIPE, text=True)
    grandchild = int(parent.stdout.readline())
    pids = {"java": zk_server.pid(), "child": child.pid, "detached": detached.pid, "parent": parent.pid, "grandchild": grandchild}
    with open(os.path.join(here, "pids.tmp"), "w") as fh:
        json.dump({"pids": pids, "port": zk_server.client_port}, fh)
    os.rename(os.path.join(here, "pids.tmp"), os.path.join(here, "pids.json"))
    time.sleep(600)
'''


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _ours(pid: int, where: Path) -> bool:
    """Still one of the run's processes (their command lines all name ``where``), not a reused pid."""
    with contextlib.suppress(OSError):
        return str(where) in Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    return False


def test_a_killed_test_run_leaves_no_server_or_process_running(tmp_path):
    (tmp_path / "test_held.py").write_text(_HELD_RUN)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, HELD_RUN_DIR=str(tmp_path), PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "-c", str(tmp_path / "pytest.ini"),
         f"--basetemp={tmp_path / 'bt'}", str(tmp_path / "test_held.py")],
        env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=open(tmp_path / "run.log", "wb"), stderr=subprocess.STDOUT,
    )
    pids: dict[str, int] = {}
    try:
        wait_for(lambda: (tmp_path / "pids.json").exists() or run.poll() is not None, timeout=120, every=0.05, what="the held run's processes")
        assert run.poll() is None, (tmp_path / "run.log").read_text()
        held = json.loads((tmp_path / "pids.json").read_text())
        pids = held["pids"]
        assert all(_alive(pid) for pid in pids.values()), pids
        run.send_signal(signal.SIGKILL)  # as a CI timeout or `kill -9` does: no fixture teardown runs
        run.wait()
        try:
            wait_for(lambda: not any(_alive(pid) for pid in pids.values()), timeout=10, every=0.05, what="the run's processes to go")
        except AssertionError:
            raise AssertionError(f"still running after the run was killed: {sorted(k for k, pid in pids.items() if _alive(pid))}") from None
        assert four_letter("127.0.0.1", held["port"], "ruok", timeout=0.5) is None
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in pids.values():
            if _alive(pid) and _ours(pid, tmp_path):
                os.kill(pid, signal.SIGKILL)
