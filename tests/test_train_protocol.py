"""The coordination recipes behind training, on a real ZooKeeper: fenced leases, the round barrier, publish."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nlpzk import testing
from nlpzk.errors import FencedError, InvalidInputError
from nlpzk.store import naming
from nlpzk.train import merge as M
from nlpzk.zk import lease, paths, rounds

UNITS = ["s-00000", "s-00001", "s-00002"]


def _job(cluster, name="j"):
    doc = {"spec": {"rounds": 2}, "state": "running", "round": 0, "words": 0}
    assert rounds.create_job(cluster.zk, name, doc, {"round": 0, "params": "p0"}, UNITS)
    assert not rounds.create_job(cluster.zk, name, doc, {"round": 0, "params": "p0"}, UNITS)  # exists: no-op
    return rounds.RoundBarrier(cluster.zk, name, UNITS)


def test_lease_is_exclusive_and_commit_marks_done(cluster):
    b = _job(cluster)
    a_lease, st = b.lease_next(0, "A")
    assert a_lease.unit == "s-00000" and st.free == UNITS
    b_lease, st = b.lease_next(0, "B")
    assert b_lease.unit == "s-00001" and set(st.leased) == {"s-00000"}
    b.commit(0, [a_lease], {"worker": "A", "contrib": "c1", "words": 5, "loss": 1.0})
    st = b.state(0)
    assert set(st.done) == {"s-00000"} and set(st.leased) == {"s-00001"} and st.free == ["s-00002"]
    # a done unit is never leased again in the same round, even by a direct acquire
    assert lease.acquire(cluster.zk, paths.round_leases("j", 0), paths.job_fences("j"), "s-00000", "C", absent=paths.round_done_shard("j", 0, "s-00000")) is None
    with pytest.raises(FencedError):
        b.commit(0, [a_lease], {"worker": "A", "contrib": "again"})  # its lease is released: a second commit is fenced


def test_expired_holder_cannot_commit_after_release_and_reacquire(config, zk_server):
    """The ABA case: A's session expires, B re-creates the same lease node (version 0 again); A's
    commit must still fail, which a version check of the lease node alone would let through."""
    a = testing.Cluster.connect(config)
    bcl = testing.Cluster.connect(config)
    try:
        ba = _job(a)
        bb = rounds.RoundBarrier(bcl.zk, "j", UNITS)
        la, _ = ba.lease_next(0, "A", prefer=["s-00002"])
        assert la.unit == "s-00002"
        testing.expire_session(a.zk, zk_server.address)
        lb, _ = bb.lease_next(0, "B", prefer=["s-00002"])
        assert lb.unit == "s-00002"
        assert bcl.zk.exists(paths.round_lease("j", 0, "s-00002")).version == 0  # same path, same version as A's
        with pytest.raises(FencedError, match="s-00002"):
            ba.commit(0, [la], {"worker": "A"})
        assert bb.state(0).done == {}
        bb.commit(0, [lb], {"worker": "B"})
        assert bb.state(0).done["s-00002"]["worker"] == "B"
    finally:
        a.close()
        bcl.close()


def test_wait_returns_at_once_for_a_change_made_after_the_callers_read_and_before_its_watch(cluster, config):
    """A worker reads the round (nothing free, not complete) and decides to wait; another worker's
    commit completes the round in between. wait() sets its watches after that commit, so no watch
    fires for it: it used to sleep until some other change or its timeout."""
    b = _job(cluster)
    other = testing.Cluster.connect(config)
    try:
        ob = rounds.RoundBarrier(other.zk, "j", UNITS)
        held = [ob.lease_next(0, "B")[0] for _ in UNITS]
        st = b.state(0, docs=False)
        assert not st.complete and not st.free
        ob.commit(0, held, {"worker": "B", "contrib": "c", "words": 3, "units": UNITS}, separate=True)
        assert b.wait(0, 5.0)  # False would be its timeout
        assert b.state(0, docs=False).complete
        assert not b.wait(0, 0.5)  # nothing changed since this read: it waits, to its timeout
        b.job_doc()
        assert not b.wait(0, 0.5)
    finally:
        other.close()


def test_stuck_lease_is_revoked_after_timeout_on_injected_clock(config):
    holder_cluster = testing.Cluster.connect(config)
    waiter_cluster = testing.Cluster.connect(config)
    now = [1000.0]
    try:
        _job(holder_cluster)
        stuck = rounds.RoundBarrier(holder_cluster.zk, "j", UNITS)
        waiter = rounds.RoundBarrier(waiter_cluster.zk, "j", UNITS, lease_timeout=30.0, clock=lambda: now[0])
        held, _ = stuck.lease_next(0, "stuck")
        assert waiter.revoke_stale(0) == []  # first sight starts the timer
        now[0] += 29.0
        assert waiter.revoke_stale(0) == []
        now[0] += 2.0
        assert waiter.revoke_stale(0) == [held.unit]
        again, _ = waiter.lease_next(0, "waiter", prefer=[held.unit])
        assert again.unit == held.unit
        with pytest.raises(FencedError):
            stuck.commit(0, [held], {"worker": "stuck"})
    finally:
        holder_cluster.close()
        waiter_cluster.close()


def test_publish_advances_the_round_exactly_once(cluster):
    b = _job(cluster)
    for unit in UNITS:
        l, _ = b.lease_next(0, "A")
        b.commit(0, [l], {"worker": "A", "contrib": "c"})
    assert b.state(0).complete
    assert b.try_merge(0, "A") and not b.try_merge(0, "B")
    doc, version = b.job_doc()
    assert b.publish(0, version, dict(doc, round=1), {"state": "merged"}, {"round": 1, "params": "p1"})
    # a second merger that read the same job version loses, and nothing changes
    assert not b.publish(0, version, dict(doc, round=1, words=99), {"state": "merged-twice"}, {"round": 1, "params": "px"})
    doc2, _ = b.job_doc()
    assert doc2["round"] == 1 and doc2["words"] == 0
    assert b.round_doc(0) == {"state": "merged"} and b.round_doc(1)["params"] == "p1"
    b.prune(0)
    assert not cluster.zk.exists(paths.round_done("j", 0)) and cluster.zk.exists(paths.round_leases("j", 1))
    assert b.wait(1, 0.05) is False  # nothing happens in round 1: the wait times out


def test_a_publish_without_the_merge_node_never_publishes_over_its_holder(cluster, config):
    """Right after the last merge part a worker publishes without taking the round's merge node
    first (a round trip less): the transaction checks that nobody holds it, so a worker that does
    (publishing, or about to) is never published over, and the node is not taken by it."""
    b = _job(cluster)
    for unit in UNITS:
        l, _ = b.lease_next(0, "A")
        b.commit(0, [l], {"worker": "A", "contrib": "c"})
    doc, version = b.job_doc()
    other = testing.Cluster.connect(config)
    try:
        assert rounds.RoundBarrier(other.zk, "j", UNITS).try_merge(0, "B")
        assert b.publish(0, version, dict(doc, round=1), {"state": "merged"}, {"round": 1, "params": "p1"}, unclaimed=True) is None
        assert b.job_doc()[0]["round"] == 0 and b.round_doc(1) is None
    finally:
        other.close()  # B's session ends: its merge node goes with it
    got = b.publish(0, version, dict(doc, round=1), {"state": "merged"}, {"round": 1, "params": "p1"}, unclaimed=True)
    assert got == b.job_doc()[1] and b.job_doc()[0]["round"] == 1 and b.round_doc(1)["params"] == "p1"
    assert cluster.zk.exists(paths.round_merge("j", 0)) is None


def test_a_merge_part_commit_returns_the_parts_merged_as_it_lands(cluster):
    """The commit of a merge part reads every part's document in its own round trip: the worker whose
    part lands last sees all of them and publishes without another read."""
    b = _job(cluster)
    for unit in UNITS:
        l, _ = b.lease_next(0, "A")
        b.commit(0, [l], {"worker": "A", "contrib": "c"})
    p0, p1 = b.lease_merge_part(0, "A", 2), b.lease_merge_part(0, "B", 2)
    assert {p0.unit, p1.unit} == {"p0000", "p0001"}
    assert b.commit_merge_part(0, p0, {"worker": "A", "path": "x0"}, 2) == {p0.unit: {"worker": "A", "path": "x0"}}
    assert b.commit_merge_part(0, p1, {"worker": "B", "path": "x1"}, 2) == {p0.unit: {"worker": "A", "path": "x0"}, p1.unit: {"worker": "B", "path": "x1"}}
    assert b.merge_state(0, 2) == ({p0.unit: {"worker": "A", "path": "x0"}, p1.unit: {"worker": "B", "path": "x1"}}, [])


def test_a_commit_writes_one_contribution_node_and_small_done_markers(cluster):
    """The merge reads one node per commit (``contribs/<name>``), not one per unit; a fenced commit
    leaves none; publishing gives the next round the folder and pruning removes it."""
    b = _job(cluster)
    assert b.round_doc(0)["contribs"] is True and cluster.zk.exists(paths.round_contribs("j", 0))
    l1, _ = b.lease_next(0, "A")
    l2, _ = b.lease_next(0, "A")
    doc = {"worker": "A", "contrib": "c1", "words": 7, "units": [l1.unit, l2.unit]}
    b.commit(0, [l1, l2], doc, separate=True)
    assert b.contributions(0) == {"c1": doc}
    assert b.state(0).done == {u: {"worker": "A", "contrib": "c1"} for u in (l1.unit, l2.unit)}
    l3, _ = b.lease_next(0, "B")
    stat = cluster.zk.exists(l3.path)
    assert lease.revoke(cluster.zk, paths.round_leases("j", 0), paths.job_fences("j"), l3.unit, stat.czxid)
    with pytest.raises(FencedError):
        b.commit(0, [l3], {"worker": "B", "contrib": "c2", "units": [l3.unit]}, separate=True)
    assert set(b.contributions(0)) == {"c1"} and l3.unit not in b.state(0).done
    l3, _ = b.lease_next(0, "B")
    b.commit(0, [l3], {"worker": "B", "contrib": "c3", "units": [l3.unit]}, separate=True)
    assert b.state(0).complete and set(b.contributions(0)) == {"c1", "c3"}
    doc0, version = b.job_doc()
    assert b.publish(0, version, dict(doc0, round=1), {"state": "merged"}, {"round": 1, "params": "p1"})
    assert b.round_doc(1)["contribs"] is True and b.contributions(1) == {}
    b.prune(0)
    assert not cluster.zk.exists(paths.round_contribs("j", 0))


def test_gc_keeps_the_files_a_commit_names_and_deletes_an_uncommitted_delta(cluster):
    from nlpzk import gc

    b = _job(cluster)
    committed, orphan = naming.contribution_file("j", 0, "c1"), naming.contribution_file("j", 0, "c2")
    for rel in (committed, orphan):
        M.save_array(cluster.store, rel, np.zeros((2, 3, 4), np.float32))
    l1, _ = b.lease_next(0, "A")
    b.commit(0, [l1], {"worker": "A", "contrib": "c1", "words": 1, "units": [l1.unit], "delta": committed}, separate=True)
    gc.collect(cluster, older_than=0)
    assert cluster.store.exists(committed) and not cluster.store.exists(orphan)


def _contrib(cluster, r, name, delta, counts, words):
    M.save_array(cluster.store, naming.contribution_file("j", r, name), delta.astype(np.float32))
    M.save_array(cluster.store, naming.contribution_counts("j", r, name), np.asarray(counts, np.int32))
    return M.Contribution(naming.contribution_file("j", r, name), naming.contribution_counts("j", r, name), words)


def test_compiled_adasum_equals_the_formula_on_random_rows():
    """The merge's compiled per-row Adasum is the paper's formula, row by row, on 100-float rows of
    very different sizes and directions, a zero row on either side included."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((500, 100)).astype(np.float32) * rng.uniform(1e-4, 10, (500, 1)).astype(np.float32)
    b = rng.standard_normal((500, 100)).astype(np.float32) * rng.uniform(1e-4, 10, (500, 1)).astype(np.float32)
    b[:50] = a[:50] * 3  # parallel
    a[60] = 0
    b[61] = 0
    got = M.adasum([a, b])
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    dot = (a64 * b64).sum(1)
    na, nb = (a64 * a64).sum(1), (b64 * b64).sum(1)
    ca = 1 - np.divide(dot, 2 * na, out=np.zeros_like(dot), where=na > 0)
    cb = 1 - np.divide(dot, 2 * nb, out=np.zeros_like(dot), where=nb > 0)
    want = ca[:, None] * a64 + cb[:, None] * b64
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert np.allclose(got[:50], (a64[:50] + b64[:50]) / 2, rtol=1e-4)  # parallel rows are averaged
    assert np.array_equal(got[60], b[60]) and np.array_equal(got[61], a[61])
    assert got.dtype == np.float32 and not np.shares_memory(got, a) and not np.shares_memory(got, b)


