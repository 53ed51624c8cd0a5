"""Input files: finding them, recognising bad ones early, and streaming their documents.

Formats (by extension, after an optional ``.gz``/``.bz2``/``.xz``/``.zst``):

* ``.txt`` (and any unknown extension named explicitly): a document per line, or per blank-line
  separated paragraph (``doc_mode="paragraph"``)
* ``.jsonl`` / ``.ndjson``: one JSON object per line, the document in ``text_field``
* ``.csv`` / ``.tsv``: a header row, the document in column ``text_field``
* ``.parquet``: the document in column ``text_field`` (read in record batches)

Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (old Mac files), as Python's universal newlines.
Every reader streams: memory depends on the longest document, never on the file size. A line longer
than ``max_line_bytes`` is refused rather than buffered. Bad input raises :class:`InvalidInputError`
naming the file (and line).
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import dataclasses
import errno
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import tempfile
import zlib
from typing import IO, Iterator

from ..errors import InvalidInputError

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
FORMATS = {".txt": "txt", ".text": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
SNIFF_BYTES = 8192
#: The longest document: it must fit one Arrow string (32-bit offsets).
MAX_LINE_BYTES = 2**31 - 1
_GLOB_CHARS = set("*?[")


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How documents are cut out of files; part of every input's key (same bytes read differently = other input)."""

    doc_mode: str = "line"  # "line" | "paragraph" (txt only)
    text_field: str = "text"  # jsonl/csv/parquet
    strict: bool = False  # invalid UTF-8 is an error instead of being replaced (and counted)
    max_line_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if self.doc_mode not in ("line", "paragraph"):
            raise InvalidInputError(f"unknown document mode {self.doc_mode!r}", hint="use line or paragraph")
        if self.max_line_bytes < 1:
            raise InvalidInputError(
                f"--max-line-bytes must be positive, not {self.max_line_bytes}",
                hint="give the longest line (document) to accept, in bytes, e.g. --max-line-bytes 1000000 (the default)",
            )
        if self.max_line_bytes > MAX_LINE_BYTES:
            raise InvalidInputError(
                f"--max-line-bytes must be at most {MAX_LINE_BYTES} (2 GiB, one document's limit), not {self.max_line_bytes}",
                hint="split such documents, or give a smaller limit",
            )

    def key_part(self, fmt: str) -> str:
        if fmt == "txt":
            return f"txt:{self.doc_mode}"
        return f"{fmt}:{self.text_field}"


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str  # as found; also the value of the shard's ``source`` column
    format: str
    compression: str | None
    size: int
    explicit: bool  # named on the command line (not found inside a directory)

    @property
    def source(self) -> str:
        """The path as shards and the registry name it: bytes of the name that are not UTF-8 (which
        ``os.fsdecode`` keeps as lone surrogates, and no UTF-8 string can hold) written ``\\xNN``."""
        return self.path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def classify(path: str) -> tuple[str | None, str | None]:
    """``'a/b.jsonl.gz' -> ('jsonl', '.gz')``; unknown extensions give format ``None``."""
    base = path.lower()
    comp = next((c for c in COMPRESSIONS if base.endswith(c)), None)
    if comp:
        base = base[: -len(comp)]
    ext = os.path.splitext(base)[1]
    return FORMATS.get(ext), comp


