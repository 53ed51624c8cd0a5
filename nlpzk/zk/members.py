"""Job membership: one ephemeral node per live worker under ``/jobs/<job>/workers``.

The node carries small facts (host, pid, threads, words/s of the last round). It vanishes with the
worker's session. On SUSPENDED nothing changes; on LOST the node is gone and :meth:`Member.ensure`
re-creates it under the new session (the worker calls it at the top of each round).
"""

from __future__ import annotations

import json
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from ..errors import NotFoundError
from . import paths, registry


class Member:
    def __init__(self, zk: KazooClient, job: str, worker_id: str, info: dict[str, Any]) -> None:
        self.zk = zk
        self.job = job
        self.worker_id = worker_id
        self.info = dict(info)
        self.path = paths.job_worker(job, worker_id)
        self._session: int | None = None

    def ensure(self) -> bool:
        """Make sure the membership node exists under the current session; True if (re)created.

        Free while the session is the one that created the node (no request: a worker calls this on
        every step): an ephemeral node lives as long as its session, only :meth:`leave` deletes it,
        and :meth:`update` re-creates it should anyone else have.
        """
        session = self.zk.client_id[0] if self.zk.client_id else None
        if session is not None and session == self._session:
            return False
        while True:
            try:
                # never makepath: a worker joining as `train delete` removes the job would bring
                # /jobs/<job> back, empty, and no command could remove it again
                self.zk.create(self.path, registry.dumps(self.info), ephemeral=True)
                break
            except NoNodeError:
                if not registry.create_below(self.zk, [paths.job_workers(self.job)]):
                    raise NotFoundError(f"training job {self.job!r} was deleted", hint="see: nlpzk train list") from None
            except NodeExistsError:
                # a retried create that succeeded, or the node of our expired session not yet reaped
                stat = self.zk.exists(self.path)
                if stat is not None and stat.ephemeralOwner == session:
                    break
                if stat is not None:
                    try:
                        self.zk.delete(self.path, version=stat.version)
                    except (NoNodeError, BadVersionError):
                        pass  # reaped meanwhile: create again
        self._session = session
        return True

    def update(self, **facts: Any) -> None:
        self.info.update(facts)
        try:
            self.zk.set(self.path, registry.dumps(self.info))
        except NoNodeError:
            self.ensure()

    def update_async(self, **facts: Any) -> None:
        """:meth:`update` without waiting for the reply: for facts shown to people (round, words/s),
        sent from the path every worker of a round waits on. A node found gone is re-created by the
        next :meth:`ensure`."""
        self.info.update(facts)

        def done(req: Any) -> None:
            try:
                req.get()
            except NoNodeError:
                self._session = None
            except Exception:  # informational: the next update carries the facts again
                pass

        self.zk.set_async(self.path, registry.dumps(self.info)).rawlink(done)

    def leave(self) -> None:
        try:
            self.zk.delete(self.path)
        except NoNodeError:
            pass


def members(zk: KazooClient, job: str) -> dict[str, dict[str, Any]]:
    """Live workers of ``job`` with their facts."""
    out = {}
    for wid in registry.children(zk, paths.job_workers(job)):
        try:
            data, _ = zk.get(paths.job_worker(job, wid))
        except NoNodeError:
            continue
        try:
            out[wid] = json.loads(data.decode()) if data else {}
        except ValueError:
            out[wid] = {}
    return out