def test_merge_rules_on_known_deltas(cluster):
    g = np.zeros((2, 3, 2), np.float32)
    g[0, 0] = [1, 1]
    M.save_array(cluster.store, "g.npy", g)
    d1 = np.zeros((2, 3, 2), np.float32)
    d1[:, 0] = 1.0  # both saw word 0
    d1[:, 1] = 2.0  # only contribution 1 saw word 1
    d2 = np.zeros((2, 3, 2), np.float32)
    d2[:, 0] = 3.0
    d1[:, 2] = [1.0, 0.0]  # word 2: the two contributions moved it in orthogonal directions
    d2[:, 2] = [0.0, 1.0]
    c1 = _contrib(cluster, 0, "a", d1, [1, 4, 1], 100)
    c2 = _contrib(cluster, 0, "b", d2, [3, 0, 1], 100)
    out = {}
    for rule in M.RULES:
        M.merge(cluster.store, "g.npy", [c1, c2], rule, f"{rule}.npy", eta=0.5, block_rows=2)
        out[rule] = np.load(cluster.store.local_path(f"{rule}.npy"))
    assert np.allclose(out["mean"][0, 0], [3, 3]) and np.allclose(out["mean"][0, 1], [1, 1])
    assert np.allclose(out["sum"][0, 0], [5, 5]) and np.allclose(out["sum"][0, 1], [2, 2])
    # per word: word 0 = (1*1 + 3*3)/4 = 2.5, word 1 keeps contribution 1's full step
    assert np.allclose(out["wmean"][0, 0], [1 + 2.5, 1 + 2.5]) and np.allclose(out["wmean"][0, 1], [2, 2])
    # Adasum per row: parallel steps are averaged (word 0: (1 + 3) / 2), a step only one
    # contribution made is kept whole (word 1), orthogonal steps are summed (word 2)
    assert np.allclose(out["adasum"][0, 0], [1 + 2, 1 + 2]) and np.allclose(out["adasum"][0, 1], [2, 2])
    assert np.allclose(out["adasum"][:, 2], [1, 1])
    assert np.allclose(out["nbmuf-adasum"][0, 0], [1 + 0.5 * 2 + 2, 1 + 0.5 * 2 + 2])  # first round: step = G
    assert np.allclose(out["nbmuf-adasum"][2], out["adasum"][:2] - g)
    assert out["bmuf"].shape == (4, 3, 2) and np.allclose(out["bmuf"][2], out["mean"][:2] - g)
    # the second block-momentum round adds eta x the previous step
    M.save_array(cluster.store, "g1.npy", out["bmuf"])
    M.merge(cluster.store, "g1.npy", [c1, c2], "bmuf", "b2.npy", eta=0.5)
    b2 = np.load(cluster.store.local_path("b2.npy"))
    assert np.allclose(b2[0, 0], out["bmuf"][0, 0] + 0.5 * 2 + 2)
    # Nesterov: the step is stored the same, the parameters move by eta * step + G
    M.merge(cluster.store, "g1.npy", [c1, c2], "nbmuf", "n2.npy", eta=0.5)
    n2 = np.load(cluster.store.local_path("n2.npy"))
    assert np.allclose(n2[2], b2[2]) and np.allclose(n2[0, 0], out["bmuf"][0, 0] + 0.5 * (0.5 * 2 + 2) + 2)
    with pytest.raises(InvalidInputError):
        M.check_rule("median")


