"""Damaged state in the registry and the store: every command that reads it answers with one
``error:`` line and the exit code of an integrity problem (7), never a traceback, and registers
nothing. (Missing and checksum-failing files are pinned in test_vocab_cli.py, test_models.py and
test_ingest_pipeline.py; this file covers what those do not: undecodable znodes, a directory where a
file should be, corrupt files of a training job.)"""

from __future__ import annotations

import json
import os

import pytest

from _helpers import one_line_error, small_world
from nlpzk import errors
from nlpzk.zk import paths

pytestmark = pytest.mark.timeout(120)

INTEGRITY = errors.IntegrityError.exit_code


@pytest.fixture
def world(cluster):
    return small_world(cluster)


def _as_directory(cluster, rel):
    full = cluster.store.local_path(rel)
    os.remove(full)
    os.mkdir(full)


def _fails_cleanly(result, needle):
    assert result.exit_code == INTEGRITY, (result.exit_code, result.output)
    line = one_line_error(result.stderr)
    assert needle in line, line
    return line


@pytest.mark.parametrize("node", ["corpus", "shard", "vocab-version", "model-version"])
def test_a_znode_that_holds_no_json_document_is_one_error_line(world, cli, node):
    zk = world.zk
    path = {
        "corpus": paths.corpus("c"),
        "shard": paths.shard("c", "s000"),
        "vocab-version": paths.vocab_version("v", 1),
        "model-version": paths.model_version("m", 1),
    }[node]
    zk.set(path, b'{"path": "cut o')
    commands = {
        # (corpus list and nlpzk status: a row, see below)
        "corpus": [("corpus", "show", "c"), ("vocab", "build", "v2", "--corpus", "c")],
        "shard": [("corpus", "verify", "c"), ("vocab", "build", "v2", "--corpus", "c")],
        # (vocab list v and vocab verify v: a row, see _version_listed_as_damaged)
        "vocab-version": [("vocab", "show", "v"), ("vocab", "lookup", "v", "the")],
        "model-version": [("model", "show", "m"), ("model", "similar", "m", "cat")],
    }[node]
    for argv in commands:
        _fails_cleanly(cli(*argv), f"{path} does not hold a valid JSON document")
    if node == "vocab-version":
        _version_listed_as_damaged(cli, f"{path} does not hold a valid JSON document")
    assert zk.exists(paths.vocab_version("v2", 1)) is None  # nothing was registered


def _version_listed_as_damaged(cli, needle):
    """`vocab list v` shows the damaged version as a row (exit 0) with what is wrong; `vocab verify
    v` reports it broken (exit 7) with the same line in its table."""
    listed = cli("vocab", "list", "v")
    assert listed.exit_code == 0 and "v1 (damaged)" in listed.stdout and needle in " ".join(listed.stdout.split()), listed.output
    checked = cli("vocab", "verify", "v")
    assert checked.exit_code == INTEGRITY and needle in " ".join(checked.stdout.split()), checked.output
    assert "1 of 1 versions of 'v' are broken: v1" in one_line_error(checked.stderr)


@pytest.mark.parametrize("key", ["path", "sha256", "tokens"])
def test_a_shard_document_without_a_key_is_one_error_line(world, cli, key):
    import json

    zk = world.zk
    doc = json.loads(zk.get(paths.shard("c", "s000"))[0])
    del doc[key]
    zk.set(paths.shard("c", "s000"), json.dumps(doc).encode())
    for argv in [("corpus", "show", "c"), ("corpus", "verify", "c"), ("vocab", "build", "v2", "--corpus", "c"),
                 ("train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait")]:
        _fails_cleanly(cli(*argv), f"the registry document of shard s000 lacks '{key}'")
    assert zk.exists(paths.vocab_version("v2", 1)) is None and zk.exists(paths.job("j")) is None  # nothing was registered


def test_a_directory_where_a_vocabulary_or_model_file_should_be(world, cli):
    from nlpzk.zk import registry

    vrel = registry.maybe_json(world.zk, paths.vocab_version("v", 1))["path"]
    mrel = registry.maybe_json(world.zk, paths.model_version("m", 1))["path"]
    _as_directory(world, vrel)
    _as_directory(world, mrel)
    for argv in [("vocab", "show", "v"), ("vocab", "lookup", "v", "the"), ("vocab", "export", "v", "--format", "txt")]:
        _fails_cleanly(cli(*argv), f"its file {vrel} cannot be read")
    _fails_cleanly(cli("vocab", "verify", "v"), "versions of 'v' are broken: v1")
    for argv in [("model", "similar", "m", "cat"), ("model", "export", "m", "--out", "-")]:
        _fails_cleanly(cli(*argv), f"model file {mrel} cannot be read")