def discover(paths: list[str]) -> list[InputFile]:
    """Expand files, directories (recursively) and globs into input files, sorted by path."""
    if not paths:
        raise InvalidInputError("no input path given", hint="nlpzk corpus ingest NAME PATH...")
    found: list[InputFile] = []
    seen: set[str] = set()

    def add(p: str, explicit: bool) -> None:
        real = os.path.realpath(p)
        if real in seen:
            return
        fmt, comp = classify(p)
        if fmt is None:
            if not explicit:
                return
            fmt = "txt"
        try:
            size = os.path.getsize(p)
        except OSError as exc:
            raise InvalidInputError(f"{p}: cannot read ({exc.strerror})", hint="fix or remove it (a broken symbolic link?), or name only the inputs to read") from None
        if not os.access(p, os.R_OK):
            raise InvalidInputError(f"{p}: permission denied", hint="check the file's permissions")
        seen.add(real)
        found.append(InputFile(os.path.normpath(p), fmt, comp, size, explicit))

    for arg in paths:
        if os.path.isfile(arg):
            add(arg, True)
        elif os.path.isdir(arg):
            before = len(found)
            for root, dirs, files in os.walk(arg, onerror=_unlistable):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        add(os.path.join(root, name), False)
            if len(found) == before:
                raise InvalidInputError(
                    f"{arg}: directory has no readable input files",
                    hint="expected .txt, .jsonl, .ndjson, .csv, .tsv or .parquet files (optionally .gz/.bz2/.xz/.zst)",
                )
        elif _GLOB_CHARS & set(arg):
            matches = sorted(m for m in glob.glob(arg, recursive=True) if os.path.isfile(m))
            if not matches:
                raise InvalidInputError(
                    f"{arg}: no file matches this pattern",
                    hint="check the pattern and the directory it looks in (** also matches subdirectories)",
                )
            for m in matches:
                add(m, True)
        elif os.path.exists(arg):
            # a FIFO would block the reader forever and /dev/zero never ends: refuse them up front
            raise InvalidInputError(f"{arg}: not a regular file (a FIFO, device or socket)", hint="copy the data into a file first")
        elif os.path.islink(arg):
            # a link whose target is missing, or a loop of links (ELOOP): say so, not "no such file"
            try:
                os.stat(arg)
                why = "cannot be followed"
            except OSError as exc:
                why = "is a loop of symbolic links" if exc.errno == errno.ELOOP else f"points to {os.readlink(arg)!r}, which does not exist"
            raise InvalidInputError(f"{arg}: a symbolic link that {why}", hint="fix the link, or name the file it should point to")
        else:
            raise InvalidInputError(f"{arg}: no such file or directory", hint="check the path; a file, a directory or a glob such as 'data/*.txt'")
    # One order whatever the order of the arguments: inputs commit in it, and the first input
    # to commit keeps a document several inputs share.
    return sorted(found, key=lambda f: f.path)


def _unlistable(exc: OSError) -> None:
    # os.walk skips a directory it cannot list unless told otherwise: its files would be left out silently
    raise InvalidInputError(f"{exc.filename}: cannot list this directory ({exc.strerror})", hint="check its permissions, or name only the parts to read")


# -- opening ---------------------------------------------------------------------------------------


def _open_raw(f: InputFile, raw: "_HashingFile | None" = None) -> IO[bytes]:
    """The file's (decompressed) bytes; read from ``raw`` if given (which the caller closes)."""
    source: str | IO[bytes] = f.path if raw is None else io.BufferedReader(raw, 1 << 20)
    if f.compression == ".gz":
        return gzip.open(source, "rb")
    if f.compression == ".bz2":
        return bz2.open(source, "rb")
    if f.compression == ".xz":
        return lzma.open(source, "rb")
    if f.compression == ".zst":
        import zstandard

        stream = open(source, "rb") if isinstance(source, str) else source
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(stream, closefd=True), buffer_size=1 << 20)
    return open(source, "rb", buffering=1 << 20) if isinstance(source, str) else source


class _HashingFile(io.FileIO):
    """A file's bytes as stored, sha256-hashed as they are read (in order: the readers only stream).

    So an input's recorded hash can be checked against exactly the bytes that were tokenized. (A
    ``FileIO``, not a ``RawIOBase``: a buffered reader over the latter costs a Python call a line.)
    """

    def __init__(self, path: str) -> None:
        super().__init__(path, "rb")
        self._hash = hashlib.sha256()

    def readinto(self, b) -> int:
        n = super().readinto(b)
        if n:
            self._hash.update(memoryview(b)[:n])
        return n

    def sha256(self) -> str:
        """The hash of the whole file: the rest (what a decompressor left unread) is read first."""
        buf = bytearray(1 << 20)
        while self.readinto(buf):
            pass
        return self._hash.hexdigest()


_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE = range(0x184D2A50, 0x184D2A60)