def test_the_merge_reads_mapped_files_on_a_local_store_and_streams_elsewhere_with_the_same_result(cluster, tmp_path):
    """On a local store the merge maps its inputs and reuses its block buffers across merges; on any
    other pyarrow filesystem it reads rows with read_at into fresh buffers. Both give the same
    bytes, for every rule, over several blocks, with a previous momentum step; the block momentum is
    numpy's float32 expression bit for bit (the compiled step keeps its roundings)."""
    from nlpzk.store import Store

    rng = np.random.default_rng(3)
    v, d = 37, 5
    g4 = rng.standard_normal((4, v, d)).astype(np.float32)
    deltas = [rng.standard_normal((2, v, d)).astype(np.float32) * s for s in (0.1, 0.01, 0.05)]
    counts = [rng.integers(0, 3, v) for _ in deltas]
    contribs = [_contrib(cluster, 0, f"c{i}", dl, n, 10 + i) for i, (dl, n) in enumerate(zip(deltas, counts))]
    M.save_array(cluster.store, "g4.npy", g4)
    streamed = Store(str(cluster.store.local_path("")))
    streamed.local = False  # the generic path: read_at and pyarrow output streams on the same files
    assert streamed.local_path("g4.npy") is None
    for rule in M.RULES:
        got = {}
        for label, store in (("mapped", cluster.store), ("again", cluster.store), ("streamed", streamed)):
            M.merge(store, "g4.npy", contribs, rule, f"{rule}-{label}.npy", rows=(3, 36), eta=0.7, block_rows=8)
            got[label] = np.load(cluster.store.local_path(f"{rule}-{label}.npy"))
        assert np.array_equal(got["mapped"], got["streamed"]) and np.array_equal(got["again"], got["mapped"]), rule
    a, b = (np.load(cluster.store.local_path(f"{r}-mapped.npy")) for r in ("adasum", "nbmuf-adasum"))
    g = a[:2] - g4[:2, 3:36]  # the combined delta of the rows, as adasum applied it
    eta = np.float32(0.7)
    step = np.multiply(g4[2:, 3:36], eta)
    step += g
    move = g + np.multiply(step, eta)
    assert np.allclose(b[2:], step, rtol=1e-5, atol=1e-5) and np.allclose(b[:2], g4[:2, 3:36] + move, rtol=1e-5, atol=1e-5)
    # bit for bit against numpy from the same combined delta (mean: computed here exactly as the merge does)
    share = np.array([10, 11, 12], np.float64)
    share = (share / share.sum()).astype(np.float32)
    for rule in ("bmuf", "nbmuf"):
        mean = np.zeros((2, 33, d), np.float32)
        for sh, dl in zip(share, deltas):
            mean += np.float32(sh) * dl[:, 3:36]
        step = np.multiply(g4[2:, 3:36], eta)
        step += mean
        move = mean + np.multiply(step, eta) if rule == "nbmuf" else step
        out = np.load(cluster.store.local_path(f"{rule}-mapped.npy"))
        assert np.array_equal(out[2:], step) and np.array_equal(out[:2], move + g4[:2, 3:36]), rule