#: What a job node may hold when it was changed outside nlpzk: cut JSON, keys missing, a spec that is
#: no object (train list, train status and nlpzk status ended in a traceback at spec.get).
DAMAGED_JOB_NODES = [b'{"spec": cut', b'{"state": "done"}', b'{"spec": "x", "state": "running", "round": 0, "words": 0}']


def _job(world, name="j"):
    from nlpzk import train

    doc, _ = train.create_job(world, name, "c", "v@v1", epochs=1, syncs_per_epoch=1, dim=4)
    return doc


def _flip_a_byte_that_still_parses(path):
    """Change the first bytes spelling a token (wherever they are, e.g. column statistics) so the file still reads."""
    import pyarrow.parquet as pq

    data = bytearray(open(path, "rb").read())
    at = data.find(b"cat")
    data[at : at + 3] = b"cow"
    open(path, "wb").write(bytes(data))
    pq.read_table(path)  # still a readable shard: only the checksum tells


@pytest.mark.parametrize("damage", ["shard-flipped", "shard-list", "params-truncated", "params-shape"])
def test_a_worker_refuses_damaged_job_files_with_one_line(world, cli, damage):
    import numpy as np

    doc = _job(world)
    store = world.store
    if damage == "shard-flipped":
        from nlpzk.corpus import Corpus

        info = Corpus.open("c", cluster=world).shard("s000")
        _flip_a_byte_that_still_parses(store.local_path(info.path))
        needle = f"shard s000 ({info.path}) fails its checksum"
    elif damage == "shard-list":
        rel = doc["spec"]["shards"]["path"]
        open(store.local_path(rel), "w").write('{"x": 1}')
        needle = f"shard list {rel} fails its checksum"
    else:
        from nlpzk.zk import registry

        rel = registry.maybe_json(world.zk, paths.job_round("j", 0))["params"][0]
        full = store.local_path(rel)
        if damage == "params-truncated":
            data = open(full, "rb").read()
            open(full, "wb").write(data[: len(data) // 2])
            needle = f"store file {rel} is not a readable parameter array"
        else:
            np.save(full, np.zeros((3, 3), np.float32))
            needle = f"store file {rel} holds a float32 array of shape (3, 3)"
    res = cli.run_process("train", "worker", "j", timeout=120)
    assert res.returncode == INTEGRITY, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip() and not l.startswith("joined:")]
    assert "Traceback" not in res.stderr and len(lines) == 1 and needle in lines[0], res.stderr
    from nlpzk.zk import registry

    assert registry.children(world.zk, paths.round_done("j", 0)) == []  # nothing trained on it was committed


def _npy(header: str, *, version: tuple[int, int] = (1, 0), length: int | None = None) -> bytes:
    """An .npy file with ``header`` as its header text (``length``: the header length field says so)."""
    import struct

    text = header.encode("latin1") + b"\n"
    field = struct.pack("<H" if version == (1, 0) else "<I", len(text) if length is None else length)
    return b"\x93NUMPY" + bytes(version) + field + text + bytes(2 * 3 * 4 * 4)


ODD_NPY = {
    "descr-structured": _npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3, 4), }"),
    "descr-subarray": _npy("{'descr': ('<f4', (2,)), 'fortran_order': False, 'shape': (2, 3, 4), }"),
    "descr-dict": _npy("{'descr': {'names': ['a'], 'formats': ['<f4']}, 'fortran_order': False, 'shape': (2, 3, 4), }"),
    "descr-int": _npy("{'descr': 5, 'fortran_order': False, 'shape': (2, 3, 4), }"),
    "descr-object": _npy("{'descr': '|O', 'fortran_order': False, 'shape': (2, 3, 4), }"),
    "descr-string": _npy("{'descr': '<U3', 'fortran_order': False, 'shape': (2, 3, 4), }"),
    "descr-empty-void": _npy("{'descr': '|V0', 'fortran_order': False, 'shape': (2, 3, 4), }"),
    "fortran-order": _npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }"),
    "shape-negative": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3, 4), }"),
    "shape-strings": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': ('2', 3, 4), }"),
    "shape-bool": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (True, 3, 4), }"),
    "shape-2d": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6, 4), }"),
    "shape-0d": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }"),
    "header-cut-off": _npy("{'descr': '<f4', 'fortran_order': Fal"),
    "header-length-short": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", length=12),
    "header-length-huge": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", length=65535),
    "header-length-huge-v2": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", version=(2, 0), length=2**31),
    "header-not-a-dict": _npy("[2, 3, 4]"),
    "format-version-9": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", version=(9, 9)),
    "truncated-magic": b"\x93NUM",
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(ODD_NPY))
def test_an_npy_file_with_an_odd_header_is_an_integrity_error(tmp_path, case):
    """The merge reads contributions and parameter parts through NpyReader: an odd header raised
    TypeError, IndexError or tokenize.TokenError (a traceback; readable() let it through, so a
    worker checking the round's contributions crashed), ValueError or InvalidInputError (exit 5),
    or was opened and read as garbage (a structured or object dtype, a negative or 2-d shape)."""
    import numpy as np

    from nlpzk.store import Store
    from nlpzk.train import merge

    store = Store(str(tmp_path / "store"))
    store.write_bytes("odd.npy", ODD_NPY[case])
    with pytest.raises(errors.IntegrityError, match="store file odd.npy is not a readable parameter array"):
        merge.NpyReader(store, "odd.npy")
    assert merge.readable(store, "odd.npy", (2, 3, 4), np.float32) is False
    try:
        merge.load_array(store, "odd.npy")
    except errors.IntegrityError as exc:
        assert "store file odd.npy is not a readable parameter array" in exc.line()
    # (else numpy read it as some array: param_parts, which a worker loads with, checks its shape and dtype)


