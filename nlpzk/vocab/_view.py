"""``VocabView``: one vocabulary version loaded for lookups, optionally following a tag.

Opening reads the Parquet table from a memory map into Arrow buffers (checking its sha256 on the
way); nothing is turned into Python objects until asked. The token -> id dict behind single lookups
is built on first use, once per loaded version.

Everything a view answers comes from one immutable snapshot, swapped in a single assignment when a
followed tag moves: a reader that started on the old version finishes on it, and nobody ever sees a
half-loaded table.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from kazoo.handlers.threading import KazooTimeoutError

from ..cluster import Cluster, default_cluster, public
from ..errors import IntegrityError, InvalidInputError, NotFoundError, StoreError, ZkUnavailableError
from ..zk import paths, registry
from ..zk.rounds import CONNECTION_ERRORS
from ..zk.tagwatch import TagWatch
from . import _table

log = logging.getLogger("nlpzk.vocab")

UNK = "<unk>"

# how long follow() waits to learn whether the vocabulary still exists (a connection that drops just
# then would otherwise hold the request up to REQUEST_TIMEOUT; unanswered, the tag is followed)
_FOLLOW_CHECK_TIMEOUT = 2.0


def parse_spec(spec: str) -> tuple[str, int | None, str | None]:
    """``"wiki@v3"`` -> ``("wiki", 3, None)``; ``"wiki:stable"`` -> ``("wiki", None, "stable")``; ``"wiki"`` -> ``("wiki", None, None)``."""
    if "@" in spec:
        name, _, v = spec.partition("@")
        return paths.check_name("vocabulary", name), paths.parse_version(v), None
    if ":" in spec:
        name, _, tag = spec.partition(":")
        return paths.check_name("vocabulary", name), None, paths.check_name("tag", tag)
    return paths.check_name("vocabulary", spec), None, None


# what every version document has (docs/architecture.md), checked where a version is opened
VERSION_KEYS = ("path", "sha256", "rows", "params")


def _base(name: str) -> str:
    return paths.vocab(name)


def resolve(cluster: Cluster, name: str, version: int | str | None = None, tag: str | None = None) -> tuple[int, dict[str, Any]]:
    """The version number and znode document meant by ``version`` or ``tag`` (default ``latest``)."""
    if isinstance(version, str):
        version = paths.parse_version(version)
    elif version is not None:
        if not _is_int(version):
            raise InvalidInputError(f"{version!r} is not a version", hint="versions look like v7 or 7")
        version = int(version)
    number = registry.resolve_version(cluster.zk, _base(name), "vocabulary", name, version, tag)
    doc, _ = registry.get_json(cluster.zk, paths.vocab_version(name, number), what=f"vocabulary {name!r} v{number}", required=VERSION_KEYS)
    return number, doc


def load_table(cluster: Cluster, name: str, number: int, doc: dict[str, Any], *, verify: bool = True) -> pa.Table:
    """Read a version's table from the store, memory-mapped when the store is local; check its sha256."""
    store = cluster.store
    rel = doc["path"]
    what = f"vocabulary {name!r} v{number}"
    local = store.local_path(rel)
    try:
        if local is not None:
            buf = pa.memory_map(local, "r").read_buffer()
        else:
            buf = pa.py_buffer(store.read_bytes(rel))
    except FileNotFoundError:
        raise store.missing(rel, f"{what}: its file {rel} is missing from the store", hint="restore the file or build a new version") from None
    except IntegrityError as exc:
        raise IntegrityError(f"{what}: {exc.message}", hint="restore the file or build a new version") from None
    except OSError as exc:
        if local is not None and os.path.isdir(local):  # a directory in its place (pyarrow's OSError carries no errno)
            raise IntegrityError(f"{what}: its file {rel} cannot be read: {exc}", hint="restore the file or build a new version") from None
        # an I/O error or a permission says nothing about the file (a remote store raises StoreError)
        raise StoreError(f"store error while reading {what}'s file {rel}: {exc}", hint="check the store (permissions, the disk or mount), then try again") from None
    if verify:
        actual = hashlib.sha256(memoryview(buf)).hexdigest()
        if actual != doc.get("sha256"):
            raise IntegrityError(
                f"{what}: its file {rel} fails its checksum (sha256 {actual[:12]}..., registry says {str(doc.get('sha256'))[:12]}...)",
                hint="restore the file or build a new version",
            )
    try:
        return _table.read_table(pa.BufferReader(buf))
    except IntegrityError as exc:
        raise IntegrityError(f"{what}: {exc.message}", hint=exc.hint) from None