def test_the_merges_kept_buffers_stay_under_their_limit_and_change_nothing(cluster, monkeypatch):
    """A merge keeps its block buffers for the next one up to _Scratch.LIMIT bytes; past it (a
    very large model's part) it allocates afresh, with the same result."""
    rng = np.random.default_rng(4)
    g4 = rng.standard_normal((4, 40, 6)).astype(np.float32)
    M.save_array(cluster.store, "g4.npy", g4)
    contribs = [_contrib(cluster, 0, f"k{i}", rng.standard_normal((2, 40, 6)) * 0.1, [1] * 40, 5) for i in range(2)]
    scratch = M._Scratch()
    monkeypatch.setattr(M, "_SCRATCH", scratch)
    M.merge(cluster.store, "g4.npy", contribs, "nbmuf-adasum", "big.npy", eta=0.5, block_rows=8)
    kept = sum(b.nbytes for b in scratch.buffers.values())
    assert kept == (1 + 2 * 5) * 8 * 6 * 4  # the block, and every momentum step of the 40 rows
    monkeypatch.setattr(scratch, "LIMIT", 3 * 8 * 6 * 4)
    scratch.buffers.clear()
    M.merge(cluster.store, "g4.npy", contribs, "nbmuf-adasum", "small.npy", eta=0.5, block_rows=8)
    assert 0 < sum(b.nbytes for b in scratch.buffers.values()) <= scratch.LIMIT
    assert np.array_equal(np.load(cluster.store.local_path("big.npy")), np.load(cluster.store.local_path("small.npy")))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_a_model_loads_from_and_takes_its_delta_against_parameter_parts(dtype):
    """A worker loads the round's parameters straight from their row-range parts (memory-mapped
    files) into the model and takes its delta against them, blockwise: the same bits as the delta
    of the whole arrays (rounded to bfloat16, or exact), over several blocks and uneven parts."""
    from gensim.models import Word2Vec

    from nlpzk.train import _model

    model = Word2Vec(vector_size=8, negative=5, min_count=1)
    model.build_vocab_from_freq({f"w{i}": 10 + i for i in range(2 * _model.DELTA_BLOCK + 123)})
    rng = np.random.default_rng(3)
    v = len(model.wv.index_to_key)
    glob = rng.standard_normal((4, v, 8)).astype(np.float32)  # with the momentum rows, as stored
    parts = [glob[:, :1000], glob[:, 1000:v - 7], glob[:, v - 7:]]
    _model.set_params(model, parts)
    assert np.array_equal(_model.get_params(model), glob[:2])
    model.wv.vectors += rng.standard_normal((v, 8)).astype(np.float32) * 1e-2  # "training"
    model.syn1neg -= rng.standard_normal((v, 8)).astype(np.float32) * 1e-3
    exact = _model.get_params(model) - glob[:2]
    got = _model.delta_to(model, parts, np.empty((2, v, 8), dtype))
    want = M.to_bfloat16(exact, np.empty(exact.shape, np.uint16)) if dtype == np.uint16 else exact
    assert got.dtype == dtype and np.array_equal(got, want)


