"""Small JSON documents in znodes, and the numbered-version recipe shared by vocabularies and models.

Documents are JSON with sorted keys, kept well under 1 KB where possible; ``put_json`` refuses
anything over :data:`MAX_DOC_BYTES` so no bulk data ever lands in ZooKeeper by accident.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable, Iterable, Iterator

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ConnectionLoss, NoAuthError, NodeExistsError, NoNodeError, NotEmptyError, OperationTimeoutError, RolledBackError, RuntimeInconsistency, SessionExpiredError
from kazoo.protocol.states import ZnodeStat

from ..errors import ConflictError, IntegrityError, NlpzkError, NotFoundError
from . import paths

MAX_DOC_BYTES = 64 * 1024


def dumps(doc: Any) -> bytes:
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    if len(data) > MAX_DOC_BYTES:
        raise NlpzkError(f"refusing to write a {len(data)}-byte document to ZooKeeper (bulk data belongs in the store)")
    return data


class CorruptDocumentError(IntegrityError, ValueError):
    """A znode holds data that is not a JSON object (a ``ValueError`` too, as ``json.loads`` raised)."""


def loads(data: bytes | None, path: str | None = None) -> Any:
    """The JSON object in a znode's data (``{}`` for an empty node); CorruptDocumentError otherwise."""
    if not data:
        return {}
    try:
        doc = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        where = f"znode {path}" if path else "a znode"
        raise CorruptDocumentError(
            f"{where} does not hold a valid JSON document (it reads {data[:40]!r})",
            hint="it was changed outside nlpzk; restore it from a ZooKeeper backup (nlpzk commands that read it, deletes included, stop here)",
        )
    return doc


def damaged_row(keys: Iterable[str], exc: NlpzkError, **known: Any) -> dict[str, Any]:
    """A listing's row (``train list``, ``corpus list``, ``nlpzk status``...) for an entry whose node
    is damaged: it does not hide the other rows. Every field of ``keys`` is None but those ``known``;
    ``state`` is ``"damaged"`` and ``damaged`` holds ``exc``'s line (what is wrong, what to do). Every
    readable row of the same listing has ``damaged``: None."""
    return {**dict.fromkeys(keys), **known, "state": "damaged", "damaged": exc.line()}


def full_path(zk: KazooClient, path: str) -> str:
    """``path`` with the client's chroot in front: what to name in a message about a znode."""
    chroot = getattr(zk, "chroot", "") or ""
    return f"{chroot}{path}" if chroot else path


def require(doc: dict[str, Any], keys: tuple[str, ...], where: str) -> dict[str, Any]:
    """``doc`` if it has every key in ``keys``; CorruptDocumentError naming the znode and the key otherwise."""
    missing = [k for k in keys if k not in doc]
    if missing:
        raise CorruptDocumentError(
            f"znode {where} lacks {', '.join(map(repr, missing))}",
            hint="it was changed outside nlpzk; restore it from a ZooKeeper backup",
        )
    return doc


def get_json(zk: KazooClient, path: str, *, what: str | None = None, required: tuple[str, ...] = ()) -> tuple[Any, ZnodeStat]:
    """A znode's document and stat (NotFoundError naming ``what`` if it does not exist); ``required``:
    keys it must have (CorruptDocumentError if one is missing)."""
    try:
        data, stat = zk.get(path)
    except NoNodeError:
        raise NotFoundError(f"{what or path} does not exist") from None
    return require(loads(data, full_path(zk, path)), required, full_path(zk, path)), stat


def maybe_json(zk: KazooClient, path: str, *, required: tuple[str, ...] = ()) -> Any | None:
    """A znode's document, or None if it does not exist; ``required`` as for ``get_json``."""
    try:
        data, _ = zk.get(path)
    except NoNodeError:
        return None
    return require(loads(data, full_path(zk, path)), required, full_path(zk, path))


def exists(zk: KazooClient, path: str) -> bool:
    return zk.exists(path) is not None


def children(zk: KazooClient, path: str) -> list[str]:
    try:
        return sorted(zk.get_children(path))
    except NoNodeError:
        return []


def get_many(zk: KazooClient, node_paths: list[str], pending: list[Any] | None = None) -> list[tuple[bytes, Any] | None]:
    """``(data, stat)`` of many nodes with pipelined requests (one round trip for all, not one each); None if gone.

    ``pending``: their ``get_async`` requests if already sent (behind a transaction, say)."""
    pending = [zk.get_async(p) for p in node_paths] if pending is None else pending
    out: list[tuple[bytes, Any] | None] = []
    for req in pending:
        try:
            out.append(req.get())
        except NoNodeError:
            out.append(None)
    return out


