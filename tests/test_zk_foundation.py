"""Connection, chroot, auth/ACL, unreachable ZooKeeper, the embedded server, the version recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from _helpers import Cli, one_line_error
from nlpzk import testing
from nlpzk.cluster import as_nlpzk_error
from nlpzk.errors import NotAuthorizedError, NotFoundError, ZkUnavailableError
from nlpzk.zk import paths, registry
from nlpzk.zk.server import free_port


def test_connect_creates_chroot_and_isolates(zk_server, tmp_path):
    chroot = "/team-a/nlpzk"
    with testing.cluster_for(zk_server.address, tmp_path / "s", chroot=chroot) as c:
        c.zk.create("/hello", b"x")
        assert c.zk.get("/hello")[0] == b"x"
    raw = KazooClient(hosts=zk_server.address)
    raw.start(10)
    try:
        assert raw.get(f"{chroot}/hello")[0] == b"x"
        assert not raw.exists("/hello")
    finally:
        raw.stop()
        raw.close()


READ_ONLY = [
    ["status", "--json"], ["corpus", "list"], ["corpus", "show", "c"], ["corpus", "verify", "c"],
    ["vocab", "list"], ["vocab", "list", "v"], ["vocab", "show", "v"], ["vocab", "lookup", "v", "the"], ["vocab", "verify", "v"],
    ["vocab", "diff", "v", "v1", "v2"], ["vocab", "export", "v"], ["model", "list"], ["model", "show", "m"],
    ["model", "similar", "m", "w"], ["train", "list"], ["train", "status", "j"], ["zk", "status"], ["zk", "tree"],
    ["config", "show"], ["gc", "--dry-run"],
]


def test_read_only_commands_do_not_create_the_chroot(zk_server, tmp_path):
    """Every read-only command under a chroot that does not exist reports the empty registry (or
    "unknown ...") and writes nothing: the chroot appeared on connect. The first write creates it."""
    top = f"/ro-{os.urandom(4).hex()}"
    config = testing.config_for(zk_server.address, tmp_path / "store", chroot=f"{top}/nlpzk")
    cli = Cli(testing.env_for(config, tmp_path / "state"))
    raw = KazooClient(hosts=zk_server.address)
    raw.start(10)
    try:
        for argv in READ_ONLY:
            res = cli(*argv)
            assert res.exit_code in (0, NotFoundError.exit_code), (argv, res.stdout, res.stderr)
            assert raw.exists(top) is None, f"{argv} created the chroot"
        assert cli("corpus", "list", "--json").stdout.strip() == "[]"
        with testing.Cluster.connect(config) as c:
            assert raw.exists(top) is None
            registry.put_json(c.zk, "/corpora/x", {"options": {}, "created": 0})  # makepath below a chroot not there yet
        assert raw.exists(f"{top}/nlpzk/corpora/x") is not None
    finally:
        raw.stop()
        raw.close()


def test_zk_tree_json_lists_the_znodes_it_prints(cluster, cli):
    registry.put_json(cluster.zk, "/vocab/v/versions/v0000000001", {})
    registry.put_json(cluster.zk, "/vocab/v/tags/latest", {})
    res = cli("zk", "tree", "/vocab", "--depth", "2", "--json")
    assert res.exit_code == 0, res.output
    _, chroot = cluster.config.hosts_and_chroot()
    assert json.loads(res.stdout) == {"chroot": chroot, "path": "/vocab", "depth": 2, "nodes": ["/vocab", "/vocab/v", "/vocab/v/tags", "/vocab/v/versions"]}
    assert cli("zk", "tree", "/vocab", "--depth", "2").stdout.splitlines() == ["vocab", "  v", "    tags", "    versions"]


def test_zkcli_sees_the_chroot(zk_server, cluster):
    """ZooKeeper's own client (zkCli.sh) sees what nlpzk created under its chroot."""
    registry.put_json(cluster.zk, "/corpora", {})
    _, chroot = cluster.config.hosts_and_chroot()
    zkcli = "/usr/share/zookeeper/bin/zkCli.sh"
    if os.environ.get("ZOOKEEPER_HOME"):
        zkcli = os.path.join(os.environ["ZOOKEEPER_HOME"], "bin", "zkCli.sh")
    out = subprocess.run([zkcli, "-server", zk_server.address, "ls", chroot], capture_output=True, text=True, timeout=60)
    assert "[corpora]" in out.stdout, out.stdout + out.stderr