def test_a_word_sum_changes_with_any_page_and_reads_the_npy_it_names(cluster):
    arr = np.random.default_rng(5).integers(0, 2**16, size=(2, 1001, 7), dtype=np.uint16)  # bytes not a multiple of 8
    M.save_array(cluster.store, "ws.npy", arr)
    got = M.data_sum(cluster.store, "ws.npy")
    assert got == M.word_sum(arr) and len(got) == 16
    flat = arr.reshape(-1).view(np.uint8)
    assert int(got, 16) == (sum(int.from_bytes(flat[i : i + 8].tobytes(), "little") for i in range(0, len(flat), 8))) % 2**64
    for at in (0, 4096, len(flat) - 1):  # a zeroed page, or the last partial word, changes it
        changed = flat.copy()
        changed[at : at + 4096] = 0 if at < len(flat) - 1 else changed[at : at + 4096] ^ 1
        assert M.word_sum(changed) != got


def test_bfloat16_deltas_round_to_nearest_even_and_widen_exactly():
    """A bfloat16 delta keeps float32's upper 16 bits, rounded to nearest with ties to even: within
    a relative 2**-8 of every normal value; zeros, infinities and NaN stay what they are."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(100_000) * 10.0 ** rng.uniform(-8, 2, 100_000)).astype(np.float32)
    bits = M.to_bfloat16(x, np.empty(x.shape, np.uint16))
    back = M.from_bfloat16(bits, np.empty(x.shape, np.float32))
    # the reference: the nearest bfloat16 by arithmetic on the float64 values, ties to the even pattern
    up = x.view(np.uint32) >> 16
    lo, hi = (up << 16).view(np.float32).astype(np.float64), ((up + 1) << 16).view(np.float32).astype(np.float64)
    dist_lo, dist_hi = np.abs(x - lo), np.abs(hi - x)
    want = np.where(dist_lo < dist_hi, up, np.where(dist_hi < dist_lo, up + 1, np.where(up % 2 == 0, up, up + 1)))
    assert np.array_equal(bits, want.astype(np.uint16))
    assert np.all(np.abs(back - x) <= np.abs(x) * 2.0**-8)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0 + 2**-8, 1.0 + 3 * 2**-8], np.float32)
    got = M.from_bfloat16(M.to_bfloat16(special, np.empty(7, np.uint16)), np.empty(7, np.float32))
    assert got[:4].tolist() == [0.0, -0.0, np.inf, -np.inf] and np.signbit(got[1]) and np.isnan(got[4])
    assert got[5] == 1.0 and got[6] == 1.0 + 2**-6  # two ties: to the even neighbour each time


def test_a_merge_of_bfloat16_deltas_is_the_merge_of_their_float32_values(cluster):
    """Every rule merges bfloat16 contributions (and a mix with float32 ones, as a job whose workers
    run different nlpzk versions may commit) exactly as it merges the same values in float32."""
    rng = np.random.default_rng(11)
    v, d = 29, 6
    g4 = rng.standard_normal((4, v, d)).astype(np.float32)
    M.save_array(cluster.store, "g4.npy", g4)
    deltas = [(rng.standard_normal((2, v, d)) * 0.05).astype(np.float32) for _ in range(3)]
    deltas[0][:, 4] = 0  # a row one contribution did not move
    half = [M.to_bfloat16(dl, np.empty(dl.shape, np.uint16)) for dl in deltas]
    wide = [M.from_bfloat16(h, np.empty(h.shape, np.float32)) for h in half]
    counts = [rng.integers(0, 3, v) for _ in deltas]

    def contribs(tag, arrays):
        out = []
        for i, (arr, n) in enumerate(zip(arrays, counts)):
            rel, crel = naming.contribution_file("j", 0, f"{tag}{i}"), naming.contribution_counts("j", 0, f"{tag}{i}")
            M.save_array(cluster.store, rel, arr)
            M.save_array(cluster.store, crel, np.asarray(n, np.int32))
            out.append(M.Contribution(rel, crel, 10 + i))
        return out

    sets = {"bf16": contribs("h", half), "f32": contribs("w", wide), "mixed": contribs("m", [half[0], wide[1], half[2]])}
    assert M.load_array(cluster.store, sets["bf16"][0].delta).dtype == np.uint16
    for rule in M.RULES:
        for k in (2, 3):
            got = {}
            for tag, cs in sets.items():
                M.merge(cluster.store, "g4.npy", cs[:k], rule, f"{rule}-{k}-{tag}.npy", eta=0.5, block_rows=7)
                got[tag] = np.load(cluster.store.local_path(f"{rule}-{k}-{tag}.npy"))
            assert np.array_equal(got["bf16"], got["f32"]) and np.array_equal(got["mixed"], got["f32"]), (rule, k)


def test_a_worker_a_round_behind_cannot_bump_the_fences_of_the_current_round(cluster):
    """Pruning a merged round deletes its nodes one by one; a worker still in that round must not
    lease a unit there (bumping the unit's fence) while the current round's holder relies on it."""
    b = _job(cluster)
    for unit in UNITS:
        l, _ = b.lease_next(0, "A")
        b.commit(0, [l], {"worker": "A", "contrib": "c"})
    doc, version = b.job_doc()
    assert b.publish(0, version, dict(doc, round=1), {"state": "merged"}, {"round": 1, "params": ["p1"]})
    held, _ = b.lease_next(1, "B", prefer=["s-00000"])
    cluster.zk.delete(paths.round_done_shard("j", 0, "s-00000"))  # half-way through pruning round 0
    fence_before = cluster.zk.exists(f"{paths.job_fences('j')}/s-00000").version
    stale = lease.acquire(
        cluster.zk, paths.round_leases("j", 0), paths.job_fences("j"), "s-00000", "stale",
        absent=paths.round_done_shard("j", 0, "s-00000"), guard=(paths.job_round("j", 0), 0),
    )
    assert stale is None
    assert cluster.zk.exists(f"{paths.job_fences('j')}/s-00000").version == fence_before
    b.commit(1, [held], {"worker": "B", "contrib": "c1"})  # the current holder is unaffected


def test_lease_many_takes_all_or_nothing_and_each_lease_is_fenced(cluster):
    b = _job(cluster)
    one, _ = b.lease_next(0, "A", prefer=["s-00001"])
    assert one.unit == "s-00001"
    # one of the wanted units is held: nothing is leased, not even the free ones
    assert b.lease_many(0, "B", ["s-00000", "s-00001"]) == []
    assert sorted(b.state(0).leased) == ["s-00001"]
    got = b.lease_many(0, "B", ["s-00000", "s-00002"])
    assert [l.unit for l in got] == ["s-00000", "s-00002"]
    st = b.state(0)
    assert {u: o for u, (o, _) in st.leased.items()} == {"s-00000": "B", "s-00001": "A", "s-00002": "B"}
    # each lease carries its own unit's fence version: a commit checks them all
    fences = {u: cluster.zk.exists(f"{paths.job_fences('j')}/{u}").version for u in UNITS}
    assert all(l.fence_version == fences[l.unit] for l in got)
    b.commit(0, got, {"worker": "B", "contrib": "cb"})
    assert sorted(b.state(0).done) == ["s-00000", "s-00002"]
    # a done unit cannot be leased again in the round, in a batch either
    assert b.lease_many(0, "C", ["s-00000"]) == []
    # a round that is not open (no round node yet) refuses a batch: the guard check fails
    assert b.lease_many(1, "A", ["s-00000"]) == []
    assert not cluster.zk.exists(paths.round_leases("j", 1) + "/s-00000")


@pytest.mark.parametrize("sg,threads", [(True, 1), (False, 1), (True, 2), (False, 3)])
def test_training_calls_gensims_kernel_like_word2vec_train(sg, threads):
    """Calling gensim's Cython kernel directly, from one thread or several sharing the model, trains
    what ``Word2Vec.train`` trains: same raw words, about the same effective words and loss (each
    thread tallies its own: none is lost), parameters moved."""
    from collections import Counter

    from _train_helpers import lee_sentences

    from nlpzk.train import _model
    from nlpzk.train.job import HYPER

    sents = lee_sentences()
    counts = Counter(w for s in sents for w in s)
    tokens = [w for w, n in counts.most_common() if n >= 2]
    vocab = _model.VocabData("lee", 1, tokens, np.array([counts[t] for t in tokens]))
    spec = dict(HYPER, dim=32, sg=sg)
    start = _model.initial_params(spec, vocab)
    words = sum(map(len, sents))
    out = {}
    for path in ("kernel", "train"):
        model = _model.build_model(spec, vocab, threads=threads if path == "kernel" else 1)
        _model.set_params(model, start)
        if path == "kernel":
            eff, raw, loss = _model.train_slice(model, sents, words, 0.025, 0.02)
        else:  # gensim's own loop, one worker thread (with two, gensim's loss tally loses updates)
            eff, raw = model.train(sents, total_words=words, epochs=1, start_alpha=0.025, end_alpha=0.02, compute_loss=True)
            loss = model.get_latest_training_loss()
        out[path] = (eff, raw, loss, _model.get_params(model))
    (e1, r1, l1, p1), (e2, r2, l2, p2) = out["kernel"], out["train"]
    assert r1 == r2 == words
    assert 0 < e1 <= r1 and abs(e1 - e2) / e2 < 0.05
    assert l1 > 0 and abs(l1 - l2) / l2 < 0.1
    assert np.abs(p1 - start).mean() > 0.5 * np.abs(p2 - start).mean() > 0


def _pool_trains_like_one_call(spec, vocab, parts, submit, one_call, words):
    """A two-thread KernelPool given ``parts`` one after another (``submit(pool, part)``, waiting
    as a worker does before the next) trains what ``one_call(model)`` trains from the same start:
    the same words, about the same effective words and loss, the parameters moved as far."""
    from nlpzk.train import _model

    start = _model.initial_params(spec, vocab)
    results = {}
    for path in ("pool", "one call"):
        model = _model.build_model(spec, vocab, threads=2)
        _model.set_params(model, start)
        if path == "pool":
            with _model.KernelPool(model, 2) as pool:
                for part in parts:
                    submit(pool, part)
                    pool.wait_below(3)
                results[path] = pool.finish() + (_model.get_params(model),)
        else:
            results[path] = one_call(model) + (_model.get_params(model),)
    (e1, r1, l1, p1), (e2, r2, l2, p2) = results["pool"], results["one call"]
    assert r1 == r2 == words and abs(e1 - e2) / e2 < 0.05 and abs(l1 - l2) / l2 < 0.1
    assert np.abs(p1 - start).mean() > 0.5 * np.abs(p2 - start).mean() > 0


def test_a_kernel_pool_trains_batch_after_batch_and_stops_on_a_failing_thread():
    """A round's pool takes batch after batch (the worker leases the next while it trains) and
    trains what one call on all of them trains; a thread's error comes back to the caller, and the
    threads stop instead of hanging."""
    import threading

    from _train_helpers import lee_sentences

    from nlpzk.train import _model
    from nlpzk.train.job import HYPER

    sents = lee_sentences()
    tokens = sorted({w for s in sents for w in s})
    vocab = _model.VocabData("lee", 1, tokens, np.ones(len(tokens)))
    spec = dict(HYPER, dim=16)
    half = len(sents) // 2
    _pool_trains_like_one_call(
        spec, vocab, (sents[:half], sents[half:]), lambda pool, part: pool.submit(part, sum(map(len, part)), 0.025, 0.02),
        lambda model: _model.train_slice(model, sents, sum(map(len, sents)), 0.025, 0.02), sum(map(len, sents)),
    )
    before = threading.active_count()
    model = _model.build_model(spec, vocab, threads=2)
    pool = _model.KernelPool(model, 2)
    # the bad sentence is in the first of many jobs: the error comes long before the queue drains
    pool.submit(sents[:50] + [["the", ["not", "a", "token"]]] + sents * 6, 10**6, 0.025, 0.02)
    with pytest.raises(TypeError):
        pool.wait_below(1)  # the worker stops leasing more at the error
    with pytest.raises(TypeError):
        pool.finish()
    assert threading.active_count() == before


def _lee_ids():
    """Lee's sentences as a vocabulary (min count 2) and its ids: (vocab, sentences, flat, offsets)."""
    from collections import Counter

    from _train_helpers import lee_sentences

    from nlpzk.train import _model

    sents = lee_sentences()
    counts = Counter(w for s in sents for w in s)
    tokens = [w for w, n in counts.most_common() if n >= 2]
    vocab = _model.VocabData("lee", 1, tokens, np.array([counts[t] for t in tokens]))
    index = {t: i for i, t in enumerate(tokens)}
    kept = [[t for t in s if t in index] for s in sents]
    flat = np.array([index[t] for s in kept for t in s], np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in kept])]).astype(np.int64)
    return vocab, kept, flat, offsets