def many_json(zk: KazooClient, node_paths: list[str], pending: list[Any] | None = None) -> list[Any | None]:
    """Read many documents with pipelined requests (one round trip for all, not one each); None if
    gone. ``pending`` as :func:`get_many` takes it."""
    return [None if got is None else loads(got[0], full_path(zk, p)) for p, got in zip(node_paths, get_many(zk, node_paths, pending))]


def delete_tree(zk: KazooClient, path: str, attempts: int = 20) -> bool:
    """Delete ``path`` and everything below it; False if it did not exist.

    kazoo lists a node's children, then deletes the node: one created below it meanwhile (a running
    ingester's next claim) fails that with NotEmptyError, so list and delete again."""
    for _ in range(attempts):
        try:
            zk.delete(path, recursive=True)
            return True
        except NoNodeError:
            return False
        except NotEmptyError:
            continue
    raise ConflictError(f"{path} kept gaining children while being deleted", hint="stop what writes there, then run the delete again")


def create_below(zk: KazooClient, node_paths: Iterable[str]) -> bool:
    """Create each of ``node_paths`` (empty) whose parent exists; existing ones are fine.

    False as soon as a parent is missing: unlike ``ensure_path``, this never brings back a parent
    that another process deleted meanwhile (a corpus deleted while an ingest starts)."""
    for path in node_paths:
        try:
            zk.retry(zk.create, path, b"")
        except NodeExistsError:
            pass
        except NoNodeError:
            return False
    return True


def create_json(zk: KazooClient, path: str, doc: Any, *, ephemeral: bool = False, makepath: bool = True) -> str:
    return zk.create(path, dumps(doc), ephemeral=ephemeral, makepath=makepath)


def put_json(zk: KazooClient, path: str, doc: Any) -> None:
    """Create or overwrite ``path`` (no version check: for documents with a single writer)."""
    data = dumps(doc)
    try:
        zk.set(path, data)
    except NoNodeError:
        try:
            zk.create(path, data, makepath=True)
        except NodeExistsError:
            zk.set(path, data)


def now() -> float:
    return round(time.time(), 3)


def commit(tx, what: str) -> list:
    """Commit a kazoo transaction; raise ConflictError (naming ``what``) if any operation failed."""
    results = tx.commit()
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        first = next((r for r in failed if not type(r).__name__ == "RolledBackError"), failed[0])
        raise ConflictError(f"{what} failed: {type(first).__name__}") from first
    return results


class TransactionConflict(ConflictError):
    """A transaction lost an optimistic race; callers usually retry."""


class AlreadyPublished(ConflictError):
    """:func:`publish_version` with ``once``: a version with that key exists, numbered ``number``."""

    def __init__(self, message: str, number: int) -> None:
        super().__init__(message)
        self.number = number


def peek_next_version(zk: KazooClient, base: str) -> int:
    """The number the next :func:`publish_version` under ``base`` will probably get (a hint, not a claim)."""
    meta = maybe_json(zk, base)
    return int(meta.get("next_version", 1)) if isinstance(meta, dict) else 1