class _Snapshot:
    """One loaded version. Immutable except for the lazily built lookup dict."""

    __slots__ = ("name", "version", "doc", "tokens", "counts", "active", "specials", "unk_id", "_index", "_lock")

    def __init__(self, name: str, version: int, doc: dict[str, Any], table: pa.Table) -> None:
        self.name = name
        self.version = version
        self.doc = doc
        self.tokens: pa.StringArray = table["token"].combine_chunks()
        self.counts: np.ndarray = table["count"].combine_chunks().to_numpy()
        self.active: np.ndarray = table["active"].combine_chunks().to_numpy(zero_copy_only=False)
        self.specials: list[str] = list(doc.get("params", {}).get("specials", ()))
        self._index: dict[str, int] | None = None
        self._lock = threading.Lock()
        self.unk_id = -1
        if UNK in self.specials:
            pos = pc.index(self.tokens, UNK).as_py()
            self.unk_id = pos if pos is not None else -1

    def __reduce__(self):
        # a copy (pickled for a worker process) is its arrays; the lookup dict is rebuilt there on first use
        table = pa.table({"token": self.tokens, "count": self.counts, "active": self.active})
        return (_Snapshot, (self.name, self.version, self.doc, table))

    def index(self) -> dict[str, int]:
        idx = self._index
        if idx is None:
            with self._lock:
                if self._index is None:
                    self._index = dict(zip(self.tokens.to_pylist(), range(len(self.tokens))))
                idx = self._index
        return idx


def _lookup_arrow(snap: _Snapshot, values: pa.Array, oov: int) -> np.ndarray:
    """Ids of an Arrow string array (int32, ``oov`` where unknown)."""
    # Arrow hashes a vocabulary entry in about a quarter of the time one Python dict lookup of an
    # Arrow value takes, so the join pays off from a quarter of the vocabulary's size.
    if len(values) * 4 < len(snap.tokens):
        return np.fromiter(map(snap.index().get, values.to_pylist(), itertools.repeat(oov)), dtype=np.int32, count=len(values))
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    pos = pc.index_in(values, value_set=snap.tokens)
    return pc.fill_null(pos, oov).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)