def test_the_batched_kernel_trains_what_gensims_kernel_trains():
    """nlpzk's skip-gram kernel (negatives shared by a window) keeps as many words as gensim's
    downsampling does, reports a loss of the same size (it scores each window against its shared
    negatives once: ~ as many terms), moves the parameters as far, and learns the same thing: the
    two models' nearest neighbours of the corpus's frequent words overlap. Seeded, it is
    deterministic; another seed trains other vectors."""
    from nlpzk.train import _model
    from nlpzk.train.job import HYPER

    vocab, kept, flat, offsets = _lee_ids()
    spec = dict(HYPER, dim=32)
    start = _model.initial_params(spec, vocab)
    words = len(flat)
    out = {}
    for path in ("batched", "batched again", "gensim", "batched seed 2"):
        model = _model.build_model(spec, vocab, seed=2 if path.endswith("seed 2") else 1)
        _model.set_params(model, start)
        for epoch in range(10):  # enough for neighbours to mean something on 60k words
            a0, a1 = 0.025 - 0.0024 * epoch, 0.025 - 0.0024 * (epoch + 1)
            if path == "gensim":
                eff, raw, loss = _model.train_slice(model, kept, words, a0, a1)
            else:
                eff, raw, loss = _model.train_ids(model, flat, offsets, words, a0, a1)
        out[path] = (eff, raw, loss, _model.get_params(model), model)
    (e1, r1, l1, p1, m1), (e2, r2, l2, p2, m2) = out["batched"], out["gensim"]
    assert r1 == r2 == words
    assert 0 < e1 < r1 and abs(e1 - e2) / e2 < 0.05
    assert l1 > 0 and 0.7 < l1 / l2 < 1.3
    assert 0.7 < np.abs(p1 - start).mean() / np.abs(p2 - start).mean() < 1.3
    np.testing.assert_array_equal(p1, out["batched again"][3])
    assert not np.array_equal(p1, out["batched seed 2"][3])
    overlap = []
    for word in vocab.tokens[20:60]:  # frequent, but past the stop words
        a = {w for w, _ in m1.wv.most_similar(word, topn=10)}
        b = {w for w, _ in m2.wv.most_similar(word, topn=10)}
        overlap.append(len(a & b) / 10)
    # measured: 0.53 here, two gensim-kernel runs with other seeds 0.56, random vectors 0.005
    assert np.mean(overlap) > 0.4, np.mean(overlap)