def publish_version(
    zk: KazooClient,
    base: str,
    doc: dict[str, Any],
    *,
    tags: Iterable[str] = (),
    attempts: int = 50,
    prepare: Callable[[int], dict[str, Any]] | None = None,
    once: str | None = None,
    create_base: bool = True,
    guards: Iterable[tuple[str, int]] = (),
    also: Callable[[int], Iterable[tuple[str, bytes, int]]] | None = None,
) -> int:
    """Register the next numbered version under ``base`` (``base/versions/vN``) and move ``tags`` to it
    (and ``latest`` when there is none yet, so that a plain NAME names a version).

    ``guards``: ``(path, znode version)`` of guard nodes set in the same transaction (a model
    registered on a vocabulary version sets that vocabulary's guard, see
    ``versioned.GuardHold``); GuardChanged if one moved meanwhile (look again, then retry).

    One ZooKeeper transaction: bump the counter on ``base`` (optimistic, checked by znode version),
    create the version node, and create or set each tag. Two concurrent publishers therefore never get
    the same number and never lose one: the loser's transaction fails as a whole and it retries.
    ``prepare(number)``, if given, is called before each attempt with the number about to be claimed
    and returns fields merged into the document (e.g. a file renamed to carry that number).
    ``also(number)``, if given, is called before each attempt too and returns ``(path, data, znode
    version)`` writes committed in the same transaction (e.g. the job a model came from records the
    version); one whose znode changed meanwhile makes the attempt fail and retry.

    ``once``, if given, is a key that at most one version may carry (e.g. the job a model came from):
    ``base/once/<key>`` is created in the same transaction, and a second publisher with that key gets
    :class:`AlreadyPublished` with the number the first one got. :func:`versioned.delete_version`
    deletes the marker with its version.

    ``create_base=False``: ``base`` must exist (the caller created it before writing its files);
    if it was deleted meanwhile, NotFoundError, rather than a version under a re-created base. A
    base marked as being deleted is refused (ConflictError).

    The document carries a ``nonce``; if the connection drops while the commit is in flight (the
    outcome is then unknown), the version node is read back after reconnecting and the nonce decides
    whether the commit happened, so a retry never registers the same build twice.
    Returns the new version number.
    """
    tags = [paths.check_tag(t) for t in tags]
    guards = list(guards)
    doc = dict(doc, nonce=doc.get("nonce") or uuid.uuid4().hex)
    if once is not None:
        if not once or "/" in once:
            raise ValueError(f"once key {once!r} is not a znode name")
        doc = dict(doc, once=once)
    if create_base:
        zk.ensure_path(base)
    # never ensure_path below: that would bring back a base deleted meanwhile, unmarked, and
    # publish a version whose file the delete has just removed
    if not create_below(zk, [f"{base}/versions", f"{base}/tags"] + ([f"{base}/once"] if once is not None else [])):
        raise NotFoundError(f"{base} was deleted while a version was being published", hint="run it again")
    for _ in range(attempts):
        meta, stat = get_json(zk, base)
        if not isinstance(meta, dict):
            meta = {}
        if meta.get("deleting"):
            raise being_deleted(base)
        number = int(meta.get("next_version", 1))
        vname = paths.version_name(number)
        extra = prepare(number) if prepare is not None else {}
        vdoc = dict(doc, **extra, version=number, created=doc.get("created", now()))
        tx = zk.transaction()
        tx.set_data(base, dumps(dict(meta, next_version=number + 1)), version=stat.version)
        tx.create(f"{base}/versions/{vname}", dumps(vdoc))
        if once is not None:  # result index 2
            tx.create(f"{base}/once/{once}", vname.encode())
        # a name with versions always has `latest` (a plain NAME means NAME:latest, and untag refuses
        # to remove it): the first version gets it whatever tags were asked for
        moved = tags if "latest" in tags or zk.exists(f"{base}/tags/latest") else [*tags, "latest"]
        for tag in moved:
            tag_path = f"{base}/tags/{tag}"
            if zk.exists(tag_path):
                tx.set_data(tag_path, vname.encode())
            else:
                tx.create(tag_path, vname.encode())
        for apath, adata, aversion in also(number) if also is not None else ():
            tx.set_data(apath, adata, version=aversion)
        for gpath, gversion in guards:  # the last results
            tx.set_data(gpath, b"", version=gversion)
        try:
            results = tx.commit()
        except (ConnectionLoss, OperationTimeoutError, SessionExpiredError) as exc:
            if isinstance(exc, OperationTimeoutError) and not zk.connected:
                # no reply for REQUEST_TIMEOUT (120 s) and still no connection (no quorum): reading the
                # version node back would wait as long again; the outcome stays unknown
                raise
            # Unknown outcome: the transaction is all-or-nothing, so our version node tells.
            mine = zk.retry(maybe_json, zk, f"{base}/versions/{vname}")
            if isinstance(mine, dict) and mine.get("nonce") == vdoc["nonce"]:
                return number
            continue
        if not any(isinstance(r, Exception) for r in results):
            return number
        raise_if_refused(results)
        if guards and first_error(results) in results[len(results) - len(guards):]:
            raise GuardChanged(first_error(results))
        if once is not None and isinstance(results[2], NodeExistsError):
            marker = f"{base}/once/{once}"
            try:
                data, mstat = zk.retry(zk.get, marker)
            except NoNodeError:
                continue  # its version was deleted meanwhile: the key is free again
            holder = maybe_json(zk, f"{base}/versions/{data.decode()}")
            if isinstance(holder, dict) and holder.get("once") == once:
                raise AlreadyPublished(f"{once} is already published under {base} as {data.decode()}", paths.parse_version(data.decode()))
            try:  # left by a delete killed half-way (its version is gone): the key is free
                zk.retry(zk.delete, marker, version=mstat.version)
            except (NoNodeError, BadVersionError):
                pass
            continue
        if any(isinstance(r, (BadVersionError, NodeExistsError, NoNodeError)) for r in results):
            continue  # lost a race (counter moved, or a tag appeared/vanished): read again and retry
        raise ConflictError(f"publishing a version under {base} failed: {results}")
    raise TransactionConflict(f"publishing a version under {base} kept losing races; try again")


def is_deleting(zk: KazooClient, base: str) -> bool:
    """Whether ``base`` (a corpus, vocabulary or model node) carries the mark of a delete that has not finished."""
    meta = maybe_json(zk, base)
    return isinstance(meta, dict) and bool(meta.get("deleting"))