def _is_int(value: Any) -> bool:
    """A Python or numpy integer, not a bool (``True`` would pass for id or version 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _oov_id(snap: _Snapshot, oov: Any) -> int:
    if oov is None:
        return snap.unk_id
    if not _is_int(oov) or not -(2**31) <= oov < 2**31:
        raise InvalidInputError(f"oov must be an id (an int32), not {oov!r}", hint="e.g. -1, or the id of a special token; leave it out for <unk>'s id (-1 without it)")
    return int(oov)


def _not_a_token(item: Any) -> InvalidInputError:
    if item is None:
        return InvalidInputError("cannot encode null tokens")
    if isinstance(item, (bytes, bytearray)):
        return InvalidInputError("encode() takes str tokens, not bytes", hint="decode them first, e.g. [t.decode('utf-8') for t in tokens]")
    return InvalidInputError(f"encode() takes a flat sequence of str tokens, not {type(item).__name__} items ({item!r:.60})", hint="encode a batch of sentences one sentence at a time")


def _check_arrow_strings(type_: pa.DataType) -> None:
    if not (pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_string_view(type_)):
        raise InvalidInputError(f"encode() takes str tokens, not an Arrow array of {type_}", hint="pass an Arrow string array, e.g. a shard's tokens")


class VocabView:
    """A vocabulary version for lookups: token <-> id, counts, batch encode/decode.

    >>> v = Vocabulary.open("wiki", tag="stable", cluster=cluster)   # doctest: +SKIP
    >>> v["the"], v.token(7), v.encode(["the", "cat"])             # doctest: +SKIP
    >>> v.follow("stable")   # switch to whatever 'stable' points at, as it moves  # doctest: +SKIP

    Unknown tokens: ``view[t]`` raises KeyError, ``id(t)`` gives ``default``, ``count(t)`` 0, ``encode``
    the ``oov`` id. A view is safe to share between threads (each call answers from one loaded
    version, see :meth:`follow`). Pickled (e.g. for DataLoader workers started with ``spawn``) it
    travels as its version's table, without the cluster: the copy stays at that version and cannot
    follow a tag, like a copy made by ``fork``.
    """

    def __init__(self, cluster: Cluster | None, snapshot: _Snapshot) -> None:
        self.cluster = cluster  # (None in an unpickled copy)
        self._snap = snapshot
        self._watch: TagWatch | None = None
        self._followed: str | None = None
        self._on_change: Callable[["VocabView"], None] | None = None
        self._changed = threading.Condition()
        self._generation = 0  # bumped by follow/unfollow: a load begun for an earlier watch is not swapped in
        #: The error of the last failed reload while following (the view kept its version), else None.
        self.follow_error: Exception | None = None

    # -- identity -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._snap.name

    @property
    def version(self) -> int:
        return self._snap.version

    @property
    def doc(self) -> dict[str, Any]:
        """The version's znode document: path, sha256, size, rows, parent, corpus, shards, params, created."""
        return self._snap.doc

    @property
    def tokens(self) -> pa.StringArray:
        """Tokens in id order (an Arrow string array; ``tokens[i].as_py()`` is id ``i``)."""
        return self._snap.tokens

    @property
    def counts(self) -> np.ndarray:
        """Corpus counts in id order (int64, read-only: a view of the loaded table)."""
        return self._snap.counts

    @property
    def active(self) -> np.ndarray:
        """In id order: False where a token is kept only for id stability (its count fell under min_count)."""
        return self._snap.active

    @property
    def min_count(self) -> int:
        return int(self._snap.doc.get("params", {}).get("min_count", 1))

    @property
    def specials(self) -> list[str]:
        return list(self._snap.specials)

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>`` when the version has it as a special, else -1 (what ``encode`` gives unknown tokens)."""
        return self._snap.unk_id

    def pinned(self) -> "VocabView":
        """A view of the version this one has now, that never follows: several calls answer from one version.

        >>> snap = view.pinned(); ids, counts = snap.encode(batch), snap.counts   # doctest: +SKIP
        """
        return VocabView(self.cluster, self._snap)

    def __reduce__(self):
        # not the cluster (a live ZooKeeper client) nor the tag watch: a copy is this version's table
        return (VocabView, (None, self._snap))

    def __repr__(self) -> str:
        following = f", following {self._followed!r}" if self._followed else ""
        return f"VocabView({self.name!r}, v{self.version}, {len(self)} tokens{following})"

    # -- single lookups -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._snap.tokens)

    def __getitem__(self, token: str) -> int:
        return self._snap.index()[token]

    def __iter__(self):
        """Tokens in id order (without this, Python would iterate by calling ``view[0]``, ``view[1]``...)."""
        return iter(self._snap.tokens.to_pylist())

    def __contains__(self, token: object) -> bool:
        return token in self._snap.index()

    def id(self, token: str, default: int | None = None) -> int | None:
        """The id of ``token``, or ``default`` when it is not in the vocabulary (``view[token]`` raises KeyError instead)."""
        return self._snap.index().get(token, default)

    def token(self, id: int) -> str:
        """The token with id ``id`` (an int, as ``view[token]`` gives); IndexError outside the vocabulary."""
        if not _is_int(id):
            # (a str compared with 0 raised a bare TypeError; True was taken as id 1)
            raise InvalidInputError(f"token() takes an integer id, not {type(id).__name__} ({id!r:.40})", hint="pass an int, e.g. view.token(7); view.id(token) goes the other way")
        tokens = self._snap.tokens
        if not 0 <= id < len(tokens):
            raise IndexError(f"id {id} is outside vocabulary {self.name!r} v{self.version} (0..{len(tokens) - 1})")
        return tokens[id].as_py()

    def count(self, token: str) -> int:
        """Corpus count of ``token`` in this version; 0 when it is not in the vocabulary."""
        snap = self._snap
        i = snap.index().get(token)
        return 0 if i is None else int(snap.counts[i])

    # -- batches ------------------------------------------------------------------------------

    def encode(self, tokens: Iterable[str] | np.ndarray | pa.Array | pa.ChunkedArray, oov: int | None = None) -> np.ndarray:
        """Ids (int32) of ``tokens``; unknown tokens get ``oov`` (default: :attr:`unk_id`, -1 without ``<unk>``).

        Tokens are matched exactly, as they were counted: no case folding, no Unicode normalisation
        (``"café"`` in NFD is another token than in NFC). Every item must be a ``str`` (an Arrow
        string array): None, bytes or nested lists raise InvalidInputError, whatever the batch size.

        A large batch (Arrow input of at least a quarter, a list at least the size of the vocabulary)
        is joined in Arrow (``index_in``: one hash table of the vocabulary, probed in C); a shorter one
        goes through the lookup dict
        (``map(dict.get, ...)``), so a 10-token sentence never pays for hashing a 1M-token vocabulary.
        Dictionary-encoded Arrow input (as read from shards) is looked up once per distinct token.
        """
        snap = self._snap
        oov = _oov_id(snap, oov)
        if isinstance(tokens, (pa.Array, pa.ChunkedArray)):
            arr = tokens.combine_chunks() if isinstance(tokens, pa.ChunkedArray) else tokens
            if arr.null_count:
                raise InvalidInputError("cannot encode null tokens")
            if isinstance(arr, pa.DictionaryArray):
                _check_arrow_strings(arr.dictionary.type)
                return _lookup_arrow(snap, arr.dictionary, oov)[arr.indices.to_numpy(zero_copy_only=False)]
            # (another type would be cast to strings on the Arrow path: ints 1, 2 looked up as "1", "2")
            _check_arrow_strings(arr.type)
            return _lookup_arrow(snap, arr, oov)
        if isinstance(tokens, str):
            raise InvalidInputError("encode() takes a sequence of tokens, not one string", hint="use view.id(token) or encode([token])")
        if isinstance(tokens, np.ndarray):
            if tokens.ndim != 1:
                raise InvalidInputError(f"encode() takes a flat sequence of tokens, not an array of shape {tokens.shape}", hint="encode a batch of sentences one sentence at a time")
            tokens = tokens.tolist()
        elif not isinstance(tokens, (list, tuple)):
            tokens = list(tokens)
        if len(tokens) >= len(snap.tokens):
            try:
                arr = pa.array(tokens)  # (inferred: bytes give a binary array, which pa.string() would take as UTF-8)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                bad = [t for t in tokens if not isinstance(t, str)][:1]
                raise (_not_a_token(bad[0]) if bad else InvalidInputError(f"encode() takes str tokens: {exc}")) from None
            if arr.null_count:
                raise InvalidInputError("cannot encode null tokens")
            if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
                raise _not_a_token(next(t for t in tokens if isinstance(t, (bytes, bytearray))))
            _check_arrow_strings(arr.type)
            return _lookup_arrow(snap, arr, oov)
        try:
            ids = np.fromiter(map(snap.index().get, tokens, itertools.repeat(oov)), dtype=np.int32, count=len(tokens))
        except TypeError:  # an unhashable item: a list (a batch of sentences?)
            raise _not_a_token(next(t for t in tokens if not isinstance(t, str))) from None
        # only a str is a key of the lookup dict, so anything else came out as oov: refuse it as the Arrow path does
        for i in np.flatnonzero(ids == oov).tolist():
            if not isinstance(tokens[i], str):
                raise _not_a_token(tokens[i])
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray, oov: str | None = None) -> list[str | None]:
        """Tokens of ``ids``; a negative id (an unknown token from :meth:`encode`) becomes ``oov``.

        ``ids`` are integers (a list, or a numpy array of an integer dtype; floats, bools and strings
        raise InvalidInputError); an id past the end raises IndexError.
        """
        snap = self._snap
        n = len(snap.tokens)
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise InvalidInputError(f"decode() takes a flat sequence of ids, got shape {arr.shape}")
        if not arr.size:
            return []
        if arr.dtype.kind not in "iu":
            items = arr.tolist()
            bad = [i for i in items if not _is_int(i)][:1]
            if bad:
                raise InvalidInputError(f"decode() takes integer ids, not {type(bad[0]).__name__} ({bad[0]!r:.40})", hint="pass ints, e.g. what encode() returned")
            # Python ints beyond int64 (numpy keeps them as objects): past the end, or negative (unknown)
            top = max(items)
            arr = np.array([min(max(i, -1), n) for i in items], dtype=np.int64)
        else:
            top = arr.max()
        if top >= n:
            raise IndexError(f"id {int(top)} is outside vocabulary {snap.name!r} v{snap.version} (0..{n - 1})")
        arr = arr.astype(np.int64)
        neg = arr < 0
        out = pc.take(snap.tokens, pa.array(np.where(neg, 0, arr), mask=neg)).to_pylist()
        if oov is not None and neg.any():
            out = [oov if t is None else t for t in out]
        return out

    # -- following a tag ----------------------------------------------------------------------

    @public
    def follow(self, tag: str = "latest", on_change: Callable[["VocabView"], None] | None = None) -> "VocabView":
        """Keep this view on whatever ``tag`` points at, switching atomically when it moves.

        A new version is loaded (and checksummed) off to the side and swapped in whole: one call
        (``encode``, ``decode``, ``view[t]``) answers from one version, but two calls may straddle a
        switch (take :meth:`pinned` for several). If it cannot be loaded, the view keeps its current
        version and records the error in :attr:`follow_error` (cleared by the next switch, or when
        the tag comes back to the view's version). A deleted tag keeps the view where it is; when the tag is created again it is
        followed again. ``on_change(view)`` is called after each switch (on the watch's thread; keep
        it short). Following needs the cluster open: it stops when the cluster is closed. It returns
        at once, also while ZooKeeper is unreachable: the view then keeps its version and reads the
        tag when ZooKeeper answers again.

        A tag that does not exist yet is followed (the view switches once it is created), but a
        vocabulary that no longer exists (deleted since the view was opened) is NotFoundError at
        once: waiting for its tag would most likely wait for ever. (Not checked while ZooKeeper is
        unreachable.)
        """
        paths.check_name("tag", tag)
        if self.cluster is None:
            raise InvalidInputError(
                f"this view of {self.name!r} v{self.version} is an unpickled copy, without a cluster: it cannot follow a tag",
                hint="open the vocabulary in this process to follow it: Vocabulary.open(name, tag=TAG, cluster=cluster).follow(TAG)",
            )
        if self.cluster.closed:  # kazoo's watch would be set up silently and never fire
            raise ZkUnavailableError(f"the cluster of this view of {self.name!r} is closed: it cannot follow a tag", hint="follow while the cluster is open (inside its with block)")
        if self._vocabulary_gone():
            raise NotFoundError(f"unknown vocabulary {self.name!r} (deleted since this view of v{self.version} was opened): it has no tag to follow", hint="see: nlpzk vocab list")
        self.unfollow()
        generation = self._generation
        self._followed = tag
        self._on_change = on_change
        self._watch = TagWatch(self.cluster.zk, paths.vocab_tag(self.name, tag), lambda number: self._tag_moved(number, generation))
        return self

    def _vocabulary_gone(self) -> bool:
        """Whether the view's vocabulary node is known not to exist. Asked only while connected, and
        for a moment: ``follow`` never blocks on an unreachable ZooKeeper (the tag watch reads later)."""
        if not self.cluster.watch.connected.is_set():
            return False
        try:
            return self.cluster.zk.exists_async(paths.vocab(self.name)).get(timeout=_FOLLOW_CHECK_TIMEOUT) is None
        except (KazooTimeoutError, *CONNECTION_ERRORS):
            return False

    def unfollow(self) -> None:
        """Stop following: the view stays at its version, even if a load of another one is still running."""
        with self._changed:
            self._generation += 1
        if self._watch is not None:
            self._watch.stop()  # (waits a few seconds at most for a load in flight; that load is then dropped)
        self._watch = None
        self._followed = None

    close = unfollow

    @property
    def following(self) -> str | None:
        """The tag this view follows, or None."""
        return self._followed

    def _tag_moved(self, number: int | None, generation: int) -> None:
        if number is None:
            return  # a deleted tag keeps the view where it is
        snap = None
        try:
            doc, _ = registry.get_json(self.cluster.zk, paths.vocab_version(self.name, number), what=f"vocabulary {self.name!r} v{number}")
            # the same number can hold another table: a vocabulary deleted and built again numbers from v1
            if number != self._snap.version or doc.get("sha256") != self._snap.doc.get("sha256"):
                snap = _Snapshot(self.name, number, doc, load_table(self.cluster, self.name, number, doc))
                if self._snap._index is not None:
                    snap.index()  # readers already use single lookups: build the dict here, not on their first call
        except Exception as exc:  # keep serving the version we have; the caller can inspect follow_error
            with self._changed:
                if generation == self._generation:
                    log.warning("vocabulary %s: cannot switch to v%s: %s", self.name, number, exc)
                    self.follow_error = exc
            return
        with self._changed:
            if generation != self._generation:
                return  # unfollowed (or following another tag) while this version loaded
            self.follow_error = None  # (also when the tag came back to the version the view has)
            if snap is None:
                return
            self._snap = snap
            self._changed.notify_all()
        if self._on_change is not None:
            self._on_change(self)

    def wait_for_version(self, version: int, timeout: float) -> bool:
        """Block until the followed view is at ``version`` (True) or ``timeout`` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._snap.version == version, timeout)

    def __enter__(self) -> "VocabView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unfollow()