def test_a_pool_trains_ids_batch_after_batch_with_the_batched_kernel():
    """``submit_ids``: a round's pool of two threads trains the batched kernel's jobs (runs of
    about 10,000 words, each with its stretch of the learning rate) like one call on all of them;
    every word is passed exactly once."""
    from nlpzk.train import _model
    from nlpzk.train.job import HYPER

    vocab, kept, flat, offsets = _lee_ids()
    spec = dict(HYPER, dim=16)
    jobs = list(_model._id_jobs(flat, offsets, len(flat), 0.025, 0.02))
    assert len(jobs) > 2 and sum(j[2] for j in jobs) == len(flat)
    assert [j[1][0] for j in jobs[1:]] == [j[1][-1] for j in jobs[:-1]]  # end to end, no sentence twice
    assert jobs[0][3] == 0.025 and abs(jobs[-1][4] - 0.02) < 1e-12 and all(a[4] == b[3] for a, b in zip(jobs, jobs[1:]))
    half = len(offsets) // 2
    _pool_trains_like_one_call(
        spec, vocab, (offsets[: half + 1], offsets[half:]), lambda pool, part: pool.submit_ids(flat, part, int(part[-1] - part[0]), 0.025, 0.02),
        lambda model: _model.train_ids(model, flat, offsets, len(flat), 0.025, 0.02), len(flat),
    )


