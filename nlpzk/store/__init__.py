"""Every byte of bulk data lives here: a pyarrow filesystem (file://, s3://, hdfs://, gs://).

A file becomes visible to others only by being registered in ZooKeeper *after* it is completely
written. :meth:`Store.atomic_output` writes to a temporary name beside the target, flushes (and on a
local disk fsyncs), checksums on the fly, and renames into place only when the block exits cleanly.
Temporary names start with ``.tmp-`` so ``verify``/``gc`` can tell them from stray published files.

Paths handed to a :class:`Store` are relative to its root, so the same registry works on machines
that mount a shared store at different places.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import uuid
from typing import IO, Iterator, Sequence

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import ConfigError, IntegrityError, NlpzkError, NotFoundError, StoreError, WrongStoreError

TMP_PREFIX = ".tmp-"
#: The folders every file nlpzk registers lives under (see naming.py).
TOP_FOLDERS = ("corpora", "vocab", "models", "jobs")
#: What a missing file's error names as the command that checks it, by top folder.
_VERIFY_COMMANDS = {"corpora": "nlpzk corpus verify", "vocab": "nlpzk vocab verify"}


def _find_sync_file_range():
    """Linux's ``sync_file_range(2)`` through libc, or None where there is none."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _find_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2
#: On a local disk, every this many bytes written the kernel is asked to start writing them out
#: (``sync_file_range``, as RocksDB's ``bytes_per_sync``), so the final fsync waits only for the
#: tail: a 32 MB file took 20 ms to write and fsync here, 14 ms this way. Durability still comes
#: from that fsync alone.
WRITE_BEHIND = 4 << 20


class HashingWriter:
    """A write-only file object that sha256-hashes and counts what passes through it.

    ``write_behind``: for a local file (a ``fileno()``), hand each that many bytes to the kernel's
    writeback as they are written (0: never)."""

    def __init__(self, raw: IO[bytes] | pa.NativeFile, checksum: bool = True, write_behind: int = 0) -> None:
        self._raw = raw
        self._hash = hashlib.sha256() if checksum else None
        self.bytes = 0
        self.closed = False
        self._behind = write_behind if write_behind > 0 and _SYNC_FILE_RANGE is not None else 0
        self.handed = 0  # bytes handed to writeback so far

    def write(self, data) -> int:
        mv = memoryview(data).cast("B")
        if self._hash is not None:
            self._hash.update(mv)
        if not self._behind:
            self._raw.write(mv)
            self.bytes += mv.nbytes
            return mv.nbytes
        for at in range(0, mv.nbytes, self._behind):
            piece = mv[at : at + self._behind]
            self._raw.write(piece)
            self.bytes += piece.nbytes
            if self.bytes - self.handed >= self._behind:
                self._raw.flush()
                # best effort (a file system may not support it): the caller's fsync is what counts
                if _SYNC_FILE_RANGE(self._raw.fileno(), self.handed, self.bytes - self.handed, _SYNC_FILE_RANGE_WRITE) == 0:
                    self.handed = self.bytes
                else:
                    self._behind = 0
                    break
        return mv.nbytes

    def flush(self) -> None:
        self._raw.flush()

    def tell(self) -> int:
        return self.bytes

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:  # the store closes the underlying file; writers may call close() freely
        self.closed = True

    @property
    def sha256(self) -> str | None:
        """The hex digest, or ``None`` for a writer opened with ``checksum=False``."""
        return None if self._hash is None else self._hash.hexdigest()


def _os_error(exc: OSError, what: str) -> StoreError:
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc):
        return StoreError(f"store is full while {what}", hint="free space or point --store elsewhere; nothing was registered")
    if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS) or "ermission denied" in str(exc) or "Read-only" in str(exc):
        return StoreError(f"store is not writable while {what}: {exc.strerror or exc}", hint="check permissions of the store directory; nothing was registered")
    if what.startswith("reading"):
        return StoreError(f"store error while {what}: {exc}", hint="check that it is a readable file (not a directory) and that the store is reachable")
    return StoreError(f"store error while {what}: {exc}")


