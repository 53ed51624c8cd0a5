"""A network partition between one process and ZooKeeper, made with a loopback-only network namespace.

The process runs in its own namespace (``ip netns``), where only ``lo`` exists: it can reach
ZooKeeper only through the relays this module opens *inside* that namespace, each forwarding to one
ensemble member in the host's loopback. ``cut()`` closes every relayed connection and refuses new
ones (the process is cut off, ZooKeeper still runs); ``heal()`` lets connections through again.
No address outside 127.0.0.1 is ever configured.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
import uuid

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")


class Partition:
    """``with Partition(targets) as p: p.run(cmd); p.cut(); p.heal()``; ``p.hosts`` is the connect string inside."""

    def __init__(self, targets: list[tuple[str, int]]):
        self.name = f"nlpzk-fault-{uuid.uuid4().hex[:8]}"
        self.targets = targets
        self.open = threading.Event()
        self.open.set()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listeners: list[socket.socket] = []
        self.ports: list[int] = []

    def __enter__(self) -> "Partition":
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"], check=True)
        self._listen_inside()
        for listener, target in zip(self._listeners, self.targets):
            threading.Thread(target=self._accept, args=(listener, target), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.cut()
        for listener in self._listeners:
            listener.close()
        subprocess.run(["ip", "netns", "delete", self.name], check=False)

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def _listen_inside(self) -> None:
        # a socket belongs to the namespace of the thread that created it: enter, open, leave
        def work() -> None:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            inside = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                _setns(inside)
                for _ in self.targets:
                    s = socket.socket()
                    s.bind(("127.0.0.1", 0))
                    s.listen(64)
                    self._listeners.append(s)
                    self.ports.append(s.getsockname()[1])
            finally:
                _setns(home)
                os.close(home)
                os.close(inside)

        t = threading.Thread(target=work)
        t.start()
        t.join()
        assert len(self.ports) == len(self.targets)

    def _accept(self, listener: socket.socket, target: tuple[str, int]) -> None:
        while True:
            try:
                inner, _ = listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                inner.close()  # partitioned: nothing gets through
                continue
            try:
                outer = socket.create_connection(target, timeout=2)
                outer.settimeout(None)
            except OSError:
                inner.close()
                continue
            with self._lock:
                self._conns += [inner, outer]
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self.open.is_set():
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self) -> None:
        self.open.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def heal(self) -> None:
        self.open.set()
