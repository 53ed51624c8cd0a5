"""Bad-input sweep across every CLI group: the inputs users get wrong, each answered by exactly one
``error: ...`` line, a non-zero (documented) exit code, no traceback, and nothing registered.

One chroot per module holds a small real corpus ``c``, a vocabulary ``v`` (v1, tag ``latest``), a
model ``m`` (v1) and an unfinished job ``j``. Every case snapshots the whole chroot and every
non-temporary store file before and after the command: a failing command must leave both unchanged.
Cases already pinned elsewhere (``test_ingest_bad_input.py``, ``test_vocab_cli.py``,
``test_models.py``, ``test_train_jobs.py``, ``test_config.py``) are not repeated here.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import one_line_error
from _helpers import Cli
from nlpzk import errors, testing
from nlpzk.store import is_tmp
from nlpzk.zk import registry

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)

USAGE = 2  # click's usage errors (a missing argument, an unknown option or command, a bad global flag)
CONFIG = errors.ConfigError.exit_code
UNAVAILABLE = errors.ZkUnavailableError.exit_code
NOT_FOUND = errors.NotFoundError.exit_code
INVALID = errors.InvalidInputError.exit_code
TRAINING = errors.TrainingError.exit_code
CORES = os.cpu_count() or 1


# -- the module's cluster -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(zk_server, tmp_path_factory):
    """A chroot with one of everything, the files the cases read, and a CLI bound to it."""
    import numpy as np
    from gensim.models import KeyedVectors
    from test_models_support import lee_sentences

    from nlpzk import train
    from nlpzk.corpus import Corpus, ShardWriter
    from nlpzk.ingest import tokenizer_options
    from nlpzk.models import register_model
    from nlpzk.vocab import build
    from nlpzk.zk import paths, registry

    base = tmp_path_factory.mktemp("bad-inputs")
    config = testing.config_for(zk_server.address, base / "store")
    cluster = testing.Cluster.connect(config)
    Corpus.create(cluster, "c", tokenizer_options())
    sentences = lee_sentences()[:200]
    for s in range(2):
        with ShardWriter(cluster.store, "c", f"s{s:03d}") as w:
            for i, sent in enumerate(sentences[s::2]):
                w.add(f"d{s}-{i}", "lee_background.cor", list(sent))
        registry.create_json(cluster.zk, paths.shard("c", w.info.id), w.info.doc())
    view = build(cluster, "c", "c", min_count=2)
    build(cluster, "v", "c", min_count=2)
    kv = KeyedVectors(8, count=0)
    kv.add_vectors(view.tokens.to_pylist(), np.random.default_rng(0).normal(size=(len(view), 8)).astype(np.float32))
    register_model(cluster, "m", kv, vocab_name="c", vocab_version=view.version, job=None, spec={"dim": 8})
    train.create_job(cluster, "j", "c", "c@v1", epochs=1, syncs_per_epoch=1, dim=8)

    files = base / "in"
    files.mkdir()
    _write_inputs(files)
    env = testing.env_for(config, base / "state")
    yield dict(cluster=cluster, config=config, cli=Cli(env), files=files, env=env)
    cluster.close()


GOOD = "A good line of text.\n"


def _write_inputs(d: Path) -> None:
    (d / "good.txt").write_text(GOOD)
    (d / "utf16.txt").write_bytes("\ufeffHello world.\n".encode("utf-16-le"))
    (d / "utf16be.jsonl").write_bytes('\ufeff{"text": "hi"}\n'.encode("utf-16-be"))
    (d / "random.txt").write_bytes(bytes(range(256)) * 4)
    (d / "random.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    (d / "binary.jsonl").write_bytes(b'{"text": "ok"}\n\x00\x01\x02\n')
    (d / "binary.csv").write_bytes(b"text\nok\n\x00\xff\n")
    (d / "huge.jsonl").write_bytes(b'{"text": "' + b"word " * 220_000 + b'"}\n')
    (d / "array.jsonl").write_text('{"text": "fine"}\n[1, 2, 3]\n')
    (d / "scalar.jsonl").write_text('{"text": "fine"}\n"just a string"\n')
    (d / "number_text.jsonl").write_text('{"text": "fine"}\n{"text": 42}\n')
    (d / "truncated.jsonl").write_text('{"text": "fine"}\n{"text": "cut of')
    (d / "nocolumn.csv").write_text("title,body\na,b\n")
    (d / "unclosed.csv").write_text('text\n"a quote opened here\nnever closed, so the rest was one document\nok\n')
    (d / "binary.bin.txt").write_bytes(b"\x00" * 64)
    (d / "bad.toml").write_text("[nlpzk\nzk = 'x'\n")
    (d / "garbage.txt.bz2").write_bytes(b"BZh91AY&SY" + b"\x00garbage" * 4)
    (d / "garbage.txt.xz").write_bytes(b"\xfd7zXZ\x00" + b"garbage" * 4)
    (d / "garbage.txt.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 4)
    whole = gzip.compress("".join(f"line {i} of {i * 7919 % 10007} words\n" for i in range(5000)).encode())
    (d / "truncated.txt.gz").write_bytes(whole[: len(whole) // 2])
    (d / "text.txt.gz").write_text(GOOD)  # plain text under a .gz name
    (d / "out_dir").mkdir()
    os.mkfifo(d / "fifo.txt")


# -- snapshots: what "nothing registered" means ---------------------------------------------------


def _znodes(zk, path: str = "/") -> dict[str, bytes]:
    out = {}
    for child in registry.children(zk, path):  # (none under a chroot nothing was written to yet: it does not exist)
        p = f"{path.rstrip('/')}/{child}"
        if p == "/zookeeper":
            continue
        out[p] = zk.get(p)[0]
        out.update(_znodes(zk, p))
    return out


def _files(cluster) -> set[str]:
    return {f for f in cluster.store.list("") if not is_tmp(f)}


def _snapshot(cluster):
    return _znodes(cluster.zk), _files(cluster)


def _assert_unchanged(cluster, before) -> None:
    znodes, files = _snapshot(cluster)
    assert set(znodes) - set(before[0]) == set(), "new registry nodes"
    assert set(before[0]) - set(znodes) == set(), "registry nodes removed"
    assert {p for p in znodes if znodes[p] != before[0][p]} == set(), "registry nodes changed"
    assert files == before[1], "store files changed"


def _check(result_code: int, stdout: str, stderr: str, code: int, needle: str) -> None:
    assert result_code == code, (result_code, stdout[-2000:], stderr[-2000:])
    line = one_line_error(stderr)
    assert needle.lower() in line.lower(), line


# -- the table ------------------------------------------------------------------------------------
# (id, argv with {in} for the inputs directory, expected exit code, fragment of the error line)

NAMES = [
    ("corpus-ingest-dotdot", ["corpus", "ingest", "../x", "{in}/good.txt"], INVALID, "invalid corpus name '../x'"),
    ("corpus-ingest-slash", ["corpus", "ingest", "a/b", "{in}/good.txt"], INVALID, "invalid corpus name 'a/b'"),
    ("corpus-ingest-empty-name", ["corpus", "ingest", "", "{in}/good.txt"], INVALID, "invalid corpus name ''"),
    ("corpus-ingest-long-name", ["corpus", "ingest", "n" * 200, "{in}/good.txt"], INVALID, "invalid corpus name"),
    ("corpus-show-unknown", ["corpus", "show", "nosuch"], NOT_FOUND, "unknown corpus 'nosuch'"),
    ("corpus-show-dotdot", ["corpus", "show", "../x"], INVALID, "invalid corpus name '../x'"),
    ("corpus-verify-unknown", ["corpus", "verify", "nosuch"], NOT_FOUND, "unknown corpus 'nosuch'"),
    ("corpus-delete-unknown", ["corpus", "delete", "nosuch", "--yes"], NOT_FOUND, "unknown corpus 'nosuch'"),
    ("vocab-build-dotdot", ["vocab", "build", "../x", "--corpus", "c"], INVALID, "invalid vocabulary name '../x'"),
    ("vocab-show-unknown-at-v99", ["vocab", "show", "x@v99"], NOT_FOUND, "unknown vocabulary 'x'"),
    ("vocab-show-v99", ["vocab", "show", "v@v99"], NOT_FOUND, "no version v99"),
    ("vocab-show-nosuchtag", ["vocab", "show", "v:nosuchtag"], NOT_FOUND, "no tag 'nosuchtag'"),
    ("vocab-show-bad-version", ["vocab", "show", "v@vabc"], INVALID, "'vabc' is not a version"),
    ("vocab-show-empty-version", ["vocab", "show", "v@"], INVALID, "'' is not a version"),
    ("vocab-show-zero-version", ["vocab", "show", "v@v0"], NOT_FOUND, "no version v0"),
    ("vocab-tag-bad-tag-name", ["vocab", "tag", "v", "v1", "../t"], INVALID, "invalid tag name '../t'"),
    ("vocab-tag-unknown-vocab", ["vocab", "tag", "x", "v1", "stable"], NOT_FOUND, "unknown vocabulary 'x'"),
    ("vocab-diff-v99", ["vocab", "diff", "v", "v1", "v99"], NOT_FOUND, "no version v99"),
    ("vocab-verify-unknown", ["vocab", "verify", "nosuch"], NOT_FOUND, "unknown vocabulary 'nosuch'"),
    ("vocab-export-unknown", ["vocab", "export", "x@v99"], NOT_FOUND, "unknown vocabulary 'x'"),
    ("vocab-build-max-size-0", ["vocab", "build", "v", "--corpus", "c", "--max-size", "0"], INVALID, "--max-size must be an integer >= 1 (room for the specials), not 0 — give the most ids to keep, or leave --max-size out"),
    ("vocab-build-max-size-negative", ["vocab", "build", "v", "--corpus", "c", "--max-size", "-1"], INVALID, "--max-size must be an integer >= 1 (room for the specials), not -1"),
    ("vocab-build-processes-0", ["vocab", "build", "v", "--corpus", "c", "--processes", "0"], INVALID, "--processes must be an integer >= 1, not 0 — use --processes 1"),
    ("vocab-build-min-count-0", ["vocab", "build", "v", "--corpus", "c", "--min-count", "0"], INVALID, "--min-count must be an integer >= 1, not 0 — --min-count N leaves out tokens seen fewer than N times"),
    ("vocab-build-specials-with-space", ["vocab", "build", "v", "--corpus", "c", "--specials", "a b"], INVALID, "special token 'a b' contains whitespace — give tokens without spaces"),
    ("vocab-build-specials-empty-item", ["vocab", "build", "v", "--corpus", "c", "--specials", ","], INVALID, "--specials ',' has an empty item — give tokens comma-separated"),
    ("vocab-build-specials-repeated", ["vocab", "build", "v", "--corpus", "c", "--specials", "<unk>,<pad>,<unk>"], INVALID, "--specials list <unk> more than once: ['<unk>', '<pad>', '<unk>'] — list each special token once"),
    ("vocab-build-parent-nosuchtag", ["vocab", "build", "v", "--corpus", "c", "--parent", "nosuchtag"], NOT_FOUND, "nosuchtag"),
    ("model-show-v99", ["model", "show", "m@v99"], NOT_FOUND, "no version v99"),
    ("model-show-nosuchtag", ["model", "show", "m:nosuchtag"], NOT_FOUND, "nosuchtag"),
    ("model-show-dotdot", ["model", "show", "../m"], INVALID, "invalid model name"),
    ("model-tag-v99", ["model", "tag", "m@v99", "stable"], NOT_FOUND, "no version v99"),
    ("model-tag-bad-tag-name", ["model", "tag", "m@v1", "../t"], INVALID, "invalid tag name"),
    ("model-untag-nosuchtag", ["model", "untag", "m", "nosuchtag"], NOT_FOUND, "nosuchtag"),
    ("model-delete-unknown", ["model", "delete", "nosuch", "--yes"], NOT_FOUND, "unknown model 'nosuch'"),
    ("model-delete-v99", ["model", "delete", "m@v99", "--yes"], NOT_FOUND, "no version v99"),
    ("model-register-unknown-job", ["model", "register", "nosuch"], NOT_FOUND, "unknown training job 'nosuch'"),
    ("model-register-unfinished-job", ["model", "register", "j"], TRAINING, "has not finished"),
    ("model-similar-unknown", ["model", "similar", "x@v99", "word"], NOT_FOUND, "unknown model 'x'"),
    ("model-analogy-unknown", ["model", "analogy", "x", "a", "b", "c"], NOT_FOUND, "unknown model 'x'"),
    ("model-eval-worker-unknown-model", ["model", "eval-worker", "nosuch", "e-x"], NOT_FOUND, "unknown model 'nosuch' — see: nlpzk model list"),
    ("model-eval-worker-unknown-eval", ["model", "eval-worker", "m", "e-x"], NOT_FOUND, "model 'm' has no evaluation e-x (it finished and was cleaned up, or never started) — start one with: nlpzk model eval m --workers K"),
    ("model-export-bad-format", ["model", "export", "m", "--format", "xml", "--out", "{in}/out.xml"], INVALID, "unknown export format 'xml'"),
    ("model-eval-unknown-benchmark", ["model", "eval", "m", "--only", "nosuch", "--no-save"], INVALID, "unknown benchmark 'nosuch'"),
    ("train-status-unknown", ["train", "status", "nosuch"], NOT_FOUND, "unknown training job 'nosuch'"),
    ("train-status-dotdot", ["train", "status", "../j"], INVALID, "invalid job name"),
    ("train-resume-unknown", ["train", "resume", "nosuch", "--workers", "0"], NOT_FOUND, "unknown training job 'nosuch'"),
    ("train-worker-unknown", ["train", "worker", "nosuch"], NOT_FOUND, "unknown training job 'nosuch'"),
    ("train-worker-threads-0", ["train", "worker", "j", "--threads", "0"], INVALID, "--threads must be 1 or more"),
    ("train-worker-threads-above-4-per-core", ["train", "worker", "j", "--threads", str(4 * CORES + 1)], INVALID, f"training threads, more than this machine runs: at most {4 * CORES}"),
    ("train-worker-cache-negative", ["train", "worker", "j", "--cache-mb", "-1"], INVALID, "--cache-mb must be 0 or more, not -1"),
    ("train-resume-workers-negative", ["train", "resume", "j", "--workers", "-2"], INVALID, "--workers must be 0 or more"),
    ("train-run-dotdot", ["train", "run", "../j", "--corpus", "c", "--vocab", "c", "--workers", "0", "--no-wait"], INVALID, "invalid job name"),
    ("train-run-vocab-v99", ["train", "run", "x", "--corpus", "c", "--vocab", "c@v99", "--workers", "0", "--no-wait"], NOT_FOUND, "no version v99"),
    ("train-run-vocab-nosuchtag", ["train", "run", "x", "--corpus", "c", "--vocab", "c:nosuchtag", "--workers", "0", "--no-wait"], NOT_FOUND, "nosuchtag"),
    ("zk-tree-unknown-path", ["zk", "tree", "/nosuch"], NOT_FOUND, "no znode /nosuch"),
    ("zk-tree-relative-path", ["zk", "tree", "../x"], INVALID, "invalid znode path '../x'"),
]

_TRAIN = ["train", "run", "{job}", "--corpus", "c", "--vocab", "c@v1", "--no-wait"]
HYPER = [
    pytest.param(["--dim", "0"], "dim must be an integer >= 1", id="dim-0"),
    pytest.param(["--dim", "1000000"], "dim must be at most", id="dim-huge"),
    pytest.param(["--window", "-1"], "window must be an integer >= 1", id="window-negative"),
    pytest.param(["--negative", "0"], "negative must be an integer >= 1", id="negative-0"),
    pytest.param(["--syncs-per-epoch", "0"], "syncs_per_epoch must be an integer >= 1", id="syncs-0"),
    pytest.param(["--epochs", str(10**9)], "epochs x syncs-per-epoch must be at most 100000 rounds", id="epochs-1e9"),
    pytest.param(["--alpha", "1.5"], "alpha must be in (0, 1]", id="alpha-above-1"),
    pytest.param(["--alpha", "0"], "alpha must be in (0, 1]", id="alpha-0"),
    pytest.param(["--alpha", "nan"], "alpha must be in (0, 1], not nan", id="alpha-nan"),
    pytest.param(["--alpha", "0.01", "--min-alpha", "0.02"], "min-alpha must be in [0, alpha]", id="min-alpha-above-alpha"),
    pytest.param(["--sample", "-1"], "sample must be >= 0", id="sample-negative"),
    pytest.param(["--eta", "1"], "eta must be in [0, 1)", id="eta-1"),
    pytest.param(["--lease-timeout", "0"], "lease timeout must be positive", id="lease-timeout-0"),
    pytest.param(["--kernel", "fast"], "kernel must be one of batched, gensim, not 'fast'", id="kernel-unknown"),
    pytest.param(["--cbow", "--kernel", "batched"], "the batched kernel trains skip-gram only: CBOW needs --kernel gensim", id="kernel-batched-cbow"),
    pytest.param(["--delta-dtype", "float16"], "delta dtype must be one of bfloat16, float32, not 'float16'", id="delta-dtype-unknown"),
    pytest.param(["--workers", "-1"], "--workers must be 0 or more, not -1", id="workers-negative"),
    pytest.param(["--workers", "0", "--threads", "0"], "--threads must be 1 or more, not 0", id="threads-0"),
    pytest.param(["--workers", "0", "--cache-mb", "-5"], "--cache-mb must be 0 or more, not -5", id="cache-negative"),
    # --threads had no upper bound: threads x workers at most 4 per core, as --workers alone
    pytest.param(["--workers", "1", "--threads", str(4 * CORES + 1)], f"--threads {4 * CORES + 1} is {4 * CORES + 1} training threads, more than this machine runs: at most {4 * CORES}", id="threads-above-4-per-core"),
    pytest.param(["--workers", "2", "--threads", str(2 * CORES + 1)], f"--threads {2 * CORES + 1} x 2 local workers is {4 * CORES + 2} training threads", id="threads-times-workers-above-4-per-core"),
]

INPUTS = [
    # paths
    ("ingest-fifo", ["corpus", "ingest", "b", "{in}/fifo.txt"], INVALID, "fifo.txt: not a regular file"),
    ("ingest-dev-zero", ["corpus", "ingest", "b", "/dev/zero"], INVALID, "/dev/zero: not a regular file"),
    ("ingest-no-args-dir-of-dirs", ["corpus", "ingest", "b", "{in}/out_dir"], INVALID, "out_dir: directory has no readable input files"),
    ("ingest-glob-matches-nothing", ["corpus", "ingest", "b", "{in}/*.nosuch"], INVALID, "*.nosuch: no file matches this pattern — check the pattern"),
    # encodings and binary data
    ("ingest-utf16-bom", ["corpus", "ingest", "b", "{in}/utf16.txt"], INVALID, "utf16.txt: looks binary (NUL byte at offset 3), not UTF-8 text — ingest text files only (UTF-16 must be converted to UTF-8)"),
    ("ingest-utf16-bom-jsonl", ["corpus", "ingest", "b", "{in}/utf16be.jsonl"], INVALID, "utf16be.jsonl: looks binary (NUL byte at offset 2), not UTF-8 text — ingest text files only (UTF-16"),
    ("ingest-random-bytes", ["corpus", "ingest", "b", "{in}/random.txt"], INVALID, "random.txt: looks binary"),
    ("ingest-random-bytes-strict", ["corpus", "ingest", "b", "{in}/random.txt", "--strict"], INVALID, "random.txt: looks binary"),
    ("ingest-not-parquet", ["corpus", "ingest", "b", "{in}/random.parquet"], INVALID, "random.parquet: not a readable Parquet file"),
    ("ingest-binary-jsonl", ["corpus", "ingest", "b", "{in}/binary.jsonl"], INVALID, "binary.jsonl: looks binary"),
    ("ingest-binary-csv", ["corpus", "ingest", "b", "{in}/binary.csv"], INVALID, "binary.csv: looks binary"),
    ("ingest-all-nul", ["corpus", "ingest", "b", "{in}/binary.bin.txt"], INVALID, "looks binary"),
    ("ingest-huge-jsonl-line", ["corpus", "ingest", "b", "{in}/huge.jsonl"], INVALID, "huge.jsonl:1: line is longer than 1000000 bytes"),
    # compressed inputs that are not what their names say
    ("ingest-corrupt-bz2", ["corpus", "ingest", "b", "{in}/garbage.txt.bz2"], INVALID, "garbage.txt.bz2: corrupt bzip2 data"),
    ("ingest-corrupt-xz", ["corpus", "ingest", "b", "{in}/garbage.txt.xz"], INVALID, "garbage.txt.xz: corrupt xz data"),
    ("ingest-corrupt-zst", ["corpus", "ingest", "b", "{in}/garbage.txt.zst"], INVALID, "garbage.txt.zst: corrupt zstd data"),
    ("ingest-truncated-gz", ["corpus", "ingest", "b", "{in}/truncated.txt.gz"], INVALID, "truncated.txt.gz: corrupt gzip data"),
    ("ingest-plain-text-named-gz", ["corpus", "ingest", "b", "{in}/text.txt.gz"], INVALID, "text.txt.gz: corrupt gzip data"),
    # a corpus's tokenizer options are fixed when it is created
    ("ingest-into-corpus-with-other-options", ["corpus", "ingest", "c", "{in}/good.txt", "--no-lowercase"], errors.ConflictError.exit_code, "corpus 'c' exists with other options: lowercase True (not False)"),
    ("ingest-empty-lang", ["corpus", "ingest", "b", "{in}/good.txt", "--lang", ""], INVALID, "tokenizer option --lang must be a language code, not '' — use a spaCy language code such as en"),
    # malformed JSONL / CSV
    ("ingest-jsonl-array", ["corpus", "ingest", "b", "{in}/array.jsonl"], INVALID, "array.jsonl:2: no 'text' field (found: list)"),
    ("ingest-jsonl-scalar", ["corpus", "ingest", "b", "{in}/scalar.jsonl"], INVALID, "scalar.jsonl:2: no 'text' field (found: str)"),
    ("ingest-jsonl-number-text", ["corpus", "ingest", "b", "{in}/number_text.jsonl"], INVALID, "number_text.jsonl:2: field 'text' is a number, not a string — make that field a JSON string"),
    ("ingest-jsonl-truncated", ["corpus", "ingest", "b", "{in}/truncated.jsonl"], INVALID, "truncated.jsonl:2: not valid JSON"),
    ("ingest-csv-unclosed-quote", ["corpus", "ingest", "b", "{in}/unclosed.csv"], INVALID, "unclosed.csv:4: bad CSV (unexpected end of data) — check the quoting"),
    ("ingest-csv-no-column", ["corpus", "ingest", "b", "{in}/nocolumn.csv"], INVALID, "nocolumn.csv:1: no column 'text' (columns: title, body)"),
    ("ingest-text-field-missing", ["corpus", "ingest", "b", "{in}/array.jsonl", "--text-field", "body"], INVALID, "array.jsonl:1: no 'body' field (found: text)"),
    # absurd ingest options
    ("ingest-shard-tokens-0", ["corpus", "ingest", "b", "{in}/good.txt", "--shard-tokens", "0"], INVALID, "--shard-tokens must be positive, not 0 — give the tokens per shard, e.g. --shard-tokens 1000000"),
    ("ingest-processes-0", ["corpus", "ingest", "b", "{in}/good.txt", "--processes", "0"], INVALID, "--processes must be at least 1, not 0 — use --processes 1"),
    ("ingest-max-line-bytes-0", ["corpus", "ingest", "b", "{in}/good.txt", "--max-line-bytes", "0"], INVALID, "--max-line-bytes must be positive, not 0 — give the longest line (document) to accept, in bytes"),
    ("ingest-max-token-length-0", ["corpus", "ingest", "b", "{in}/good.txt", "--max-token-length", "0"], INVALID, "tokenizer option --max-token-length must be an integer >= 1, not 0 — give the longest token to keep, in characters, e.g. --max-token-length 50"),
    ("ingest-min-sentence-tokens-negative", ["corpus", "ingest", "b", "{in}/good.txt", "--min-sentence-tokens", "-1"], INVALID, "tokenizer option --min-sentence-tokens must be an integer >= 1, not -1 — give the fewest tokens"),
    # vocab encode / export: files and outputs
    ("encode-directory", ["vocab", "encode", "v", "{in}/out_dir"], INVALID, "out_dir is a directory"),
    ("encode-binary-file", ["vocab", "encode", "v", "{in}/random.txt"], INVALID, "random.txt looks binary"),
    ("encode-binary-file-hint", ["vocab", "encode", "v", "{in}/random.txt"], INVALID, "not UTF-8 text — convert it to UTF-8 first, e.g. iconv -f latin1 -t utf-8"),
    ("encode-utf16-file", ["vocab", "encode", "v", "{in}/utf16.txt"], INVALID, "utf16.txt looks binary (it has NUL bytes), not UTF-8 text — convert it to UTF-8 first, e.g. iconv -f utf-16 -t utf-8"),
    ("encode-missing-file", ["vocab", "encode", "v", "{in}/nosuch.txt"], INVALID, "nosuch.txt does not exist — check the path, or pass - (or nothing) to read standard input"),
    ("export-into-missing-dir", ["vocab", "export", "v", "--out", "{in}/nosuch/dir/v.txt"], INVALID, "nosuch/dir does not exist"),
    ("export-onto-a-directory", ["vocab", "export", "v", "--out", "{in}/out_dir"], INVALID, "out_dir is a directory"),
    ("model-export-onto-a-directory", ["model", "export", "m", "--out", "{in}/out_dir"], INVALID, "out_dir"),
    # configuration
    ("config-file-missing", ["--config", "{in}/nosuch.toml", "corpus", "list"], CONFIG, "nosuch.toml does not exist — check the path given to --config"),
    ("config-file-malformed", ["--config", "{in}/bad.toml", "corpus", "list"], CONFIG, "bad.toml is not valid TOML"),
    ("config-file-binary", ["--config", "{in}/random.txt", "corpus", "list"], CONFIG, "random.txt is not UTF-8 text"),
    ("connect-timeout-negative", ["--connect-timeout", "-1", "corpus", "list"], CONFIG, "--connect-timeout must be a positive number of seconds, not -1 — e.g. --connect-timeout 5"),
    ("auth-without-colon", ["--auth", "nocolon", "corpus", "list"], CONFIG, "--auth must look like user:password — give ZooKeeper digest credentials as USER:PASSWORD"),
    ("acl-others-bad", ["--auth", "u:p", "--acl-others", "write", "corpus", "list"], CONFIG, "--acl-others must be 'read' or 'none', not 'write' — read: others may read"),
    # usage errors (click) must also be one line
    ("similar-topn-0", ["model", "similar", "m", "word", "-n", "0"], INVALID, "topn"),
    ("gc-older-than-negative", ["gc", "--older-than", "-1", "--dry-run"], INVALID, "older-than"),
    ("vocab-build-missing-corpus", ["vocab", "build", "v"], USAGE, "--corpus"),
    ("unknown-option", ["corpus", "list", "--nosuch"], USAGE, "--nosuch"),
    ("unknown-command", ["corpus", "nosuch"], USAGE, "No such command 'nosuch' — see: "),  # one stop: not "'nosuch'. — see"
    ("missing-argument", ["vocab", "build", "--corpus", "c"], USAGE, "Missing argument 'name' — see: "),
    ("root-option-type", ["--zk-port", "abc", "status"], USAGE, "zk-port"),
    ("status-interval-too-short", ["status", "--watch", "--interval", "0.01"], INVALID, "--interval"),
    ("model-eval-workers-negative", ["model", "eval", "m", "--workers", "-1"], INVALID, "--workers"),
    ("ensemble-zero-servers", ["zk", "ensemble", "start", "--servers", "0"], INVALID, "--servers"),
    ("ensemble-too-many-servers", ["zk", "ensemble", "status", "--servers", "10"], INVALID, "--servers"),
    ("config-show-bad-acl", ["--auth", "u:p", "--acl-others", "all", "config", "show"], CONFIG, "--acl-others must be 'read' or 'none', not 'all'"),
    ("similar-topn-not-an-int", ["model", "similar", "m", "word", "-n", "x"], INVALID, "topn"),
    ("model-eval-unknown-benchmark", ["model", "eval", "m", "--only", "bogus"], INVALID, "choose from: wordsim353, simlex999, analogy, sentiment, heldout"),
    ("vocab-show-head-negative", ["vocab", "show", "v", "--head", "-1"], INVALID, "--head"),
    ("vocab-diff-limit-negative", ["vocab", "diff", "v", "v1", "v1", "--limit", "-1"], INVALID, "--limit"),
    ("ensemble-status-none-serving", ["zk", "ensemble", "status", "--base-port", "12990"], UNAVAILABLE, "no member of the local ensemble answers"),
]


def _argv(argv: list[str], files: Path) -> list[str]:
    return [a.replace("{in}", str(files)) for a in argv]


def _run_case(world, argv, code, needle) -> None:
    cluster = world["cluster"]
    before = _snapshot(cluster)
    res = world["cli"](*_argv(argv, world["files"]))
    _check(res.exit_code, res.stdout, res.stderr, code, needle.replace("{in}", str(world["files"])))
    _assert_unchanged(cluster, before)


@pytest.mark.parametrize("argv,code,needle", [c[1:] for c in NAMES], ids=[c[0] for c in NAMES])
def test_wrong_names_versions_tags(world, argv, code, needle):
    _run_case(world, argv, code, needle)


@pytest.mark.parametrize("flags,needle", HYPER)
def test_absurd_training_parameters_create_no_job(world, flags, needle, request):
    job = f"x-{request.node.callspec.id}"  # a job wrongly created must not turn the next case into a resume
    argv = [a.replace("{job}", job) for a in _TRAIN] + (["--workers", "0"] if "--workers" not in flags else []) + flags
    _run_case(world, argv, INVALID, needle)


@pytest.mark.parametrize("argv,code,needle", [c[1:] for c in INPUTS], ids=[c[0] for c in INPUTS])
def test_bad_paths_encodings_data_options(world, argv, code, needle):
    _run_case(world, argv, code, needle)


# -- wrong chroot: a reachable ZooKeeper without nlpzk data ---------------------------------------

EMPTY_CHROOT = [
    (["corpus", "show", "c"], NOT_FOUND, "unknown corpus 'c'"),
    (["corpus", "verify", "c"], NOT_FOUND, "unknown corpus 'c'"),
    (["vocab", "show", "v"], NOT_FOUND, "unknown vocabulary 'v'"),
    (["vocab", "lookup", "v", "the"], NOT_FOUND, "unknown vocabulary 'v'"),
    (["vocab", "tag", "v", "v1", "stable"], NOT_FOUND, "unknown vocabulary 'v'"),
    (["vocab", "build", "v", "--corpus", "c"], NOT_FOUND, "unknown corpus 'c'"),
    (["vocab", "list", "v"], NOT_FOUND, "unknown vocabulary 'v'"),
    (["model", "show", "m"], NOT_FOUND, "unknown model 'm'"),
    (["model", "similar", "m", "word"], NOT_FOUND, "unknown model 'm'"),
    (["train", "status", "j"], NOT_FOUND, "unknown training job 'j'"),
    (["train", "resume", "j", "--workers", "0"], NOT_FOUND, "unknown training job 'j'"),
    (["train", "run", "j", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait"], NOT_FOUND, "unknown corpus 'c'"),
    (["model", "register", "j"], NOT_FOUND, "unknown training job 'j'"),
]


def test_wrong_chroot_says_unknown_and_registers_nothing(world, zk_server, tmp_path):
    """The store is the module's (full of files); the chroot is empty: nothing crashes, nothing appears."""
    config = testing.config_for(zk_server.address, world["config"].store_uri)
    env = testing.env_for(config, tmp_path / "state")
    cli = Cli(env)
    with testing.Cluster.connect(config) as empty:
        before = _snapshot(empty)
        for argv, code, needle in EMPTY_CHROOT:
            res = cli(*argv)
            try:
                _check(res.exit_code, res.stdout, res.stderr, code, needle)
            except AssertionError as exc:
                raise AssertionError(f"{argv}: {exc}") from None
            _assert_unchanged(empty, before)
        # listing an empty chroot is not an error
        for argv in (["corpus", "list", "--json"], ["vocab", "list", "--json"], ["model", "list", "--json"], ["train", "list", "--json"]):
            res = cli(*argv)
            assert res.exit_code == 0 and res.stdout.strip() == "[]", (argv, res.stdout, res.stderr)


