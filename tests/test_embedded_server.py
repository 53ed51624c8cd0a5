"""The embedded default ZooKeeper (`nlpzk zk start|stop|status`) and the local ensemble."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from kazoo.client import KazooClient

from nlpzk import testing
from nlpzk.zk import registry
from nlpzk.zk.server import find_install, free_port
from nlpzk.errors import MissingDependencyError


def _nlpzk(env, *args, timeout=90):
    return subprocess.run([sys.executable, "-m", "nlpzk", *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def embedded_env(cli_env, tmp_path):
    env = {k: v for k, v in cli_env.items() if k != "NLPZK_ZK"}
    env.update(NLPZK_STATE_DIR=str(tmp_path / "state"), NLPZK_ZK_PORT=str(free_port()))
    yield env
    _nlpzk(env, "zk", "stop")


def test_start_stop_twice_is_idempotent(embedded_env):
    first = _nlpzk(embedded_env, "zk", "start", "--json")
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert info["started"] is True and info["mode"] == "standalone"
    second = _nlpzk(embedded_env, "zk", "start", "--json")
    assert json.loads(second.stdout)["started"] is False
    assert json.loads(second.stdout)["pid"] == info["pid"]

    status = _nlpzk(embedded_env, "zk", "status", "--json")
    assert status.returncode == 0
    server = json.loads(status.stdout)["servers"][0]
    assert server["serving"] and server["mode"] == "standalone" and server["version"].startswith("3.")

    assert json.loads(_nlpzk(embedded_env, "zk", "stop", "--json").stdout)["stopped"] is True
    assert json.loads(_nlpzk(embedded_env, "zk", "stop", "--json").stdout)["stopped"] is False
    assert _nlpzk(embedded_env, "zk", "status").returncode == 3
    # and it comes back, twice in a row, with its data kept
    assert json.loads(_nlpzk(embedded_env, "zk", "start", "--json").stdout)["started"] is True


def test_commands_start_embedded_server_once_and_say_so(embedded_env):
    first = _nlpzk(embedded_env, "corpus", "list")
    assert first.returncode == 0, first.stderr
    assert "started the embedded ZooKeeper" in first.stderr
    second = _nlpzk(embedded_env, "corpus", "list")
    assert second.returncode == 0 and "started the embedded ZooKeeper" not in second.stderr


def test_concurrent_commands_share_one_embedded_server(embedded_env):
    procs = [subprocess.Popen([sys.executable, "-m", "nlpzk", "corpus", "list"], env=embedded_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum("started the embedded ZooKeeper" in err for _, err in outs) == 1


def test_missing_java_or_zookeeper_names_install_command(tmp_path):
    with pytest.raises(MissingDependencyError, match="Java and ZooKeeper not found.*apt-get install -y default-jre-headless zookeeper"):
        find_install({"PATH": str(tmp_path)}, debian_jars=str(tmp_path))
    with pytest.raises(MissingDependencyError, match="^Java not found"):
        find_install({"PATH": str(tmp_path)})
    with pytest.raises(MissingDependencyError, match="ZOOKEEPER_HOME=.* holds no zookeeper jar"):
        find_install({"ZOOKEEPER_HOME": str(tmp_path)})


def test_missing_zookeeper_cli_is_one_line(embedded_env, tmp_path):
    env = dict(embedded_env, ZOOKEEPER_HOME=str(tmp_path / "nothing"))
    (tmp_path / "nothing").mkdir()
    proc = _nlpzk(env, "zk", "start")
    assert proc.returncode == 9
    assert proc.stderr.strip().startswith("error: ZOOKEEPER_HOME=") and "Traceback" not in proc.stderr


@pytest.mark.ensemble
def test_ensemble_survives_one_member_stopped(ensemble, tmp_path):
    leader = ensemble.wait_for_leader()
    with testing.cluster_for(ensemble.hosts, tmp_path / "s") as c:
        chroot = c.config.hosts_and_chroot()[1]
        registry.put_json(c.zk, "/survive", {"n": 1})
        ensemble.members[leader].stop()
        try:
            deadline = time.monotonic() + 30
            while True:  # the client reconnects to a survivor once a new leader is elected
                try:
                    registry.put_json(c.zk, "/survive", {"n": 2})
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert registry.maybe_json(c.zk, "/survive") == {"n": 2}
            assert ensemble.leader() is not None and ensemble.leader() != leader
        finally:
            ensemble.members[leader].start()
            ensemble.wait_for_leader()
    # the restarted member caught up
    direct = KazooClient(hosts=ensemble.members[leader].address)
    direct.start(10)
    try:
        direct.sync("/")
        assert registry.loads(direct.get(f"{chroot}/survive")[0]) == {"n": 2}
    finally:
        direct.stop()
        direct.close()