def _zstd_cut(path: str) -> str | None:
    """Why a .zst file ends inside a frame (cut short), or None; reads only frame and block headers.

    gzip, bzip2 and xz readers raise at a premature end; zstandard's stream reader just stops there,
    so a truncated file would be ingested as if whole. Frame layout: RFC 8878, section 3.1.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        pos = 0
        while pos < size:
            fh.seek(pos)
            head = fh.read(4)
            if len(head) < 4:
                return "the file ends inside a frame header"
            magic = int.from_bytes(head, "little")
            if magic in _ZSTD_SKIPPABLE:
                length = fh.read(4)
                pos += 8 + int.from_bytes(length, "little")
                if len(length) < 4 or pos > size:
                    return "the file ends inside a skippable frame"
                continue
            if magic != _ZSTD_MAGIC:
                return None  # not zstd: the decompressor says so itself
            descriptor = fh.read(1)
            if not descriptor:
                return "the file ends inside a frame header"
            d = descriptor[0]
            single_segment = bool(d & 0x20)
            fcs = (1 if single_segment else 0, 2, 4, 8)[d >> 6]
            pos += 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[d & 3] + fcs
            while True:
                fh.seek(pos)
                block = fh.read(3)
                if len(block) < 3:
                    return "the file ends inside a frame: truncated"
                header = int.from_bytes(block, "little")
                kind = (header >> 1) & 3
                pos += 3 + (1 if kind == 1 else header >> 3)  # RLE blocks store one byte
                if header & 1:
                    break
            pos += 4 if d & 4 else 0  # content checksum
            if pos > size:
                return "the file ends inside a frame: truncated"
    return None


def _corrupt(f: InputFile, exc: BaseException) -> InvalidInputError:
    what = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}.get(f.compression or "", "")
    return InvalidInputError(f"{f.path}: corrupt {what} data ({exc})".replace("corrupt  data", "unreadable data"), hint="re-create or re-download the file")


def _decompress_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [OSError, EOFError, zlib.error, lzma.LZMAError]
    with contextlib.suppress(ImportError):
        import zstandard

        errs.append(zstandard.ZstdError)
    return tuple(errs)


_DECOMPRESS_ERRORS = _decompress_errors()


#: More invalid UTF-8 sequences than this share of a text file's bytes (its first 8 KiB, or all of it): binary, not text.
BINARY_SHARE = 0.10


def sniff(f: InputFile) -> None:
    """Refuse, before anything is registered, a file that is empty, binary or not what its name says."""
    if f.size == 0:
        raise InvalidInputError(f"{f.path}: file is empty", hint="remove it from the inputs")
    try:
        if f.compression == ".zst" and (cut := _zstd_cut(f.path)):
            raise EOFError(cut)
        with _open_raw(f) as fh:
            head = fh.read(SNIFF_BYTES)
    except _DECOMPRESS_ERRORS as exc:
        raise _corrupt(f, exc) from None
    if not head:
        raise InvalidInputError(f"{f.path}: file is empty (after decompression)", hint="remove it from the inputs")
    if f.format == "parquet":
        if not head.startswith(b"PAR1"):
            raise InvalidInputError(f"{f.path}: not a Parquet file (no PAR1 magic)", hint="rename it if it is text (.txt, .jsonl, .csv), or re-export it as Parquet")
        return
    nul = head.find(b"\x00")
    if nul >= 0:
        raise InvalidInputError(f"{f.path}: looks binary (NUL byte at offset {nul}), not UTF-8 text", hint="ingest text files only (UTF-16 must be converted to UTF-8)")
    # random bytes without a NUL: most of them are not UTF-8; text in a legacy encoding (Latin-1,
    # cp1252) has a few per cent at most, and is ingested with them replaced (and counted)
    sample = head[:-3] if len(head) == SNIFF_BYTES else head  # not a character cut at the end
    bad = sample.decode("utf-8", errors="replace").count("\ufffd") - sample.decode("utf-8", errors="ignore").count("\ufffd")
    if len(sample) >= 256 and bad > BINARY_SHARE * len(sample):
        raise _binary(f, bad, len(sample), "first ")


def _binary(f: InputFile, bad: int, size: int, which: str) -> InvalidInputError:
    return InvalidInputError(
        f"{f.path}: looks binary ({bad:,} invalid UTF-8 sequences in its {which}{size:,} bytes), not UTF-8 text",
        hint="ingest text files only; convert other encodings to UTF-8 first (iconv -f latin1 -t utf-8)",
    )


def content_sha256(f: InputFile) -> str:
    """sha256 of the file's bytes as stored (compressed bytes for compressed files)."""
    with open(f.path, "rb") as fh:
        return _sha256(fh)