def being_deleted(base: str) -> ConflictError:
    """The error for a corpus, vocabulary or model whose delete was stopped half-way: refused until it is run again."""
    kind, _, name = base.strip("/").partition("/")
    kind, group = {"corpora": ("corpus", "corpus"), "models": ("model", "model"), "jobs": ("training job", "train")}.get(kind, (kind, kind))
    return ConflictError(f"{kind} {name!r} is being deleted (a delete stopped half-way)", hint=f"finish it with: nlpzk {group} delete {name} --yes")


class GuardChanged(Exception):
    """A guard node changed between our read and our transaction: someone used (or deleted) what
    the transaction depends on; look again (see ``versioned.GuardHold``)."""


def first_error(results: list) -> Exception | None:
    """The error of the operation that failed a transaction (the others report RolledBackError or
    RuntimeInconsistency), or None if it succeeded."""
    errors = [r for r in results if isinstance(r, Exception)]
    real = [r for r in errors if not isinstance(r, (RolledBackError, RuntimeInconsistency))]
    return (real or errors or [None])[0]


def raise_if_refused(results: list) -> None:
    """A transaction's results hold a NoAuthError: raise it (exit 8, "not authorized"), not a retry or
    a conflict. The ACL of one node refuses the whole transaction; retrying cannot help."""
    refused = next((r for r in results if isinstance(r, NoAuthError)), None)
    if refused is not None:
        raise refused


def resolve_version(zk: KazooClient, base: str, kind: str, name: str, version: int | None, tag: str | None) -> int:
    """Turn ``version`` or ``tag`` into a version number that exists."""
    meta = maybe_json(zk, base)
    if meta is None:
        raise NotFoundError(f"unknown {kind} {name!r}", hint=f"see: nlpzk {kind if kind != 'vocabulary' else 'vocab'} list")
    if isinstance(meta, dict) and meta.get("deleting"):
        raise being_deleted(base)
    if version is None:
        tag = tag or "latest"
        try:
            data, _ = zk.get(f"{base}/tags/{paths.check_name('tag', tag)}")
        except NoNodeError:
            if not children(zk, f"{base}/versions"):
                group = "vocab" if kind == "vocabulary" else kind
                raise NotFoundError(f"{kind} {name!r} has no versions", hint=f"see: nlpzk {group} list") from None
            known = ", ".join(children(zk, f"{base}/tags")) or "none"
            raise NotFoundError(f"{kind} {name!r} has no tag {tag!r}", hint=f"known tags: {known}") from None
        version = paths.stored_version(data, full_path(zk, f"{base}/tags/{tag}"))
    if not zk.exists(f"{base}/versions/{paths.version_name(version)}"):
        known = ", ".join(f"v{paths.parse_version(v)}" for v in children(zk, f"{base}/versions")[-5:]) or "none"
        raise NotFoundError(f"{kind} {name!r} has no version v{version}", hint=f"latest versions: {known}")
    return version


def move_tag(zk: KazooClient, base: str, tag: str, version: int) -> None:
    """Point ``tag`` at an existing version, atomically (check the version exists in the same transaction)."""
    tag_path = f"{base}/tags/{paths.check_tag(tag)}"
    vname = paths.version_name(version)
    tx = zk.transaction()
    tx.check(f"{base}/versions/{vname}", -1)
    if zk.exists(tag_path):
        tx.set_data(tag_path, vname.encode())
    else:
        tx.create(tag_path, vname.encode())
    results = tx.commit()
    raise_if_refused(results)
    if any(isinstance(r, Exception) for r in results):
        raise ConflictError(f"moving tag {tag!r} to {vname} failed (version missing or tag changed concurrently); try again")


def list_versions(zk: KazooClient, base: str, *, required: tuple[str, ...] = (), damaged: dict[int, NlpzkError] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Every registered version under ``base`` with its document, oldest first (``required`` as for
    ``get_json``). A version whose node is damaged raises, or with ``damaged`` is left out and put
    there (version number -> the error) for the caller to show as a row."""
    out = []
    for vname in children(zk, f"{base}/versions"):
        try:
            doc = maybe_json(zk, f"{base}/versions/{vname}", required=required)
        except IntegrityError as exc:
            if damaged is None:
                raise
            damaged[paths.parse_version(vname)] = exc
            continue
        if doc is not None:
            out.append((paths.parse_version(vname), doc))
    return out


def walk(zk: KazooClient, path: str = "/") -> Iterator[tuple[str, Any]]:
    """Every znode below ``path`` (depth first) with its decoded document (``None`` if not JSON)."""
    stack = [path]
    while stack:
        p = stack.pop()
        try:
            data, _ = zk.get(p)
            kids = zk.get_children(p)
        except NoNodeError:
            continue  # deleted while we walked
        try:
            doc = loads(data)
        except (ValueError, UnicodeDecodeError):
            doc = None
        yield p, doc
        base = p.rstrip("/")
        stack.extend(f"{base}/{k}" for k in sorted(kids, reverse=True))
