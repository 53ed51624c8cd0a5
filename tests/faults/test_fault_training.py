"""Training under faults on the real 3-server ensemble, with real ``nlpzk train worker`` processes:
a worker SIGKILLed, the ZooKeeper leader then a follower stopped, a worker paused past its session."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from nlpzk import gc, testing, train
from nlpzk.store import naming
from nlpzk.zk import lease, paths, registry

from _faults import ROOT, assert_registry_matches_store, nlpzk_process, stop_leader_while, wait_for
from _partition import Partition
from _train_helpers import hold_a_unit, lee_sentences, make_corpus, make_vocab

pytestmark = [pytest.mark.ensemble, pytest.mark.timeout(180)]


def _job(cluster, job, *, shards=4, repeat=4, epochs=3, syncs=1):
    make_corpus(cluster, "lee", shards, lee_sentences() * repeat)
    make_vocab(cluster, "lee", "lee", min_count=2)
    train.create_job(cluster, job, "lee", "lee", epochs=epochs, syncs_per_epoch=syncs, dim=20, seed=3)


def _holding(cluster, job, pid, min_round=0):
    """``(round, shards)`` once worker ``pid`` holds leases in a round >= ``min_round``, else None."""
    st = train.status(cluster, job)
    held = sorted(u for u, owner in st["leases"].items() if owner and f"-{pid}-" in owner)
    return (st["round"], held) if held and st["round"] >= min_round else None


def _round_log(cluster, job, r):
    return json.loads(cluster.store.read_bytes(naming.round_log(job, r)))


def _finish(procs, logs):
    for p, log in zip(procs, logs):
        assert p.wait(150) == 0, log.read_text()


def test_sigkilled_worker_mid_round_its_shards_are_released_and_trained_once(fault_cluster, fault_env, tmp_path, record_recovery):
    _job(fault_cluster, "jk")
    logs = [tmp_path / "victim.log", tmp_path / "other.log"]
    victim, other = (nlpzk_process(fault_env, "train", "worker", "jk", log=log) for log in logs)
    r, held = wait_for(lambda: _holding(fault_cluster, "jk", victim.pid, min_round=1), 120, what="the victim holding a lease in round >= 1")
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    victim.wait()

    def released():
        st = train.status(fault_cluster, "jk")
        if st["round"] > r:
            return True
        return not any(owner and f"-{victim.pid}-" in owner for u, owner in st["leases"].items() if u in held)

    wait_for(released, 30, what="the killed worker's leases vanishing")
    record_recovery("worker SIGKILL -> its leases free (session expiry)", time.monotonic() - killed)
    wait_for(lambda: train.status(fault_cluster, "jk")["round"] > r, 120, what="the round finishing")
    record_recovery("worker SIGKILL -> its round merged by the survivor", time.monotonic() - killed)
    _finish([other], logs[1:])

    st = train.status(fault_cluster, "jk")
    assert st["state"] == "done"
    log = _round_log(fault_cluster, "jk", r)
    by_shard = {c["shard"]: c["worker"] for c in log["commits"]}
    assert all(f"-{other.pid}-" in by_shard[u] for u in held)  # the survivor trained what the victim held
    assert_registry_matches_store(fault_cluster)
    # nothing to collect, and collecting with no grace period leaves the finished job whole
    gc_run = subprocess.run([sys.executable, "-m", "nlpzk", "gc", "--older-than", "0", "--json"], env=fault_env, capture_output=True, text=True, timeout=60)
    assert gc_run.returncode == 0 and json.loads(gc_run.stdout)["files"] == [], gc_run.stdout + gc_run.stderr
    kv, _ = train.final_vectors(fault_cluster, "jk")
    assert len(kv) == st["spec"]["vocab_size"]


class _WriteProbe(threading.Thread):
    """A client connected to one member (``first``) that writes a znode as fast as ZooKeeper lets it;
    ``first_write_after(t)`` is when its service resumed after that member went away."""

    def __init__(self, ensemble, first: int, chroot: str):
        super().__init__(daemon=True)
        order = [ensemble.members[first]] + [m for i, m in enumerate(ensemble.members) if i != first]
        self.zk = KazooClient(hosts=",".join(m.address for m in order) + chroot, timeout=3.0, randomize_hosts=False,
                              connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
        self.zk.start(timeout=10)
        assert self.zk.connected
        self.zk.ensure_path("/probe")
        self.ok: list[float] = []
        self.halt = threading.Event()

    def run(self):
        n = 0
        while not self.halt.is_set():
            try:
                n += 1
                self.zk.set("/probe", str(n).encode())
                self.ok.append(time.monotonic())
            except Exception:  # noqa: BLE001 - ConnectionLoss/SessionExpired while a member is down: retry
                time.sleep(0.01)
            time.sleep(0.01)
        self.zk.stop()
        self.zk.close()

    def first_write_after(self, t: float, timeout: float = 30.0) -> float:
        return wait_for(lambda: next((x for x in list(self.ok) if x > t), None), timeout, what="a successful write") - t


def _stop_member(ensemble, index, job_cluster, job, record, label, *, held=None, hold_after=False):
    """Stop member ``index`` while the job is mid-round; return after the job merged one more round.

    The write probe is a client connected to exactly that member: its first write after the member
    is gone measures the client-side recovery (reconnect to a survivor, plus an election for a leader).
    ``hold_after``: return a unit of the open round held for the test (:func:`hold_a_unit`), so that
    the job cannot end while the member restarts (1-3 s of JVM start, against ~2 s of job left on an
    idle machine); the next call releases it (``held``) once its own member is down.
    """
    probe = _WriteProbe(ensemble, index, job_cluster.config.hosts_and_chroot()[1])
    probe.start()
    hold = None
    try:
        r = train.status(job_cluster, job)["round"]
        ensemble.members[index].stop()
        gone = time.monotonic()
        assert ensemble.members[index].status() is None
        new_leader = ensemble.wait_for_leader()
        assert new_leader != index
        record(f"{label} gone -> quorum has a leader again (srvr)", time.monotonic() - gone)
        record(f"{label} gone -> first successful write of a client connected to it", probe.first_write_after(gone))
        if held is not None:
            job_cluster.zk.retry(lease.release, job_cluster.zk, [held])
        try:
            wait_for(lambda: train.status(job_cluster, job)["round"] > r, 90, what=f"a round merged without the {label}")
        except AssertionError:
            st = train.status(job_cluster, job)
            raise AssertionError(f"stuck in round {st['round']}: leases {st['leases']}, done {st['done_in_round']}, workers {list(st['workers'])}") from None
        record(f"{label} gone -> the job's next round merged", time.monotonic() - gone)
        assert train.status(job_cluster, job)["state"] == "running", "the fault must land mid-training"
        if hold_after:
            hold = hold_a_unit(job_cluster, job)
    finally:
        probe.halt.set()
        probe.join(10)
    ensemble.members[index].start()
    ensemble.wait_for_leader()
    return hold


def test_leader_then_follower_stopped_mid_training_the_job_finishes(ensemble, fault_cluster, fault_env, tmp_path, record_recovery):
    _job(fault_cluster, "jl", repeat=2, epochs=8, syncs=2)  # 16 rounds: room for two faults even on an idle machine
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    procs = [nlpzk_process(fault_env, "train", "worker", "jl", log=log) for log in logs]
    try:
        wait_for(lambda: (lambda st: st["round"] >= 1 and len(st["workers"]) == 2)(train.status(fault_cluster, "jl")), 120, what="round 1 with both workers")
        leader = ensemble.leader()
        assert leader is not None
        held = _stop_member(ensemble, leader, fault_cluster, "jl", record_recovery, "leader", hold_after=True)
        follower = next(i for i, st in enumerate(ensemble.statuses()) if st and st["mode"] == "follower")
        _stop_member(ensemble, follower, fault_cluster, "jl", record_recovery, "follower", held=held)
        _finish(procs, logs)
    finally:
        for m in ensemble.members:  # the ensemble is shared by the session: leave it whole
            m.start()
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert train.status(fault_cluster, "jl")["state"] == "done"
    # A commit whose reply was lost has an unknown outcome, so its contribution files stay: at worst
    # unregistered garbage (never a registered file gone), which gc deletes.
    assert_registry_matches_store(fault_cluster, garbage_ok=lambda g: "/contrib/" in g.path)
    gc.collect(fault_cluster, older_than=0)
    assert_registry_matches_store(fault_cluster)


def test_worker_paused_past_its_session_is_fenced_off(fault_config, fault_cluster, fault_env, tmp_path, record_recovery):
    """The paused worker's shards are leased by another holder (the test itself, so the timing is
    exact) while it sleeps; when it wakes up and commits the work it did under the old lease, the
    commit must be rejected: no done marker appears for those shards while the new holder has them.

    A worker that wakes up and touches ZooKeeper before its client has a new session drops its work
    without trying to commit (also safe, but it does not test the fence): the pause is then repeated.
    """
    _job(fault_cluster, "jp", repeat=6, epochs=6)
    log = tmp_path / "victim.log"
    victim = nlpzk_process(fault_env, "train", "worker", "jp", log=log)
    fenced_in = None
    for attempt in range(4):
        text = log.read_text()
        before = (text.count("fenced:"), text.count("rejoined:"))
        r, held = wait_for(lambda: _holding(fault_cluster, "jp", victim.pid), 120, what="the victim holding a lease")
        victim.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        thief = testing.Cluster.connect(fault_config)
        try:
            try:
                wait_for(lambda: not _holding(fault_cluster, "jp", victim.pid), 30, what="the paused worker's leases vanishing")
                if attempt == 0:
                    record_recovery("worker SIGSTOP -> its leases free (session expiry)", time.monotonic() - paused)
                for unit in held:
                    got = lease.acquire(thief.zk, paths.round_leases("jp", r), paths.job_fences("jp"), unit, "thief", absent=paths.round_done_shard("jp", r, unit))
                    assert got is not None, f"{unit} could not be leased again"
            finally:
                victim.send_signal(signal.SIGCONT)
            # it finishes the slice it was training and commits it under its old lease (or drops it)
            wait_for(lambda: (lambda t: t.count("fenced:") > before[0] or t.count("rejoined:") > before[1])(log.read_text()), 60, what="the woken worker committing or rejoining")
            assert not set(held) & set(registry.children(fault_cluster.zk, paths.round_done("jp", r))), "a stale commit was registered"
            if log.read_text().count("fenced:") > before[0]:
                fenced_in = r
        finally:
            thief.close()  # its leases vanish: the worker trains those shards again, under new leases
        if fenced_in is not None:
            break
    assert fenced_in is not None, log.read_text()
    fenced = log.read_text().split("fenced:")[-1].splitlines()[0]
    assert f"round={fenced_in}" in fenced, fenced
    assert victim.wait(150) == 0, log.read_text()
    assert train.status(fault_cluster, "jp")["state"] == "done"
    assert_registry_matches_store(fault_cluster)


def test_worker_partitioned_from_zookeeper_loses_its_round_and_rejoins(ensemble, fault_config, fault_cluster, fault_env, tmp_path, record_recovery):
    """A running (not paused) worker in its own network namespace is cut off from every ZooKeeper
    member mid-round: its session expires, the other worker trains its shards, and after the
    partition heals it rejoins under a new session; nothing it did while cut off is registered."""
    _job(fault_cluster, "jn", repeat=4, epochs=10)
    with Partition([(m.host, m.client_port) for m in ensemble.members]) as part:
        chroot = fault_config.hosts_and_chroot()[1]
        env = dict(fault_env, NLPZK_ZK=part.hosts + chroot)
        logs = [tmp_path / "cut.log", tmp_path / "other.log"]
        cut_off = subprocess.Popen(part.command(sys.executable, "-m", "nlpzk", "train", "worker", "jn"), env=env, cwd=ROOT, stdout=open(logs[0], "wb"), stderr=subprocess.STDOUT)
        other = nlpzk_process(fault_env, "train", "worker", "jn", log=logs[1])
        try:
            r, held = wait_for(lambda: _holding(fault_cluster, "jn", cut_off.pid, min_round=1), 120, what="the worker holding a lease in round >= 1")
            part.cut()
            cut = time.monotonic()
            wait_for(lambda: not _holding(fault_cluster, "jn", cut_off.pid), 30, what="the cut-off worker's leases vanishing")
            record_recovery("partition -> the cut-off worker's leases free (session expiry)", time.monotonic() - cut)
            wait_for(lambda: train.status(fault_cluster, "jn")["round"] > r, 120, what="the round merged by the other worker")
            record_recovery("partition -> its round merged by the other worker", time.monotonic() - cut)
            # Alone, the other worker could finish the job before the cut-off one reconnects (kazoo's
            # back-off alone takes up to 2 s): hold a unit, as a stalled worker would, until it rejoins.
            hold = hold_a_unit(fault_cluster, "jn")
            part.heal()
            healed = time.monotonic()
            wait_for(lambda: "rejoined:" in logs[0].read_text(), 60, what="the cut-off worker rejoining")
            assert train.status(fault_cluster, "jn")["state"] == "running"
            record_recovery("partition healed -> the cut-off worker rejoined", time.monotonic() - healed)
            lease.release(fault_cluster.zk, [hold])
            _finish([cut_off, other], logs)
        finally:
            for p in (cut_off, other):
                if p.poll() is None:
                    p.kill()
    assert train.status(fault_cluster, "jn")["state"] == "done"
    commits = _round_log(fault_cluster, "jn", r)["commits"]
    assert all(f"-{other.pid}-" in c["worker"] for c in commits if c["shard"] in held), commits
    assert_registry_matches_store(fault_cluster)


def test_train_run_follows_its_job_through_a_leader_election(ensemble, fault_cluster, fault_env, tmp_path):
    """`train run` with local workers, the leader stopped mid-job: the command rides out the
    election (it used to exit 3 on the first ConnectionLoss and leave its workers running)."""
    _job(fault_cluster, "jr", repeat=2, epochs=8, syncs=2)
    log = tmp_path / "run.log"
    proc = nlpzk_process(fault_env, "train", "run", "jr", "--workers", "2", log=log)
    ready = lambda: (lambda st: st["round"] >= 2 and len(st["workers"]) == 2)(train.status(fault_cluster, "jr"))  # noqa: E731
    rc = stop_leader_while(ensemble, proc, ready, timeout=180)
    assert rc == 0, log.read_text()[-3000:]
    assert "job jr done: 16 rounds" in log.read_text()
    st = train.status(fault_cluster, "jr")
    assert st["state"] == "done" and st["rounds"] == 16