def _sha256(fh: IO[bytes]) -> str:
    """sha256 of the rest of ``fh``."""
    h = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def _stamp(fh: IO[bytes]) -> tuple[int, int]:
    st = os.fstat(fh.fileno())
    return st.st_size, st.st_mtime_ns


# -- documents -------------------------------------------------------------------------------------


class DocumentReader:
    """Iterate ``(record_number, text)`` over one input file; counts replaced invalid UTF-8 bytes.

    ``record_number`` is the 1-based line (txt paragraph: its first line; csv: the line the record
    ends on; parquet: the row). It names documents and errors.
    """

    def __init__(self, f: InputFile, options: ReadOptions, sha256: str | None = None) -> None:
        self.file = f
        self.options = options
        self.sha256 = sha256  # what the file's bytes hashed to before: checked against the bytes read
        self.replaced = 0  # invalid UTF-8 sequences replaced by U+FFFD (and lone surrogates in JSON)
        self.invalid = 0  # of them, invalid UTF-8 sequences: what the binary test counts
        # a text file with more than this many is certain to be refused as binary at its end (see
        # _lines): it is refused as soon as that is known (not known up front for compressed ones)
        self._hopeless = BINARY_SHARE * f.size if f.format != "parquet" and not f.compression and f.size >= 256 else float("inf")

    def __iter__(self) -> Iterator[tuple[int, str]]:
        f = self.file
        try:
            if f.format == "parquet":
                yield from self._parquet()
                return
            with _HashingFile(f.path) as raw, _open_raw(f, raw) as fh:
                lines = self._lines(fh)
                if f.format == "txt":
                    yield from (self._paragraphs(lines) if self.options.doc_mode == "paragraph" else self._txt(lines))
                elif f.format == "jsonl":
                    yield from self._jsonl(lines)
                else:
                    yield from self._csv(lines, "\t" if f.format == "tsv" else ",")
                self._unchanged(raw.sha256())
        except InvalidInputError:
            raise
        except _DECOMPRESS_ERRORS as exc:
            raise _corrupt(f, exc) from None

    def _unchanged(self, sha256: str) -> None:
        """The bytes read are the ones hashed before reading (the input's key and recorded sha256)."""
        if self.sha256 is not None and sha256 != self.sha256:
            raise self._changed()

    def _changed(self) -> InvalidInputError:
        return InvalidInputError(
            f"{self.file.path}: changed while it was being ingested (appended to or rewritten)",
            hint="ingest it once it is complete (write it elsewhere, then move it into place); nothing of it was registered",
        )

    def _decode(self, raw: bytes, lineno: int, unit: str = "line") -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.options.strict:
                where = f"{self.file.path}:{lineno}" if unit == "line" else f"{self.file.path}: {unit} {lineno}"
                raise InvalidInputError(
                    f"{where}: invalid UTF-8 (byte {exc.start + 1} of the {unit})",
                    hint="fix the file, or run without --strict to replace bad bytes with U+FFFD and count them",
                ) from None
        text = raw.decode("utf-8", "nlpzk-count")
        n = _count.take()
        self.replaced += n
        self.invalid += n
        if self.invalid > self._hopeless:
            raise _binary(self.file, self.invalid, self.file.size, "")
        return text

    def _lines(self, fh: IO[bytes]) -> Iterator[tuple[int, str]]:
        limit = self.options.max_line_bytes
        lineno = size = 0
        for raw in _raw_lines(fh, limit):
            lineno += 1
            size += len(raw)
            if len(raw) > limit and len(raw.rstrip(b"\r\n")) > limit:  # the line end is not part of the document
                raise InvalidInputError(
                    f"{self.file.path}:{lineno}: line is longer than {limit} bytes",
                    hint="split the text into lines/paragraphs, or raise --max-line-bytes",
                )
            if b"\x00" in raw:  # the sniff saw the first 8 KiB only
                raise InvalidInputError(
                    f"{self.file.path}:{lineno}: NUL byte (binary data), not UTF-8 text", hint="ingest text files only (UTF-16 must be converted to UTF-8)"
                )
            text = self._decode(raw, lineno)
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield lineno, text
        # the sniff judged the first 8 KiB only: binary data further on would be tokenized as U+FFFD
        if size >= 256 and self.invalid > BINARY_SHARE * size:
            raise _binary(self.file, self.invalid, size, "")

    def _txt(self, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        for lineno, line in lines:
            text = line.strip()
            if text:
                yield lineno, text

    def _paragraphs(self, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        limit = self.options.max_line_bytes
        start, parts, size = 0, [], 0
        for lineno, line in lines:
            text = line.strip()
            if text:
                if not parts:
                    start = lineno
                parts.append(text)
                size += len(text) + 1
                if size > limit:
                    raise InvalidInputError(
                        f"{self.file.path}:{start}: paragraph is longer than {limit} bytes",
                        hint="separate paragraphs with blank lines, use --doc-mode line, or raise --max-line-bytes",
                    )
            elif parts:
                yield start, " ".join(parts)
                parts, size = [], 0
        if parts:
            yield start, " ".join(parts)

    def _jsonl(self, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        field = self.options.text_field
        for lineno, line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError; a number of over 4300 digits; deep nesting
                if isinstance(exc, json.JSONDecodeError):
                    problem = f"{exc.msg} at column {exc.colno}"
                else:
                    problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).partition(";")[0]
                raise InvalidInputError(f"{self.file.path}:{lineno}: not valid JSON ({problem})", hint="fix that line (JSON Lines: one object per line)") from None
            if not isinstance(obj, dict) or field not in obj:
                fields = ", ".join(map(_printable, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
                raise InvalidInputError(f"{self.file.path}:{lineno}: no {field!r} field (found: {fields or 'nothing'})", hint="pick the field with --text-field")
            value = obj[field]
            if value is None:
                continue
            if not isinstance(value, str):
                raise InvalidInputError(
                    f"{self.file.path}:{lineno}: field {field!r} is {_json_type(value)}, not a string",
                    hint="make that field a JSON string (or null to skip the line), or pick another field with --text-field",
                )
            text = value.strip()
            if text:
                yield lineno, self._no_surrogates(text, lineno)

    def _no_surrogates(self, text: str, lineno: int) -> str:
        """A JSON string may escape half of a surrogate pair (``"\\ud83d"``, an emoji cut in two): not
        Unicode text, and nothing downstream can encode it. Replaced and counted like invalid UTF-8."""
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError as exc:
            if self.options.strict:
                raise InvalidInputError(
                    f"{self.file.path}:{lineno}: field {self.options.text_field!r} holds a lone surrogate (\\u{ord(text[exc.start]):04x}), not valid Unicode",
                    hint="fix the file, or run without --strict to replace them with U+FFFD and count them",
                ) from None
        text, n = _SURROGATE.subn("\ufffd", text)
        self.replaced += n
        return text

    def _csv(self, lines: Iterator[tuple[int, str]], delimiter: str) -> Iterator[tuple[int, str]]:
        field = self.options.text_field
        csv.field_size_limit(max(self.options.max_line_bytes, csv.field_size_limit()))
        current = [0]

        def feed() -> Iterator[str]:
            for lineno, line in lines:
                current[0] = lineno
                yield line

        # strict: a quote opened and never closed is an error at the end of the file, not the rest of
        # the file taken silently as one document
        reader = csv.reader(feed(), delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            if field not in header:
                raise InvalidInputError(f"{self.file.path}:1: no column {field!r} (columns: {', '.join(map(_printable, header[:8]))})", hint="pick the column with --text-field")
            col = header.index(field)
            for row in reader:
                if not row:
                    continue
                if col >= len(row):
                    raise InvalidInputError(
                        f"{self.file.path}:{current[0]}: row has {len(row)} fields, the header has {len(header)}",
                        hint="check that row's delimiters and quoting (.csv: commas, .tsv: tabs)",
                    )
                text = row[col].strip()
                if text:
                    yield current[0], text
        except csv.Error as exc:
            raise InvalidInputError(
                f"{self.file.path}:{current[0]}: bad CSV ({exc})", hint="check the quoting up to this line: a field's opening quote needs a closing one, and a quote inside a quoted field is written twice"
            ) from None

    def _parquet(self) -> Iterator[tuple[int, str]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        field = self.options.text_field
        with contextlib.ExitStack() as stack:
            if self.file.compression:
                # Parquet needs random access: spool the decompressed bytes to disk, not memory.
                source = spool = stack.enter_context(tempfile.TemporaryFile())
                with _HashingFile(self.file.path) as raw, _open_raw(self.file, raw) as fh:
                    shutil.copyfileobj(fh, spool, 1 << 20)
                    self._unchanged(raw.sha256())
                spool.seek(0)
                stamp = None
            else:
                # read in no fixed order: the file is hashed through the handle it is parsed from, and
                # must not have been rewritten in place (size, modification time) when it was parsed
                source = stack.enter_context(open(self.file.path, "rb"))
                self._unchanged(_sha256(source))
                source.seek(0)
                stamp = _stamp(source)
            try:
                pf = pq.ParquetFile(source)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInputError(f"{self.file.path}: not a readable Parquet file ({exc})", hint="re-create or re-download the file") from None
            names = pf.schema_arrow.names
            if field not in names:
                raise InvalidInputError(f"{self.file.path}: no column {field!r} (columns: {', '.join(names[:8])})", hint="pick the column with --text-field")
            typ = pf.schema_arrow.field(field).type
            if pa.types.is_dictionary(typ):  # e.g. a pandas categorical
                typ = typ.value_type
            if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
                raise InvalidInputError(f"{self.file.path}: column {field!r} is {typ}, not text", hint="pick a string column with --text-field")
            row = 0
            limit = self.options.max_line_bytes
            for batch in pf.iter_batches(batch_size=1024, columns=[field]):
                column = batch.column(0)
                if pa.types.is_dictionary(column.type):
                    column = column.dictionary_decode()
                # as bytes: Parquet does not guarantee a string column is valid UTF-8 (decoded here, counted or refused)
                for raw in column.cast(pa.large_binary()).to_pylist():
                    row += 1
                    if raw is None:
                        continue
                    if len(raw) > limit:
                        raise InvalidInputError(f"{self.file.path}: row {row} is longer than {limit} bytes", hint="split the text, or raise --max-line-bytes")
                    text = self._decode(raw, row, "row").strip()
                    if text:
                        yield row, text
            if stamp is not None and self.sha256 is not None and _stamp(source) != stamp:
                raise self._changed()


def _raw_lines(fh: IO[bytes], limit: int) -> Iterator[bytes]:
    """The lines of ``fh``, each with its line end: ``\\n``, ``\\r\\n`` or a lone ``\\r`` (old Mac files), as
    Python's universal newlines. A line longer than ``limit`` bytes (its line end not counted) comes
    cut short, at most about twice that, for the caller to refuse: it is never buffered whole.
    Lines without a lone CR (``\\n`` and ``\\r\\n`` files) take the fast path: one ``readline`` each.
    """
    readline = fh.readline
    while True:
        raw = readline(limit + 1)
        if not raw:
            return
        cr = raw.find(b"\r")
        if cr < 0 or (cr == len(raw) - 2 and raw[-1] == 10):  # no CR, or only a final CR LF: the common case
            yield raw
            continue
        while True:  # lone CRs: split at them; a CR at the very end may be the first half of a CR LF
            *lines, last = raw.splitlines(keepends=True)
            yield from lines
            if last.endswith(b"\n") or len(last.rstrip(b"\r")) > limit:  # whole, or too long already
                yield last
                break
            more = readline(limit + 1)
            if not more:
                yield last
                return
            raw = last + more


def _json_type(value: object) -> str:
    """What a parsed JSON value is, as a user reading the file would say it ("a number", "an object")."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _printable(name: str) -> str:
    """A field or column name as it can appear in a one-line error (a quoted CSV header may hold a newline)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


class _Counter:
    """The codec error handler below counts here; read and reset once per decoded line."""

    def __init__(self) -> None:
        self.n = 0

    def take(self) -> int:
        n, self.n = self.n, 0
        return n


_count = _Counter()
_SURROGATE = re.compile("[\ud800-\udfff]")


def _count_and_replace(exc: UnicodeDecodeError) -> tuple[str, int]:
    _count.n += 1
    return "\ufffd", exc.end


codecs.register_error("nlpzk-count", _count_and_replace)