# -- unreachable ZooKeeper: real processes, a port nobody listens on -----------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UNREACHABLE = [
    ["corpus", "list"],
    ["corpus", "ingest", "b", "{in}/good.txt"],
    ["vocab", "lookup", "v", "the"],
    ["train", "run", "x", "--corpus", "c", "--vocab", "v", "--workers", "0", "--no-wait"],
    ["model", "similar", "m", "word"],
    ["status", "--json"],
    ["gc", "--dry-run"],
    ["train", "list"],
    ["zk", "status"],
    ["demo"],
]


def test_unreachable_zookeeper_fails_fast_with_one_line(world, tmp_path):
    port = _free_port()
    env = dict(world["env"])
    env.update(NLPZK_ZK=f"127.0.0.1:{port}/nlpzk", NLPZK_STATE_DIR=str(tmp_path / "state"))
    store_before = _files(world["cluster"])
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "nlpzk", "--connect-timeout", "1", *_argv(argv, world["files"])],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for argv in UNREACHABLE
    ]
    for argv, proc in zip(UNREACHABLE, procs):
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == UNAVAILABLE, (argv, proc.returncode, err)
        line = one_line_error(err)
        assert f"127.0.0.1:{port}" in line, line
        assert " — check " in line, line  # what is wrong, then what to do
    assert _files(world["cluster"]) == store_before