class Store:
    """A root directory on some pyarrow filesystem."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        try:
            if "://" not in uri:
                uri = "file://" + os.path.abspath(uri)
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, ValueError) as exc:
            raise ConfigError(f"cannot use store {self.uri!r}: {exc}", hint="use a path or file:// s3:// gs:// hdfs:// URI") from None
        except OSError as exc:  # a well-formed URI whose service cannot be reached (DNS, network, credentials)
            raise ConfigError(f"cannot reach store {self.uri!r}: {exc}", hint="check the network, the bucket or host, and the credentials the store needs") from None
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        if self.local:  # not created here: a read-only command on a mistyped store must not make it
            _check_local_root(self.root)

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    # -- names --------------------------------------------------------------------------------

    def full(self, rel: str) -> str:
        rel = rel.lstrip("/")
        if ".." in rel.split("/"):
            raise StoreError(f"refusing a store path that leaves the store: {rel!r}")
        return posixpath.join(self.root, rel)

    def _is_dir(self, path: str) -> bool:
        try:
            return self.fs.get_file_info(path).type == pafs.FileType.Directory
        except OSError:
            return True  # cannot tell: let the file's own error speak

    def missing(self, rel: str, message: str | None = None, hint: str | None = None) -> NlpzkError:
        """The error for a registered file ``rel`` that is not in the store: a :class:`WrongStoreError`
        when the store itself looks wrong (its root, or the top folder ``rel`` lives in, does not
        exist: none of the registry's files can be there), else an :class:`IntegrityError` with
        ``message`` (default ``store file REL is missing``) and ``hint`` (default: the command that
        checks the file's corpus or vocabulary)."""
        top = rel.lstrip("/").split("/", 1)[0]
        if not self._is_dir(self.root) or (top in TOP_FOLDERS and not self._is_dir(self.full(top))):
            where = "does not exist" if not self._is_dir(self.root) else f"has no {top}/ folder"
            return WrongStoreError(
                f"store {self.uri} {where}, so it has none of the files registered in ZooKeeper ({rel} is missing)",
                hint="is --store / NLPZK_STORE the store this cluster uses? (see: nlpzk config show)",
            )
        return IntegrityError(message or f"store file {rel} is missing", hint=hint or verify_hint(rel))

    def local_path(self, rel: str) -> str | None:
        """The OS path of ``rel`` on a local store (for memory-mapping), else ``None``."""
        return self.full(rel) if self.local else None

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic_output(self, rel: str, *, checksum: bool = True, durable: bool = True, reuse: Sequence[str] = ()) -> Iterator[HashingWriter]:
        """Write ``rel`` atomically; the yielded writer reports ``sha256`` and ``bytes`` afterwards.

        ``checksum=False`` skips the sha256 for bulk files nobody verifies by hash (a training
        round's deltas and parameters: a few hundred MB per round on a large model).
        ``durable=False`` (local stores): no fsync of the file or its folder and no write-behind,
        for intermediates whose readers detect a file an OS crash cut or left stale and can make
        it again (a training round's contributions): still renamed into place complete, and a
        process that dies loses nothing (the page cache keeps what it wrote).
        ``reuse`` (local stores): files nobody reads any more (a job's spares, see
        ``naming.job_spare``); the first that can be claimed (renamed to the temporary name: two
        writers never get the same one) is written over in place and cut to size, so the write
        lands in pages the page cache already holds. Allocating fresh ones cost up to ten times
        the copy here (``bench/diag_page_cache_writes.py``). None left: a new file as usual.
        """
        target = self.full(rel)
        parent = posixpath.dirname(target)
        tmp = posixpath.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(target)}")
        try:
            self.fs.create_dir(parent, recursive=True)
        except OSError as exc:
            raise _os_error(exc, f"creating {parent}") from None
        ok = False
        try:
            if self.local:
                reused = self._claim(reuse, tmp)
                with open(tmp, "r+b" if reused else "wb") as raw:
                    writer = HashingWriter(raw, checksum, write_behind=WRITE_BEHIND if durable else 0)
                    yield writer
                    if reused:
                        raw.truncate()  # at the end of what was written: a longer file's tail goes
                    raw.flush()
                    if durable:
                        os.fsync(raw.fileno())
            else:
                with self.fs.open_output_stream(tmp) as raw:
                    writer = HashingWriter(raw, checksum)
                    yield writer
            self.fs.move(tmp, target)
            if self.local and durable:
                _fsync_dir(parent)
            ok = True
        except OSError as exc:
            raise _os_error(exc, f"writing {rel}") from None
        finally:
            if not ok:
                with contextlib.suppress(OSError):
                    self.fs.delete_file(tmp)

    def sync(self, rel: str) -> bool:
        """Make a file written with ``atomic_output(durable=False)`` durable after all: fsync it and
        its folder (any process of the machine can: the dirty pages are the file's, not the
        writer's). A no-op on object stores (an object is durable once written). False if the file
        is gone."""
        if not self.local:
            return self.exists(rel)
        path = self.full(rel)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _os_error(exc, f"syncing {rel}") from None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise _os_error(exc, f"syncing {rel}") from None
        finally:
            os.close(fd)
        _fsync_dir(posixpath.dirname(path))
        return True

    def _claim(self, spares: Sequence[str], tmp: str) -> bool:
        for rel in spares:
            try:
                os.rename(self.full(rel), tmp)
            except OSError:
                continue  # taken by another writer, or gone
            with contextlib.suppress(OSError):
                os.utime(tmp)  # fresh for nlpzk gc: it is being written, not an old leftover
            return True
        return False

    def write_bytes(self, rel: str, data: bytes) -> tuple[str, int]:
        with self.atomic_output(rel) as out:
            out.write(data)
        return out.sha256, out.bytes

    def move(self, src: str, dst: str) -> None:
        """Rename a completely written file (same store); the target is replaced if it exists."""
        try:
            self.fs.move(self.full(src), self.full(dst))
        except FileNotFoundError:
            raise self.missing(src) from None
        except OSError as exc:
            raise _os_error(exc, f"moving {src} to {dst}") from None
        if self.local:
            _fsync_dir(posixpath.dirname(self.full(dst)))

    # -- reading ------------------------------------------------------------------------------

    def open_input(self, rel: str) -> pa.NativeFile:
        try:
            return self.fs.open_input_file(self.full(rel))
        except FileNotFoundError:
            raise self.missing(rel) from None
        except OSError as exc:
            raise _os_error(exc, f"reading {rel}") from None

    def read_bytes(self, rel: str) -> bytes:
        with self.open_input(rel) as fh:
            return fh.read()

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        with self.open_input(rel) as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
        return h.hexdigest()

    def verify(self, rel: str, sha256: str) -> None:
        actual = self.sha256(rel)
        if actual != sha256:
            raise IntegrityError(f"store file {rel} fails its checksum (sha256 {actual[:12]}..., registry says {sha256[:12]}...)")

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type != pafs.FileType.NotFound

    def size(self, rel: str) -> int:
        info = self.fs.get_file_info(self.full(rel))
        if info.type == pafs.FileType.NotFound:
            raise NotFoundError(f"store file {rel} does not exist")
        return info.size

    def list(self, prefix: str) -> list[str]:
        """Every file below ``prefix`` (recursively), as store-relative paths; [] if none."""
        base = self.full(prefix)
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise _os_error(exc, f"listing {prefix}") from None
        root = self.root.rstrip("/") + "/"
        return sorted(i.path[len(root):] if i.path.startswith(root) else i.path for i in infos if i.type == pafs.FileType.File)

    # -- deleting -----------------------------------------------------------------------------

    def delete(self, rel: str) -> bool:
        try:
            self.fs.delete_file(self.full(rel))
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _os_error(exc, f"deleting {rel}") from None

    def delete_dir(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self.full(rel))

    def delete_empty_dirs(self, rel: str) -> None:
        """Remove folder ``rel`` and the folders below it if no file is in them (what writes that
        failed leave: ``atomic_output`` creates the folder first); a folder holding a file stays."""
        base = self.full(rel)
        if self.local:
            # os.rmdir refuses a folder that is not empty: a file another writer creates meanwhile is never lost
            for top, _, _ in sorted(os.walk(base), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(top)
            return
        # (an object store's folders are markers: a file created between the look and the delete is
        # a first write of another ingester at this very moment, which then fails and is run again)
        if not self.list(rel):
            self.delete_dir(rel)


def verify_hint(rel: str) -> str:
    """What to run about a missing or damaged file ``rel``: the verify command of its corpus or
    vocabulary where there is one."""
    parts = rel.lstrip("/").split("/")
    if len(parts) >= 3 and parts[0] in _VERIFY_COMMANDS:
        return f"check it with: {_VERIFY_COMMANDS[parts[0]]} {parts[1]}"
    return "the registry points at a file that is gone; restore it from a backup of the store"


def _check_local_root(root: str) -> None:
    """Refuse a local store root that is a file, or lies below one (it could never hold the store)."""
    path = root
    while path and not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if path and not os.path.isdir(path):
        kind = "a file" if os.path.isfile(path) else "not a directory"
        what = f"is {kind}" if path == root else f"lies below {path}, which is {kind}"
        raise StoreError(f"the store {root} {what}", hint="point --store / NLPZK_STORE at a directory (see: nlpzk config show)")


def new_file_mode() -> int:
    """The mode ``open()`` gives a new local file: 0666 less the process's umask (a file made with
    ``tempfile.mkstemp`` and renamed into place would otherwise keep mkstemp's 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_tmp(rel: str) -> bool:
    return posixpath.basename(rel).startswith(TMP_PREFIX)


__all__ = ["Store", "HashingWriter", "TMP_PREFIX", "TOP_FOLDERS", "is_tmp", "verify_hint"]