def test_unreachable_zookeeper_one_line_exit_code_and_time_bound(cli, cli_env):
    port = free_port()  # nothing listens here
    env = dict(cli_env, NLPZK_ZK=f"127.0.0.1:{port}", NLPZK_CONNECT_TIMEOUT="2")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nlpzk", "zk", "tree"], env=env, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - t0
    assert proc.returncode == ZkUnavailableError.exit_code == 3
    line = one_line_error(proc.stderr)
    assert f"127.0.0.1:{port}" in line and "within 2s" in line
    assert elapsed < 2 + 15  # connect timeout plus interpreter start-up (3 s here, more on a cold disk), never a hang


def test_auth_acl_protects_registry(zk_server, tmp_path):
    chroot = "/acl-test"
    owner = testing.cluster_for(zk_server.address, tmp_path / "s", chroot=chroot, auth="alice:pw1")
    stranger = testing.cluster_for(zk_server.address, tmp_path / "s", chroot=chroot)
    wrong = testing.cluster_for(zk_server.address, tmp_path / "s", chroot=chroot, auth="alice:nope")
    try:
        registry.put_json(owner.zk, "/vocab/v/tags/latest", {"v": 1})
        acl, _ = owner.zk.get_acls("/vocab/v/tags/latest")
        assert any(a.id.scheme == "digest" and a.id.id.startswith("alice:") for a in acl)
        # others may read (default acl_others=read) but not write
        assert registry.maybe_json(stranger.zk, "/vocab/v/tags/latest") == {"v": 1}
        for other in (stranger, wrong):
            with pytest.raises(NoAuthError) as info:
                other.zk.set("/vocab/v/tags/latest", b"{}")
            mapped = as_nlpzk_error(info.value)
            assert isinstance(mapped, NotAuthorizedError) and "not authorized" in mapped.line()
            with pytest.raises(NoAuthError):
                other.zk.delete("/vocab/v/tags/latest")
        registry.put_json(owner.zk, "/vocab/v/tags/latest", {"v": 2})
    finally:
        for c in (owner, stranger, wrong):
            c.close()


def test_refused_transactions_say_not_authorized_not_conflict(zk_server, tmp_path):
    """A tag move, a publish or a version delete that another user's ACL refuses raised "changed
    concurrently; try again" (exit 6) or retried: it is NoAuthError (exit 8)."""
    from nlpzk.zk import versioned

    owner = testing.cluster_for(zk_server.address, tmp_path / "s", chroot="/acl-tx", auth="alice:pw1")
    stranger = testing.cluster_for(zk_server.address, tmp_path / "s", chroot="/acl-tx", auth="bob:pw")
    try:
        base = paths.vocab("v")
        owner.zk.ensure_path(base)
        assert registry.publish_version(owner.zk, base, {"x": 1}, tags=["latest"]) == 1
        for attempt in (
            lambda: registry.move_tag(stranger.zk, base, "prod", 1),
            lambda: registry.publish_version(stranger.zk, base, {"x": 2}, tags=["latest"]),
            lambda: versioned.delete_version(stranger.zk, base, 1),
        ):
            with pytest.raises(NoAuthError) as info:
                attempt()
            assert isinstance(as_nlpzk_error(info.value), NotAuthorizedError)
        assert [n for n, _ in registry.list_versions(owner.zk, base)] == [1]
        assert registry.children(owner.zk, f"{base}/tags") == ["latest"]
    finally:
        owner.close()
        stranger.close()


def test_acl_others_none_hides_data(zk_server, tmp_path):
    owner = testing.cluster_for(zk_server.address, tmp_path / "s", chroot="/acl-none", auth="bob:pw", acl_others="none")
    stranger = testing.cluster_for(zk_server.address, tmp_path / "s", chroot="/acl-none")
    try:
        registry.put_json(owner.zk, "/models/m", {"secret": 1})
        with pytest.raises(NoAuthError):
            stranger.zk.get("/models/m")
    finally:
        owner.close()
        stranger.close()