def test_the_batched_kernel_refuses_what_it_cannot_train():
    from nlpzk.errors import InvalidInputError, TrainingError
    from nlpzk.train import _model
    from nlpzk.train.job import HYPER, check_hyper

    vocab, _kept, flat, offsets = _lee_ids()
    model = _model.build_model(dict(HYPER, dim=8, sg=False), vocab)
    with pytest.raises(TrainingError, match="skip-gram with negative sampling only"):
        _model.train_ids(model, flat, offsets, len(flat), 0.025, 0.02)
    assert check_hyper({})["kernel"] == "batched" and check_hyper({"sg": False})["kernel"] == "gensim"
    with pytest.raises(InvalidInputError, match="CBOW needs --kernel gensim"):
        check_hyper({"sg": False, "kernel": "batched"})
    assert _model.kernel_of({"sg": True}) == "gensim"  # a job created before the choice


@pytest.mark.parametrize("sample", [1e-3, 0.0, 5.0])
def test_vocabulary_tables_are_gensims_bit_for_bit(sample, monkeypatch):
    """build_model fills gensim's tables itself (vectorised); they equal build_vocab_from_freq's."""
    from collections import Counter

    from _train_helpers import lee_sentences

    from nlpzk.train import _model
    from nlpzk.train.job import HYPER

    counts = Counter(w for s in lee_sentences() for w in s)
    tokens = [w for w, n in counts.most_common() if n >= 2] + ["<unk>"]  # a special: count 0, raised to 1
    vocab = _model.VocabData("lee", 1, tokens, np.array([counts.get(t, 0) for t in tokens]))
    spec = dict(HYPER, dim=16, sample=sample)
    monkeypatch.setattr(_model, "_FAST_TABLES", False)
    want = _model.build_model(spec, vocab, seed=5)
    monkeypatch.setattr(_model, "_FAST_TABLES", True)
    got = _model.build_model(spec, vocab, seed=5)
    assert got.wv.index_to_key == want.wv.index_to_key and got.wv.key_to_index == want.wv.key_to_index
    for attr in ("count", "sample_int"):
        assert got.wv.expandos[attr].dtype == want.wv.expandos[attr].dtype
        assert np.array_equal(got.wv.expandos[attr], want.wv.expandos[attr]), attr
    assert (want.wv.expandos["sample_int"] < 2**32 - 1).any() == (sample > 0)  # downsampling happened (or not)
    assert got.cum_table.dtype == want.cum_table.dtype and np.array_equal(got.cum_table, want.cum_table)
    assert np.array_equal(got.wv.vectors, want.wv.vectors) and np.array_equal(got.syn1neg, want.syn1neg)
    assert (got.min_count, got.sample, got.corpus_count, got.effective_min_count) == (want.min_count, want.sample, want.corpus_count, want.effective_min_count)


def test_the_batched_kernel_is_compiled_once_then_loaded_from_numbas_disk_cache():
    """A worker process must not spend its start-up compiling the kernel (~1.3 s here): the second
    process finds it in numba's disk cache. (A default array argument once keyed the cache on the
    array's identity, so every process compiled again and added a cache entry of 0.8 MB.)"""
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from test_train_protocol import _lee_ids\n"
        "from nlpzk.train import _kernel, _model\n"
        "from nlpzk.train.job import HYPER\n"
        "v, _k, f, o = _lee_ids(); m = _model.build_model(dict(HYPER, dim=8), v)\n"
        "_model.train_ids(m, f[:100], o[:3], 100, 0.025, 0.02)\n"
        "print(sum(_kernel.train_sg.stats.cache_hits.values()), sum(_kernel.train_sg.stats.cache_misses.values()))\n"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    runs = [subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-2000:] for r in runs]
    hits, misses = (int(x) for x in runs[1].stdout.split())
    assert (hits, misses) == (1, 0), runs[1].stdout


def test_without_numba_the_kernel_and_the_merge_say_what_is_missing():
    """numba not importable (not installed, or built for another numpy): the batched kernel and the
    merge's Adasum each say so in one line naming it and the way out, not an ImportError from deep
    inside a worker."""
    code = (
        "import sys; sys.modules['numba'] = None; sys.path.insert(0, 'tests')\n"
        "from test_train_protocol import _lee_ids\n"
        "from nlpzk.errors import TrainingError\n"
        "from nlpzk.train import _model\n"
        "from nlpzk.train.job import HYPER\n"
        "from nlpzk.train import merge as M\n"
        "import numpy as np\n"
        "v, _k, f, o = _lee_ids(); m = _model.build_model(dict(HYPER, dim=8), v)\n"
        "for call in (lambda: _model.train_ids(m, f[:100], o[:3], 100, 0.025, 0.02), lambda: M.adasum([np.ones((2, 3), np.float32)] * 2)):\n"
        "    try:\n"
        "        call()\n"
        "    except TrainingError as exc:\n"
        "        print(exc.line())\n"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and all(l.startswith("nlpzk's compiled kernels need numba, which does not import here") and "pip install -U numba" in l for l in lines), res.stdout
