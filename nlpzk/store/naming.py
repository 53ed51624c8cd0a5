"""Every file name in the store, in one module (like ``datasets/naming.py``)."""

from __future__ import annotations

from ..zk import paths


def corpus_dir(corpus: str) -> str:
    return f"corpora/{paths.check_name('corpus', corpus)}"


def shard_file(corpus: str, shard_id: str) -> str:
    return f"{corpus_dir(corpus)}/shards/{shard_id}.parquet"


def shard_id(input_key: str, seq: int) -> str:
    """Shards are numbered per input file, so a re-run of the same input rewrites the same names."""
    return f"{input_key}-{seq:05d}"


def input_hashes(corpus: str, input_key: str) -> str:
    """The document-hash sidecar of one ingested input (dedup across files and runs)."""
    return f"{corpus_dir(corpus)}/inputs/{input_key}.hashes.parquet"


def vocab_dir(name: str) -> str:
    return f"vocab/{paths.check_name('vocabulary', name)}"


def vocab_file(name: str, version: int, nonce: str) -> str:
    """A version's table. ``nonce`` keeps two racing builders from writing the same file name."""
    return f"{vocab_dir(name)}/{paths.version_name(version)}-{nonce}.parquet"


def job_dir(job: str) -> str:
    return f"jobs/{paths.check_name('job', job)}"


def job_probe(job: str, worker: str) -> str:
    """A small file each worker writes when it joins, named in its membership node: a worker that
    cannot see another's probe knows the two are not on one store (a copy, another mount)."""
    return f"{job_dir(job)}/probes/{worker}"


def round_params(job: str, r: int, nonce: str) -> str:
    return f"{job_dir(job)}/rounds/{r:08d}/params-{nonce}.npy"


def model_dir(name: str) -> str:
    return f"models/{paths.check_name('model', name)}"


def model_vectors(name: str, nonce: str) -> str:
    """A model version's vectors as an Arrow IPC file (token, count, vector rows; memory-mappable)."""
    return f"{model_dir(name)}/{nonce}.arrow"


def contribution_counts(job: str, r: int, name: str) -> str:
    """Per-word occurrence counts that go with contribution ``name`` (for per-word weighted merges)."""
    return f"{job_dir(job)}/rounds/{r:08d}/contrib/{name}.counts.npy"


def job_spare(job: str, name: str) -> str:
    """A tidied round file kept for its page-cache pages: the job's workers write their next round
    files over it (``Store.atomic_output(reuse=)``) instead of into freshly allocated pages."""
    return f"{job_dir(job)}/spare/{name}"


def contribution_file(job: str, r: int, name: str) -> str:
    return f"{job_dir(job)}/rounds/{r:08d}/contrib/{name}.npy"


def round_log(job: str, r: int) -> str:
    """Every commit of a merged round (worker, shards, words): the full record behind the round's znode."""
    return f"{job_dir(job)}/rounds/{r:08d}/log.json"


def job_shards(job: str, nonce: str) -> str:
    """The shard list a job froze at creation."""
    return f"{job_dir(job)}/shards-{nonce}.json"


def job_vectors(job: str, nonce: str) -> str:
    """A job's final vectors (gensim KeyedVectors, pickled)."""
    return f"{job_dir(job)}/vectors-{nonce}.kv"


def round_params_part(job: str, r: int, part: int, nonce: str) -> str:
    """One row range of round ``r``'s global parameters, written by the worker that reduced it."""
    return f"{job_dir(job)}/rounds/{r:08d}/params-{part:04d}-{nonce}.npy"