# -- standard input and environment ---------------------------------------------------------------


def test_encode_refuses_invalid_utf8_on_stdin(world):
    """As corpus ingest reads text: a legacy encoding's few bad bytes are replaced and counted (refused
    with --strict), binary is refused. A real process too: in the C locale Python's text stdin turns
    bad bytes into surrogates."""
    before = _snapshot(world["cluster"])
    res = world["cli"].runner.invoke(_app(), ["vocab", "encode", "v", "--strict"], env=world["env"], input=b"caf\xe9 au lait\n", catch_exceptions=False)
    _check(res.exit_code, res.stdout, res.stderr, INVALID, "standard input is not UTF-8 text (byte 4)")
    res = world["cli"].runner.invoke(_app(), ["vocab", "encode", "v"], env=world["env"], input=b"caf\xe9 au lait\n", catch_exceptions=False)
    assert res.exit_code == 0 and "replaced 1 invalid UTF-8 sequence(s) by U+FFFD (use --strict to refuse them)" in res.stderr
    env = dict(world["env"], LC_ALL="C", LANG="C")
    proc = subprocess.run([sys.executable, "-m", "nlpzk", "vocab", "encode", "v"], input=b"\xff\xfeh\x00i\x00", env=env, cwd=ROOT, capture_output=True, timeout=120)
    _check(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), INVALID, "standard input looks binary (it has NUL bytes), not UTF-8 text")
    _assert_unchanged(world["cluster"], before)