@public
class Vocabulary:
    """Entry point for vocabulary versions.

    >>> Vocabulary.open("wiki")                 # the version tagged 'latest'   # doctest: +SKIP
    >>> Vocabulary.open("wiki", version=3)      # or "wiki@v3", "wiki:stable"   # doctest: +SKIP
    """

    @staticmethod
    def open(
        name: str,
        version: int | str | None = None,
        tag: str | None = None,
        *,
        cluster: Cluster | None = None,
        verify: bool = True,
    ) -> VocabView:
        """Load one version: ``version`` if given, else ``tag`` (default ``latest``).

        ``name`` may also be a spec: ``"wiki@v3"``, ``"wiki:stable"``. The tag is read once: the view
        stays at that version until you call ``.follow(tag)`` (see :class:`VocabView`).
        """
        name, version, tag = paths.open_args(name, version, tag, parse_spec)
        paths.check_name("vocabulary", name)
        cluster = cluster or default_cluster()
        number, doc = resolve(cluster, name, version, tag)
        return VocabView(cluster, _Snapshot(name, number, doc, load_table(cluster, name, number, doc, verify=verify)))

    @staticmethod
    def names(*, cluster: Cluster | None = None) -> list[str]:
        """Names of the registered vocabularies (``nlpzk.vocab.vocabularies(cluster)`` gives their versions and tags too)."""
        cluster = cluster or default_cluster()
        return registry.children(cluster.zk, paths.VOCAB)

    @staticmethod
    def exists(name: str, *, cluster: Cluster | None = None) -> bool:
        """Whether vocabulary ``name`` is registered."""
        cluster = cluster or default_cluster()
        return registry.maybe_json(cluster.zk, paths.vocab(name)) is not None


def check_exists(cluster: Cluster, name: str) -> None:
    if registry.maybe_json(cluster.zk, paths.vocab(name)) is None:
        raise NotFoundError(f"unknown vocabulary {name!r}", hint="see: nlpzk vocab list")
