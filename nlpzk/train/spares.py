"""A job's spare round files: tidied files kept for their page-cache pages.

Every round writes a model-sized set of new files (each worker's delta, the merged parameter
parts) and its tidy deletes the previous round's. Writing into pages the kernel has to find afresh
cost up to ten times the copy on this machine (a virtual machine whose free pages go back to the
host: ``bench/diag_page_cache_writes.py``), and that write sits on the round's critical path. So on
a local store the tidy moves the files it is done with into ``jobs/<job>/spare/`` (at most
:data:`CAP`), and a worker writes its next delta or merged part over one of them
(``Store.atomic_output(reuse=)``): same bytes, same renamed-into-place file, pages already there.

Only files no reader needs are retired: a round is tidied after its publish, once the parameters
merged from it are on the disk; a worker still reading a tidied round's files is one whose work
on that round is fenced anyway. Spares older than :data:`MAX_AGE` are deleted rather than used
(``nlpzk gc`` may count them as unregistered files after its hour); a finished job's go with its
round debris (``tidy_finished``).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
import uuid

from ..store import Store, naming

CAP = 8
MAX_AGE = 600.0


def folder(job: str) -> str:
    return posixpath.dirname(naming.job_spare(job, "x"))


def retire(store: Store, job: str, rels: list[str]) -> None:
    """Move files nobody reads any more into the job's spares (local stores; past :data:`CAP`, and
    on other stores, they are deleted)."""
    if not store.local:
        for rel in rels:
            store.delete(rel)
        return
    where = store.full(folder(job))
    try:
        os.makedirs(where, exist_ok=True)
        have = len(os.listdir(where))
    except OSError:
        have = CAP
    for rel in rels:
        if have < CAP:
            try:
                os.rename(store.full(rel), os.path.join(where, f"{uuid.uuid4().hex}.npy"))
                have += 1
                continue
            except FileNotFoundError:
                continue
            except OSError:
                pass
        store.delete(rel)


def candidates(store: Store, job: str, nbytes: int) -> list[str]:
    """The job's spares to write ``nbytes`` over, best first: the same size, then larger ones (cut
    to size), then smaller. Spares older than :data:`MAX_AGE` are deleted instead."""
    if not store.local:
        return []
    where = store.full(folder(job))
    try:
        names = os.listdir(where)
    except OSError:
        return []
    now = time.time()
    ranked = []
    for name in names:
        path = os.path.join(where, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if now - st.st_mtime > MAX_AGE:
            with contextlib.suppress(OSError):
                os.unlink(path)
            continue
        ranked.append((st.st_size != nbytes, st.st_size < nbytes, abs(st.st_size - nbytes), name))
    return [naming.job_spare(job, name) for *_, name in sorted(ranked)]