@pytest.mark.parametrize("damage", ["truncated", "other-schema"])
def test_ingest_refuses_a_damaged_document_hash_sidecar_with_one_line(cluster, cli, tmp_path, damage):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nlpzk.corpus import Corpus

    (tmp_path / "a.txt").write_text("The first document.\nThe second one.\n")
    (tmp_path / "b.txt").write_text("A third document.\n")
    assert cli("corpus", "ingest", "d", str(tmp_path / "a.txt")).exit_code == 0
    (key, done), = Corpus.open("d", cluster=cluster).inputs().items()
    full = cluster.store.local_path(done["hashes_path"])
    if damage == "truncated":
        data = open(full, "rb").read()
        open(full, "wb").write(data[: len(data) // 2])
    else:
        pq.write_table(pa.table({"x": [1, 2]}), full)
    res = cli("corpus", "ingest", "d", str(tmp_path / "b.txt"))
    line = _fails_cleanly(res, f"the document hashes of input {key} ({done['hashes_path']}) are unreadable")
    assert "nlpzk corpus verify d" in line
    assert list(Corpus.open("d", cluster=cluster).inputs()) == [key]  # b.txt was not registered


@pytest.mark.parametrize("value", [b"xyz", b"{}"])
def test_a_tag_that_holds_no_version_is_an_integrity_error_naming_it(world, cli, value):
    zk = world.zk
    tag = f"{paths.vocab('v')}/tags/latest"
    zk.set(tag, value)
    for argv in [("vocab", "show", "v"), ("vocab", "lookup", "v:latest", "cat"), ("vocab", "list", "v")]:  # (nlpzk status: a row)
        # the integrity code and the znode named: not "'xyz' is not a version", which reads as a typo of the user's
        _fails_cleanly(cli(*argv), f"{tag} should hold a version")


def test_a_model_version_without_its_sha256_is_not_loaded_unverified(world, cli):
    import json

    zk = world.zk
    node = paths.model_version("m", 1)
    doc = json.loads(zk.get(node)[0])
    del doc["sha256"]
    zk.set(node, json.dumps(doc).encode())
    for argv in [("model", "similar", "m", "cat"), ("model", "export", "m", "--out", "-")]:
        _fails_cleanly(cli(*argv), "has no sha256 in its version's document")


@pytest.mark.parametrize("node, key", [("vocab-version", "path"), ("vocab-version", "rows"), ("vocab-version", "params"),
                                       ("model-version", "path"), ("job", "spec")])
def test_a_document_without_a_key_it_must_have_is_one_error_line(world, cli, node, key):
    import json

    zk = world.zk
    if node == "job":
        assert cli("train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait").exit_code == 0
    path = {"vocab-version": paths.vocab_version("v", 1), "model-version": paths.model_version("m", 1), "job": paths.job("j")}[node]
    doc = json.loads(zk.get(path)[0])
    del doc[key]
    zk.set(path, json.dumps(doc).encode())
    commands = {
        "vocab-version": [("vocab", "show", "v"), ("vocab", "lookup", "v", "the"),
                          ("train", "run", "j2", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait")],
        "model-version": [("model", "show", "m"), ("model", "similar", "m", "cat"), ("model", "export", "m", "--out", "-")],
        "job": [("train", "status", "j"), ("train", "resume", "j", "--workers", "0")],
    }[node]
    for argv in commands:
        _fails_cleanly(cli(*argv), f"{path} lacks '{key}'")
    if node == "vocab-version":
        _version_listed_as_damaged(cli, f"{path} lacks '{key}'")
    assert zk.exists(paths.job("j2")) is None  # nothing was registered


@pytest.mark.parametrize("node, key", [("corpus", "options"), ("corpus", "created"), ("job", "state"), ("job", "round"), ("job", "words")])
def test_a_corpus_or_job_document_without_a_key_is_damage_not_defaults(world, cli, tmp_path, node, key):
    """A corpus without ``options`` was read as tokenized with the defaults (a vocab encode with
    other tokens, an ingest refused as "exists with other options: ... None"), one without
    ``created`` as another corpus of that name; a job without ``round`` as at round 0."""
    import json

    zk = world.zk
    if node == "job":
        assert cli("train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait").exit_code == 0
    path = {"corpus": paths.corpus("c"), "job": paths.job("j")}[node]
    doc = json.loads(zk.get(path)[0])
    del doc[key]
    zk.set(path, json.dumps(doc).encode())
    text = tmp_path / "more.txt"
    text.write_text("The cat sat on the mat.\n")
    commands = {
        "corpus": [("corpus", "show", "c"), ("corpus", "ingest", "c", str(text)), ("vocab", "build", "v2", "--corpus", "c"),
                   ("vocab", "encode", "v", str(text)), ("train", "run", "j2", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait")],
        "job": [("train", "status", "j"), ("train", "resume", "j", "--workers", "0"),
                ("train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait")],
    }[node]
    before = zk.get(path)[1].version
    for argv in commands:
        _fails_cleanly(cli(*argv), f"{path} lacks '{key}'")
    assert zk.get(path)[1].version == before  # nothing rewrote it
    assert zk.exists(paths.vocab_version("v2", 1)) is None and zk.exists(paths.job("j2")) is None  # nothing was registered
    assert not zk.get_children(paths.inputs("c"))  # the ingest registered nothing


def _deleted_as_damaged(world, cli, res, damage: str, files: list, as_json: bool) -> None:
    """`corpus delete c` (2 shards, ``files`` in the store) deleted a damaged corpus and said so."""
    from nlpzk.store import naming

    assert res.exit_code == 0, res.output
    if as_json:
        assert json.loads(res.stdout) == {"corpus": "c", "shards": 2, "files": len(files), "damaged": damage}, res.stdout
    else:
        assert res.stdout.strip() == f"deleted corpus c (damaged: its {damage}): 2 shard(s), {len(files)} file(s)", res.stdout
    assert world.zk.exists(paths.corpus("c")) is None and world.store.list(naming.corpus_dir("c")) == []
    assert json.loads(cli("corpus", "list", "--json").stdout) == []


@pytest.mark.parametrize("key, as_json", [("options", False), ("created", True)])
def test_a_corpus_whose_node_lacks_a_key_is_deleted_all_the_same(world, cli, key, as_json):
    """Before: `corpus delete` stopped at the damage as every other command does (exit 7, with
    --force too): the corpus could not be deleted until its node was restored. Deleting needs
    neither key: its name gives its znodes and its store folder."""
    from nlpzk.store import naming
    from nlpzk.zk import registry

    zk = world.zk
    doc = json.loads(zk.get(paths.corpus("c"))[0])
    del doc[key]
    zk.set(paths.corpus("c"), json.dumps(doc).encode())
    files = world.store.list(naming.corpus_dir("c"))
    assert files
    assert "or delete the corpus (its shards too) with: nlpzk corpus delete c --yes" in _fails_cleanly(cli("corpus", "show", "c"), f"lacks '{key}'")
    res = cli("corpus", "delete", "c", "--yes", *["--json"] * as_json)
    damage = f"znode {registry.full_path(zk, paths.corpus('c'))} lacked '{key}'"
    _deleted_as_damaged(world, cli, res, damage, files, as_json)


def test_corpus_verify_reports_a_directory_in_place_of_a_shard_and_goes_on(world, cli):
    import json

    from nlpzk.corpus import Corpus

    shards = Corpus.open("c", cluster=world).shards
    _as_directory(world, shards[0].path)
    with open(world.store.local_path(shards[1].path), "r+b") as fh:
        fh.truncate(100)
    res = cli("corpus", "verify", "c", "--json")
    assert res.exit_code == INTEGRITY, (res.exit_code, res.output)
    corrupt = {c["shard"]: c["problem"] for c in json.loads(res.stdout)["corrupt"]}
    # the directory is reported, and the shard after it was still checked: not stopped at the first
    assert set(corrupt) == {shards[0].id, shards[1].id} and corrupt[shards[0].id].startswith("unreadable"), corrupt


def test_a_parameter_file_that_fails_to_read_is_a_store_error_not_damage(world, cli):
    """An I/O error reading the round's parameters says nothing about the file (a disk or mount
    problem): exit 10 and "resume once it reads again", not exit 7 "the job's files were damaged;
    train the job again under a new name". /proc/self/mem answers every read at offset 0 with EIO."""
    from nlpzk.zk import registry

    _job(world)
    rel = registry.maybe_json(world.zk, paths.job_round("j", 0))["params"][0]
    full = world.store.local_path(rel)
    os.remove(full)
    os.symlink("/proc/self/mem", full)
    res = cli.run_process("train", "worker", "j", timeout=120)
    assert res.returncode == errors.StoreError.exit_code, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip() and not l.startswith("joined:")]
    assert "Traceback" not in res.stderr and len(lines) == 1 and "Input/output error" in lines[0] and "resume" in lines[0], res.stderr



@pytest.mark.parametrize("damage", DAMAGED_JOB_NODES)
def test_a_job_whose_node_is_damaged_is_deleted_with_force_only(world, cli, damage):
    """Before: `train delete` read the node first, so even --force stopped at the damage (exit 7)
    and nothing could remove the job."""
    import json

    from nlpzk.models import Model, register_model
    from nlpzk.store import naming
    from nlpzk.zk import registry

    _job(world)  # on v@v1, the vocabulary of model m
    register_model(world, "mj", Model.open("m", cluster=world).kv, vocab_name="v", vocab_version=1, job="j")
    files = world.store.list(naming.job_dir("j"))
    assert files
    world.zk.set(paths.job("j"), damage)
    # every train command that stops at it says how to get rid of the job
    for argv in [("train", "delete", "j", "--yes"), ("train", "status", "j"), ("train", "resume", "j", "--workers", "0")]:
        line = _fails_cleanly(cli(*argv), f"{paths.job('j')}")
        assert "nlpzk train delete j --yes --force" in line, (argv, line)
    assert world.zk.exists(paths.job("j")) is not None and world.store.list(naming.job_dir("j")) == files  # refused: nothing touched
    res = cli("train", "delete", "j", "--yes", "--force", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["files"] == len(files) and got["state"] is None and f"{paths.job('j')}" in got["damaged"], got
    assert any("model versions naming job j: mj@v1" in u for u in got["unknown"]), got
    assert world.zk.exists(paths.job("j")) is None and world.store.list(naming.job_dir("j")) == []
    assert registry.children(world.zk, paths.JOBS) == [] and cli("train", "list", "--json").stdout.strip() == "[]"
    assert cli("model", "similar", "mj", "cat").exit_code == 0  # a model keeps its own copy of the vectors
    again = cli("train", "delete", "j", "--yes", "--force")
    assert again.exit_code == errors.NotFoundError.exit_code and "unknown training job 'j'" in one_line_error(again.stderr)


def test_a_damaged_job_deleted_with_force_says_what_it_did_and_could_not_tell(world, cli):
    _job(world)
    world.zk.set(paths.job("j"), b"\x00garbage")
    res = cli("train", "delete", "j", "--yes", "--force")
    assert res.exit_code == 0, res.output
    out = res.stdout.replace("\n", " ")
    assert "deleted damaged training job j (2 files under jobs/j/; its node: znode" in out, out
    assert "not known without its node: its state; whether a model holds its vectors (no model version names it)" in out, out


@pytest.mark.parametrize("damage", DAMAGED_JOB_NODES)
def test_every_command_that_stops_at_a_damaged_job_node_says_how_to_delete_the_job(world, cli, tmp_path, damage):
    """train status / delete named `nlpzk train delete j --yes --force`; nlpzk status, vocab
    delete, corpus delete, model register and train report stopped at the same node with "restore
    it from a ZooKeeper backup (... deletes included, stop here)", or (a node without its spec) did
    not see the job at all: corpus delete went on while the job might still train on the corpus."""
    from nlpzk.zk import registry

    _job(world)
    world.zk.set(paths.job("j"), damage)
    before = {p: registry.maybe_json(world.zk, p) for p in (paths.corpus("c"), paths.vocab_version("v", 1))}
    for argv in [("corpus", "delete", "c", "--yes"), ("model", "register", "j"), ("train", "report", "j", "--out", str(tmp_path / "r.html"))]:
        line = _fails_cleanly(cli(*argv), f"{paths.job('j')}")
        assert "nlpzk train delete j --yes --force" in line, (argv, line)
    for argv in [("vocab", "delete", "v@v1", "--yes"), ("vocab", "delete", "v", "--yes")]:
        res = cli(*argv)  # model m uses it: refused naming m, whatever j uses
        assert res.exit_code == errors.ConflictError.exit_code and "is used by model m@v1" in one_line_error(res.stderr), res.output
    assert {p: registry.maybe_json(world.zk, p) for p in before} == before  # refused: nothing deleted
    # the overview is not stopped by one damaged job: it shows the rest, and that job with what to do
    res = cli("status")
    assert res.exit_code == 0, res.stderr
    assert "damaged" in res.stdout and f"job j: znode {registry.full_path(world.zk, paths.job('j'))}" in res.stdout, res.stdout
    assert "nlpzk train delete j --yes --force" in res.stdout and "corpora" in res.stdout, res.stdout
    doc = json.loads(cli("status", "--json").stdout)
    (row,) = doc["jobs"]
    assert row["state"] == "damaged" and "nlpzk train delete j --yes --force" in row["damaged"], row


@pytest.mark.parametrize("damage", DAMAGED_JOB_NODES)
def test_a_damaged_job_is_a_row_of_train_list_and_the_others_are_listed(world, cli, damage):
    """Before: one damaged job node stopped `train list` with exit 7: the other jobs were not shown."""
    from nlpzk.zk import registry

    _job(world, "j")
    _job(world, "bad")
    world.zk.set(paths.job("bad"), damage)
    res = cli("train", "list")
    assert res.exit_code == 0, res.output
    rows = dict(line.split(": ", 1) for line in res.stdout.splitlines())
    assert rows["bad"].startswith(f"damaged: znode {registry.full_path(world.zk, paths.job('bad'))} ") and "nlpzk train delete bad --yes --force" in rows["bad"], rows
    assert rows["j"].startswith("running (no workers) round 0/1 corpus c vocab v@v1"), rows
    got = {r["job"]: r for r in json.loads(cli("train", "list", "--json").stdout)}
    assert got["bad"]["state"] == "damaged" and "nlpzk train delete bad --yes --force" in got["bad"]["damaged"], got
    assert got["j"]["state"] == "running" and got["j"]["corpus"] == "c" and got["j"]["damaged"] is None, got


@pytest.mark.parametrize("damage", DAMAGED_JOB_NODES)
def test_a_damaged_job_stops_a_delete_of_a_name_no_readable_job_uses_only_without_force(world, cli, damage):
    """Before: one damaged job node stopped every `corpus delete` and `vocab delete`, of names no
    job uses too, with exit 7 and a line that named only `train delete JOB --yes --force`. Now a
    delete of a name a readable job uses is refused naming that job, as without the damaged one; one
    of any other name is refused naming the damaged job (it might use it) and every way on, --force
    among them, which deletes it."""
    from nlpzk.corpus import Corpus
    from nlpzk.ingest import tokenizer_options
    from nlpzk.vocab import build
    from nlpzk.zk import registry

    zk = world.zk
    _job(world, "j")  # readable: on corpus c and v@v1
    _job(world, "bad")
    zk.set(paths.job("bad"), damage)
    Corpus.create(world, "other", tokenizer_options())
    build(world, "w", "c", min_count=1)
    for argv in [("corpus", "delete", "c", "--yes"), ("vocab", "delete", "v@v1", "--yes"), ("vocab", "delete", "v", "--yes")]:
        r = cli(*argv)
        assert r.exit_code == errors.ConflictError.exit_code and " j" in one_line_error(r.stderr), (argv, r.output)
    for argv, what in [(("corpus", "delete", "other", "--yes"), "corpus 'other'"), (("vocab", "delete", "w@v1", "--yes"), "vocabulary w@v1"),
                       (("vocab", "delete", "w", "--yes"), "vocabulary w")]:
        line = _fails_cleanly(cli(*argv), f"training job(s) bad cannot be checked for use of {what}: znode {registry.full_path(zk, paths.job('bad'))}")
        assert "nlpzk train delete bad --yes --force" in line and f"pass --force to delete {what} anyway" in line, line
        r = cli(*argv, "--force")
        assert r.exit_code == 0, (argv, r.output)
    assert zk.exists(paths.corpus("other")) is None and zk.exists(paths.vocab("w")) is None
    assert zk.exists(paths.corpus("c")) and zk.exists(paths.vocab_version("v", 1)) and zk.exists(paths.job("j"))


@pytest.mark.parametrize("damage", ["flipped", "garbage"])
def test_reading_a_damaged_shard_names_the_corpus_to_verify(world, damage):
    """read_shard (public; what a training worker reads with) hinted "run: nlpzk corpus verify"
    without the corpus's name for a shard that fails its checksum or is not Parquet."""
    from nlpzk.corpus import Corpus, read_shard

    info = Corpus.open("c", cluster=world).shards[0]
    data = bytearray(world.store.read_bytes(info.path))
    data[-20] ^= 1  # still Parquet, not the registered bytes
    world.store.write_bytes(info.path, bytes(data) if damage == "flipped" else b"PAR1 garbage")
    with pytest.raises(errors.IntegrityError, match=f"shard {info.id} \\({info.path}\\) (fails its checksum|is corrupt)") as exc:
        read_shard(world.store, info, verify=damage == "flipped")
    assert exc.value.hint == "check it with: nlpzk corpus verify c"


#: A corpus changed outside nlpzk: its node not JSON, its node without a key, a shard node without a key.
DAMAGED_CORPUS = {
    "not-json": (lambda doc: None, "does not hold a valid JSON document", "nlpzk corpus delete bad --yes --force"),
    "no-options": (lambda doc: doc.pop("options"), "lacks 'options'", "nlpzk corpus delete bad --yes"),
    "shard-no-path": (None, "the registry document of shard s000 lacks 'path'", "delete the corpus and ingest it again"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_CORPUS))
def test_a_damaged_corpus_is_a_row_of_corpus_list_and_the_others_are_listed(world, cli, tmp_path, damage):
    """Before: one damaged corpus node (or shard node) stopped `corpus list` with exit 7: the other
    corpora were not shown. Now it is a row as in `train list` (state damaged, the line in damaged)."""
    from nlpzk.store import naming

    zk = world.zk
    (tmp_path / "a.txt").write_text("The first document.\n")
    for name in ("bad", "good"):
        assert cli("corpus", "ingest", name, str(tmp_path / "a.txt")).exit_code == 0
    change, needle, way_on = DAMAGED_CORPUS[damage]
    if change is None:
        (sid,) = zk.get_children(paths.shards("bad"))
        path = paths.shard("bad", sid)
        needle = needle.replace("s000", sid)
    else:
        path = paths.corpus("bad")
    doc = json.loads(zk.get(path)[0])
    if change is None:
        del doc["path"]
    else:
        change(doc)
    zk.set(path, b'{"options": cut' if damage == "not-json" else json.dumps(doc).encode())
    res = cli("corpus", "list")
    assert res.exit_code == 0, res.output
    (line,) = [l for l in res.stdout.splitlines() if l.startswith("bad: damaged: ")]
    assert needle in line and way_on in line, line
    assert "good" in res.stdout and "bad (damaged)" in res.stdout, res.stdout
    got = {r["name"]: r for r in json.loads(cli("corpus", "list", "--json").stdout)}
    assert got["bad"]["state"] == "damaged" and needle in got["bad"]["damaged"] and way_on in got["bad"]["damaged"], got
    assert got["bad"]["shards"] is None and got["bad"]["deleting"] is False, got
    for name in ("good", "c"):
        assert got[name]["state"] == "ok" and got[name]["damaged"] is None and got[name]["shards"] >= 1, got
    assert set(got["bad"]) == set(got["good"]), got  # one shape
    assert world.store.list(naming.corpus_dir("bad"))  # listing touched nothing


def test_status_json_gives_every_job_row_a_damaged_field(world, cli):
    """Before: `nlpzk status --json` gave readable job rows no `damaged` key (only a damaged job's
    row had one), while `train list --json` gives every row `damaged` (null if readable)."""
    _job(world, "j")
    _job(world, "bad")
    world.zk.set(paths.job("bad"), DAMAGED_JOB_NODES[0])
    rows = {r["name"]: r for r in json.loads(cli("status", "--json").stdout)["jobs"]}
    assert rows["j"]["damaged"] is None and rows["j"]["state"] == "running", rows
    assert rows["bad"]["state"] == "damaged" and "nlpzk train delete bad --yes --force" in rows["bad"]["damaged"], rows
    assert set(rows["j"]) == set(rows["bad"]), rows  # one shape


@pytest.mark.parametrize("as_json", [False, True])
def test_a_corpus_node_that_holds_no_json_is_deleted_with_force(world, cli, as_json):
    """Before: `corpus delete` could not delete a corpus whose node is not JSON (with --force too:
    it stopped at the node it wanted to rewrite to mark the corpus)."""
    from nlpzk.store import naming
    from nlpzk.zk import registry

    zk = world.zk
    files = world.store.list(naming.corpus_dir("c"))
    assert files
    raw = b'{"options": cut'
    zk.set(paths.corpus("c"), raw)
    where = registry.full_path(zk, paths.corpus("c"))
    line = _fails_cleanly(cli("corpus", "delete", "c", "--yes"), f"znode {where} does not hold a valid JSON document")
    assert "nlpzk corpus delete c --yes --force" in line, line
    assert "nlpzk corpus delete c --yes --force" in _fails_cleanly(cli("corpus", "show", "c"), where)
    assert zk.exists(paths.corpus("c")) and world.store.list(naming.corpus_dir("c")) == files  # refused: nothing touched
    res = cli("corpus", "delete", "c", "--yes", "--force", *["--json"] * as_json)
    damage = f"znode {where} does not hold a valid JSON document (it reads {raw!r})"
    _deleted_as_damaged(world, cli, res, damage, files, as_json)


@pytest.mark.parametrize("kind", ["vocab", "model"])
def test_a_damaged_vocabulary_or_model_is_a_row_of_its_list_and_the_others_are_listed(world, cli, kind):
    """Before: one vocabulary node (or a model's latest version node) holding no JSON document
    stopped `vocab list` / `model list` with exit 7: the others were not shown."""
    from nlpzk.models import register_model
    from nlpzk.vocab import build
    from nlpzk.zk import registry

    zk = world.zk
    if kind == "vocab":
        build(world, "w", "c", min_count=1)
        path, good = paths.vocab("v"), "w"
        name = "v"
    else:
        from gensim.models import KeyedVectors
        import numpy as np

        kv = KeyedVectors(4, count=0)
        kv.add_vectors(["the", "cat"], np.zeros((2, 4), np.float32))
        register_model(world, "n", kv, vocab_name="v", vocab_version=1, job=None, spec={"dim": 4})
        path, good, name = paths.model_version("m", 1), "n", "m"
    zk.set(path, b'{"cut')
    res = cli(kind, "list")
    assert res.exit_code == 0, res.output
    (line,) = [l for l in res.stdout.splitlines() if l.startswith(f"{name}: damaged: ")]
    assert f"znode {registry.full_path(zk, path)} does not hold a valid JSON document" in line, line
    assert good in res.stdout and f"{name} (damaged)" in res.stdout, res.stdout
    got = {r["name"]: r for r in json.loads(cli(kind, "list", "--json").stdout)}
    assert got[name]["state"] == "damaged" and registry.full_path(zk, path) in got[name]["damaged"], got
    assert got[good]["state"] == "ok" and got[good]["damaged"] is None and got[good]["versions"] == 1, got
    assert set(got[name]) == set(got[good]), got  # one shape


#: A node of each kind changed outside nlpzk: (section of nlpzk status, name, node, new data or None to drop a
#: key, the command whose error line the row must give).
DAMAGED_FOR_STATUS = {
    "corpus-not-json": ("corpora", "c", paths.corpus("c"), b'{"options": cut', ("corpus", "show", "c")),
    "corpus-no-options": ("corpora", "c", paths.corpus("c"), "options", ("corpus", "show", "c")),
    "shard-not-json": ("corpora", "c", paths.shard("c", "s000"), b'{"path": "cut o', ("corpus", "show", "c")),
    "shard-no-tokens": ("corpora", "c", paths.shard("c", "s000"), "tokens", ("corpus", "show", "c")),
    "vocab-version-not-json": ("vocabularies", "v", paths.vocab_version("v", 1), b'{"cut', ("vocab", "show", "v")),
    "vocab-tag-no-version": ("vocabularies", "v", f"{paths.vocab('v')}/tags/latest", b"xyz", ("vocab", "show", "v")),
    "model-version-not-json": ("models", "m", paths.model_version("m", 1), b'{"cut', ("model", "show", "m")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_FOR_STATUS))
def test_a_damaged_corpus_vocabulary_or_model_is_a_row_of_status_and_the_rest_is_shown(world, cli, damage):
    """Before: one damaged corpus, shard, vocabulary or model node stopped `nlpzk status` (and
    --json) with exit 7: nothing else was shown, while the lists and status's own jobs make such an
    entry a row. A corpus node holding no JSON also said "deletes included, stop here", though
    `corpus delete --force` deletes it."""
    zk = world.zk
    section, name, path, change, command = DAMAGED_FOR_STATUS[damage]
    if isinstance(change, str):
        doc = json.loads(zk.get(path)[0])
        del doc[change]
        change = json.dumps(doc).encode()
    zk.set(path, change)
    line = one_line_error(cli(*command).stderr).removeprefix("error: ")  # what every other command says
    res = cli("status", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    for part in ("corpora", "vocabularies", "models"):
        (row,) = doc[part]
        if part == section:
            assert row["name"] == name and row["state"] == "damaged" and row["damaged"] == line, row
        else:
            assert row["state"] == "ok" and row["damaged"] is None and row["versions" if part != "corpora" else "shards"], row
    if damage == "corpus-not-json":  # Corpus.open's line: corpus delete --force deletes it
        assert "nlpzk corpus delete c --yes --force" in line and "stop here" not in line, line
    res = cli("status")
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    kind = {"corpora": "corpus", "vocabularies": "vocabulary", "models": "model"}[section]
    assert f"{name} (damaged)" in out and f"{kind} {name}: {' '.join(line.split())}" in out, res.stdout
    assert all(f"{n} (damaged)" not in out for n in {"c", "v", "m"} - {name}), res.stdout