def test_unauthorized_cli_write_is_one_line(cli, cli_env, zk_server, tmp_path):
    chroot = "/" + cli_env["NLPZK_ZK"].split("/", 1)[1]
    owner = testing.cluster_for(zk_server.address, tmp_path / "s", chroot=chroot, auth="carol:pw")
    try:
        registry.put_json(owner.zk, "/corpora", {})  # carol's registry: others may read, not write
    finally:
        owner.close()
    text = tmp_path / "a.txt"
    text.write_text("Hello world.\n")
    proc = cli.run_process("corpus", "ingest", "c", str(text), timeout=60)
    assert proc.returncode == NotAuthorizedError.exit_code, proc.stdout + proc.stderr
    assert "not authorized" in one_line_error(proc.stderr)
    assert cli.run_process("corpus", "list", "--json").returncode == 0  # reading is allowed


def test_publish_version_concurrent_distinct_and_complete(cluster, config):
    base = paths.vocab("race")
    cluster.zk.ensure_path(base)
    results: list[int] = []
    errors: list[BaseException] = []

    def publisher(n: int) -> None:
        try:
            with testing.Cluster.connect(config) as c:
                for _ in range(n):
                    results.append(registry.publish_version(c.zk, base, {"by": threading.get_ident()}, tags=["latest"]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(5,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == list(range(1, 21))
    assert registry.children(cluster.zk, f"{base}/versions") == [paths.version_name(i) for i in range(1, 21)]
    assert cluster.zk.get(f"{base}/tags/latest")[0].decode() in {paths.version_name(i) for i in range(1, 21)}
    assert registry.resolve_version(cluster.zk, base, "vocabulary", "race", None, "latest") >= 1
    with pytest.raises(NotFoundError, match="no version v99"):
        registry.resolve_version(cluster.zk, base, "vocabulary", "race", 99, None)
    with pytest.raises(NotFoundError, match="no tag 'stable'"):
        registry.resolve_version(cluster.zk, base, "vocabulary", "race", None, "stable")
    registry.move_tag(cluster.zk, base, "stable", 3)
    assert registry.resolve_version(cluster.zk, base, "vocabulary", "race", None, "stable") == 3


def test_expire_session_removes_ephemerals(cluster, zk_server):
    cluster.zk.create("/eph", b"", ephemeral=True)
    observer = testing.Cluster.connect(cluster.config)
    try:
        testing.expire_session(cluster.zk, zk_server.address)
        deadline = time.monotonic() + 10
        while observer.zk.exists("/eph") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not observer.zk.exists("/eph")
        # kazoo calls its state listeners in no fixed order: ours may come after expire_session's
        assert cluster.watch.lost.wait(10)
    finally:
        observer.close()


def test_refuses_bulk_documents(cluster):
    from nlpzk.errors import NlpzkError

    with pytest.raises(NlpzkError, match="bulk data belongs in the store"):
        registry.put_json(cluster.zk, "/big", {"x": "a" * 100_000})


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "x" * 200, "sp ace"])
def test_bad_names_rejected(name):
    from nlpzk.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        paths.corpus(name)


def test_refused_vocab_build_deletes_its_table(zk_server, tmp_path):
    """A vocab build whose publish the ACL refuses knows it was not registered: its table is
    deleted, as on a conflict, instead of staying behind as garbage for gc."""
    from nlpzk.corpus import Corpus, ShardWriter
    from nlpzk.ingest import tokenizer_options
    from nlpzk.vocab import build

    store = tmp_path / "s"
    owner = testing.cluster_for(zk_server.address, store, chroot="/acl-vocab-build", auth="alice:pw1")
    stranger = testing.cluster_for(zk_server.address, store, chroot="/acl-vocab-build")
    try:
        Corpus.create(owner, "c", tokenizer_options())
        with ShardWriter(owner.store, "c", "s000") as w:
            w.add("d0", "a.txt", ["the", "cat", "sat", "the", "cat"])
        registry.create_json(owner.zk, paths.shard("c", w.info.id), w.info.doc())
        build(owner, "v", "c")
        before = sorted(p.name for p in (store / "vocab" / "v").iterdir())
        with pytest.raises(NotAuthorizedError, match="not authorized"):  # (called from outside nlpzk: kazoo's NoAuthError translated)
            build(stranger, "v", "c")
        assert sorted(p.name for p in (store / "vocab" / "v").iterdir()) == before
    finally:
        owner.close()
        stranger.close()
