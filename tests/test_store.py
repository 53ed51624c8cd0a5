"""The store's atomic writes on a local disk."""

from __future__ import annotations

import hashlib

import numpy as np

from nlpzk import store as store_mod
from nlpzk.store import Store


def test_a_big_local_write_is_handed_to_writeback_as_it_goes_and_lands_whole(tmp_path):
    """Every WRITE_BEHIND bytes of a local file go to the kernel's writeback while it is written
    (so the closing fsync waits for the tail only); what lands is every byte, in order, with the
    checksum of what was written, however the writes were cut."""
    st = Store(str(tmp_path))
    rng = np.random.default_rng(2)
    pieces = [rng.integers(0, 256, n, dtype=np.uint8) for n in (3, store_mod.WRITE_BEHIND * 2 + 5, 1000, store_mod.WRITE_BEHIND - 1, 7)]
    block = rng.standard_normal((300, 100)).astype(np.float32)  # a 2-d float block, as the merge writes
    with st.atomic_output("a/b.bin") as out:
        for p in pieces:
            out.write(p)
        out.write(block)
    want = b"".join(p.tobytes() for p in pieces) + block.tobytes()
    assert (tmp_path / "a" / "b.bin").read_bytes() == want
    assert out.bytes == len(want) and out.sha256 == hashlib.sha256(want).hexdigest()
    assert store_mod._SYNC_FILE_RANGE is not None  # Linux: the machines nlpzk runs on have it
    assert len(want) - store_mod.WRITE_BEHIND < out.handed <= len(want)
    with st.atomic_output("small.bin") as small:
        small.write(b"x" * 100)
    assert small.handed == 0 and (tmp_path / "small.bin").read_bytes() == b"x" * 100


def test_a_write_over_a_spare_reuses_its_file_in_place_and_cuts_it_to_size(tmp_path):
    """``atomic_output(reuse=)`` claims the first spare it can (renamed away: another writer cannot
    get it too), writes over it in place (the same inode: its page-cache pages) and cuts it to
    what was written; with no spare left it writes a new file."""
    import os

    store = Store(str(tmp_path))
    for name, size in (("big", 5000), ("small", 100)):
        store.write_bytes(f"spare/{name}", bytes([7]) * size)
    inode = {n: os.stat(store.full(f"spare/{n}")).st_ino for n in ("big", "small")}
    with store.atomic_output("a/one", reuse=["spare/gone", "spare/big"]) as out:
        out.write(b"x" * 1234)
    assert store.read_bytes("a/one") == b"x" * 1234
    assert os.stat(store.full("a/one")).st_ino == inode["big"] and not store.exists("spare/big")
    with store.atomic_output("a/two", reuse=["spare/small"]) as out:  # a spare shorter than the data
        out.write(b"y" * 300)
    assert store.read_bytes("a/two") == b"y" * 300 and os.stat(store.full("a/two")).st_ino == inode["small"]
    with store.atomic_output("a/three", reuse=["spare/big", "spare/small"]) as out:  # both taken
        out.write(b"z")
    assert store.read_bytes("a/three") == b"z" and os.stat(store.full("a/three")).st_ino not in inode.values()
    assert store.list("a") == ["a/one", "a/three", "a/two"] and store.list("spare") == []