def _app():
    from cli.main import app

    return app


@pytest.mark.parametrize(
    "variable,value,needle",
    [
        ("NLPZK_CONNECT_TIMEOUT", "abc", "NLPZK_CONNECT_TIMEOUT is not a valid float: 'abc' — give a number of seconds"),
        ("NLPZK_SESSION_TIMEOUT", "-3", "NLPZK_SESSION_TIMEOUT must be a positive number of seconds, not -3 — e.g. --session-timeout 10"),
        ("NLPZK_ZK", "host:notaport", "bad ZooKeeper address 'host:notaport'"),
        ("NLPZK_ZK", "host:\u00b2", "bad ZooKeeper address 'host:\u00b2' — use host:port"),
        ("NLPZK_ZK", "a:2181,host:70000", "bad ZooKeeper address 'host:70000': 70000 is not a TCP port — use a port from 1 to 65535"),
        ("NLPZK_ZK_PORT", "70000", "port"),
        ("NLPZK_CONFIG", "/nonexistent/nlpzk.toml", "/nonexistent/nlpzk.toml (from NLPZK_CONFIG) does not exist — fix the path in NLPZK_CONFIG, or unset it"),
    ],
)
def test_bad_environment_is_a_configuration_error(world, variable, value, needle):
    before = _snapshot(world["cluster"])
    res = Cli(dict(world["env"], **{variable: value}))("corpus", "list")
    _check(res.exit_code, res.stdout, res.stderr, CONFIG, needle)
    _assert_unchanged(world["cluster"], before)
