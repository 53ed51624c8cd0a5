"""Local ZooKeeper servers: the embedded default (standalone) and a local ensemble.

nlpzk does not ship ZooKeeper; it runs the one installed on the machine, found through
``ZOOKEEPER_HOME`` (an Apache release: ``lib/*.jar``) or Debian's ``zookeeper`` package
(``/usr/share/java/zookeeper.jar``), with the ``java`` on ``PATH`` (or ``$JAVA_HOME/bin/java``).

A server lives in one directory: ``zoo.cfg``, ``data/``, ``server.log``, ``server.pid``. Starting a
server that is already running, or stopping one that is not, is not an error (both are idempotent).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import MissingDependencyError, NlpzkError, ZkUnavailableError

INSTALL_HINT = "install them with: sudo apt-get install -y default-jre-headless zookeeper (or set ZOOKEEPER_HOME to an Apache ZooKeeper release)"
DEBIAN_JARS = "/usr/share/java"


@dataclasses.dataclass(frozen=True)
class ZkInstall:
    java: str
    classpath: str
    home: str


def find_install(environ: dict[str, str] | None = None, debian_jars: str = DEBIAN_JARS) -> ZkInstall:
    """Locate a JRE and ZooKeeper's jars, or say exactly what to install."""
    environ = dict(os.environ if environ is None else environ)
    java = None
    if environ.get("JAVA_HOME") and os.access(os.path.join(environ["JAVA_HOME"], "bin", "java"), os.X_OK):
        java = os.path.join(environ["JAVA_HOME"], "bin", "java")
    java = java or shutil.which("java", path=environ.get("PATH"))
    home = environ.get("ZOOKEEPER_HOME")
    classpath = None
    if home:
        jars = sorted(glob.glob(os.path.join(home, "lib", "*.jar")) + glob.glob(os.path.join(home, "*.jar")))
        if not any("zookeeper" in os.path.basename(j) for j in jars):
            raise MissingDependencyError(
                f"ZOOKEEPER_HOME={home} holds no zookeeper jar",
                hint="point it at an unpacked Apache ZooKeeper release (with lib/), or unset it to use Debian's package",
            )
        classpath = os.pathsep.join(jars)
    elif os.path.exists(os.path.join(debian_jars, "zookeeper.jar")):
        home = "/usr/share/zookeeper"
        # zookeeper.jar's manifest names its dependencies; slf4j-simple makes the server log readable.
        parts = [os.path.join(debian_jars, "zookeeper.jar")]
        simple = os.path.join(debian_jars, "slf4j-simple.jar")
        if os.path.exists(simple):
            parts.append(simple)
        classpath = os.pathsep.join(parts)
    missing = [n for n, v in (("Java", java), ("ZooKeeper", classpath)) if not v]
    if missing:
        raise MissingDependencyError(f"{' and '.join(missing)} not found", hint=INSTALL_HINT)
    return ZkInstall(java=java, classpath=classpath, home=home or "")


def four_letter(host: str, port: int, word: str = "srvr", timeout: float = 2.0, tls: ssl.SSLContext | None = None) -> str | None:
    """Send a four-letter word (over TLS with ``tls``: a ``secureClientPort``); ``None`` when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
            sock.settimeout(timeout)
            sock.sendall(word.encode())
            chunks = []
            while True:
                try:
                    chunk = sock.recv(65536)
                except ssl.SSLError:  # the server closes after answering, not always with a TLS close_notify
                    if chunks:
                        break
                    raise
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None


def parse_srvr(text: str | None) -> dict[str, str] | None:
    """``srvr`` output -> ``{'mode': 'leader', 'version': '3.8.0', ...}``; ``None`` if not serving."""
    if not text or "not currently serving" in text:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip().lower().replace(" ", "_")] = value.strip()
    if "zookeeper_version" in out:
        out["version"] = out["zookeeper_version"].split("-", 1)[0].split(",")[0]
    return out if "mode" in out else None


_GIVEN: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, picked below the kernel's ephemeral range.

    A port from that range (what ``bind(0)`` gives) can be handed to an outgoing connection as its
    local port: a member of an ensemble then fails to start, or to restart after a stop, with
    "Address already in use" (seen in tests/faults, where clients reconnect while a member is down).
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError, IndexError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if low > 2048:
        for _ in range(100):
            port = random.randint(max(1024, low - 16384), low - 1)
            if port in _GIVEN:  # not bound yet by whoever asked for it earlier (an ensemble asks 9 times)
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                _GIVEN.add(port)
                return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Peer:
    server_id: int
    client_port: int
    quorum_port: int
    election_port: int
    host: str = "127.0.0.1"


class LocalServer:
    """One ZooKeeper server process, standalone or one member of a local ensemble."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        client_port: int,
        *,
        host: str = "127.0.0.1",
        server_id: int | None = None,
        peers: Sequence[Peer] = (),
        tick_ms: int = 500,
        fsync: bool = True,
        heap_mb: int = 256,
        install: ZkInstall | None = None,
    ) -> None:
        self.dir = Path(base_dir)
        self.client_port = client_port
        self.host = host
        self.server_id = server_id
        self.peers = list(peers)
        self.tick_ms = tick_ms
        self.fsync = fsync
        self.heap_mb = heap_mb
        self._install = install

    # -- files --------------------------------------------------------------------------------

    @property
    def cfg_path(self) -> Path:
        return self.dir / "zoo.cfg"

    @property
    def pid_path(self) -> Path:
        return self.dir / "server.pid"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    def _write_config(self) -> None:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={data}",
            f"clientPort={self.client_port}",
            f"clientPortAddress={self.host}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
            f"minSessionTimeout={2 * self.tick_ms}",
            "maxSessionTimeout=120000",
            "autopurge.snapRetainCount=3",
            "autopurge.purgeInterval=1",
        ]
        if self.peers:
            # 3.5+ reconfig off: static membership is what the tests and one-machine trials need.
            lines.append("standaloneEnabled=false")
            lines.append("reconfigEnabled=false")
            for p in self.peers:
                lines.append(f"server.{p.server_id}={p.host}:{p.quorum_port}:{p.election_port}")
            (data / "myid").write_text(f"{self.server_id}\n")
        self.cfg_path.write_text("\n".join(lines) + "\n")

    # -- state --------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of our running server process, if any (checked against /proc, not just the file)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return pid
        # An empty cmdline means the process is mid-exec (or a kernel thread): do not judge it yet.
        if cmdline and str(self.cfg_path) not in cmdline:
            return None
        try:  # a zombie child of ours is not running
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return None
        except (OSError, IndexError):
            pass
        return pid

    def is_running(self) -> bool:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            return True  # our own child: its exit status is the truth, whatever /proc says mid-exec
        return self.pid() is not None

    def status(self) -> dict[str, str] | None:
        """Parsed ``srvr`` answer (mode, version, node count, ...) or ``None`` if not serving."""
        return parse_srvr(four_letter(self.host, self.client_port, "srvr"))

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- lifecycle ----------------------------------------------------------------------------

    def spawn(self) -> bool:
        """Start the process without waiting for it to serve. False if it was already running."""
        if self.is_running():
            return False
        install = self._install or find_install()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        cmd = [
            install.java,
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",
            "-Dzookeeper.admin.enableServer=false",
            f"-Dzookeeper.forceSync={'yes' if self.fsync else 'no'}",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp",
            install.classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.cfg_path),
        ]
        with open(self.log_path, "ab") as log:
            # A new session: the server outlives the command that started it (like `zkServer.sh start`).
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.dir
            )
        self.pid_path.write_text(f"{proc.pid}\n")
        self._proc = proc
        return True

    def wait_serving(self, timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status:
                return status
            if not self.is_running():
                raise NlpzkError(
                    f"ZooKeeper server in {self.dir} exited during start-up",
                    hint=f"see {self.log_path}: {self._last_error_line()}",
                )
            if time.monotonic() > deadline:
                raise ZkUnavailableError(
                    f"ZooKeeper server in {self.dir} did not start serving within {timeout:.0f}s",
                    hint=f"see {self.log_path}",
                )
            time.sleep(0.1)

    def _last_error_line(self) -> str:
        for line in reversed(self.log_tail(200).splitlines()):
            if "ERROR" in line or "Exception" in line or "Address already in use" in line:
                return line.strip()[-200:]
        return "no error line in the log"

    def start(self, timeout: float = 30.0) -> bool:
        """Start and wait until serving. Returns False (and does nothing) if it was already running."""
        started = self.spawn()
        self.wait_serving(timeout)
        return started

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the server (SIGTERM, then SIGKILL). Returns False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                proc = getattr(self, "_proc", None)
                if proc is not None:
                    proc.poll()
                if self.pid() is None:
                    self.pid_path.unlink(missing_ok=True)
                    return True
                time.sleep(0.05)
        raise NlpzkError(f"could not stop ZooKeeper server pid {pid}")

    def kill(self) -> None:
        """SIGKILL the server (a crash, for failure tests)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.stop(timeout=5.0)


class Ensemble:
    """A local ensemble of ``n`` servers with distinct client, quorum and election ports.

    Ports: client ``base_port + i``, quorum ``base_port + 100 + i``, election ``base_port + 200 + i``
    (``i`` from 0), unless ``ports`` gives ``(client, quorum, election)`` triples.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        servers: int = 3,
        *,
        base_port: int | None = None,
        ports: Sequence[tuple[int, int, int]] | None = None,
        tick_ms: int = 500,
        fsync: bool = True,
        install: ZkInstall | None = None,
    ) -> None:
        if servers < 1:
            raise NlpzkError("an ensemble needs at least one server")
        self.dir = Path(base_dir)
        if ports is None:
            if base_port is None:
                ports = [(free_port(), free_port(), free_port()) for _ in range(servers)]
            else:
                ports = [(base_port + i, base_port + 100 + i, base_port + 200 + i) for i in range(servers)]
        self.peers = [Peer(i + 1, c, q, e) for i, (c, q, e) in enumerate(ports)]
        self.members = [
            LocalServer(
                self.dir / f"server{p.server_id}",
                p.client_port,
                server_id=p.server_id,
                peers=self.peers,
                tick_ms=tick_ms,
                fsync=fsync,
                install=install,
            )
            for p in self.peers
        ]

    @classmethod
    def recorded_ports(cls, base_dir: str | os.PathLike[str]) -> list[tuple[int, int, int]] | None:
        """The ``(client, quorum, election)`` ports the ensemble in ``base_dir`` was last started with.

        Read from its members' ``zoo.cfg`` (member 1's lists every peer; each member's has its own
        client port). ``None`` when there is no complete configuration there (never started).
        """
        base = Path(base_dir)
        first = _read_cfg(base / "server1" / "zoo.cfg")
        peers: dict[int, tuple[int, int]] = {}
        for key, value in first.items():
            if key.startswith("server.") and _digits(key[7:]):
                parts = value.split(";", 1)[0].split(":")
                if len(parts) < 3 or not (_digits(parts[1]) and _digits(parts[2])):
                    return None
                peers[int(key[7:])] = (int(parts[1]), int(parts[2]))
        if not peers or sorted(peers) != list(range(1, len(peers) + 1)):
            return None
        ports = []
        for sid in sorted(peers):
            client = _read_cfg(base / f"server{sid}" / "zoo.cfg").get("clientPort", "")
            if not _digits(client):
                return None
            ports.append((int(client), *peers[sid]))
        return ports

    @property
    def hosts(self) -> str:
        return ",".join(m.address for m in self.members)

    def start(self, timeout: float = 60.0) -> bool:
        started = [m.spawn() for m in self.members]
        for m in self.members:
            m.wait_serving(timeout)
        return any(started)

    def stop(self) -> bool:
        return any([m.stop() for m in self.members])

    def statuses(self) -> list[dict[str, str] | None]:
        return [m.status() for m in self.members]

    def leader(self) -> int | None:
        """Index of the current leader, or ``None`` when there is no quorum."""
        for i, st in enumerate(self.statuses()):
            if st and st.get("mode") == "leader":
                return i
        return None

    def wait_for_leader(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idx = self.leader()
            if idx is not None:
                return idx
            time.sleep(0.1)
        raise ZkUnavailableError(f"ensemble in {self.dir} elected no leader within {timeout:.0f}s")


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit()`` also says yes to '²' (a hand-edited zoo.cfg), which ``int()`` refuses."""
    return text.isascii() and text.isdigit()


def _read_cfg(path: Path) -> dict[str, str]:
    """``key=value`` lines of a ``zoo.cfg`` (empty if it cannot be read)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            out[key.strip()] = value.strip()
    return out


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def embedded_server(state_dir: str | os.PathLike[str], port: int) -> LocalServer:
    return LocalServer(Path(state_dir) / "zookeeper", port)


def ensure_embedded(state_dir: str | os.PathLike[str], port: int, timeout: float = 30.0) -> bool:
    """Start the embedded server unless something already serves on ``port``. True if started now.

    A file lock makes concurrent nlpzk commands agree on one server instead of racing for the port.
    """
    server = embedded_server(state_dir, port)
    if server.status():
        return False
    with _file_lock(Path(state_dir) / "zookeeper.lock"):
        if server.status():
            return False
        if server.is_running():  # still starting (another command spawned it)
            server.wait_serving(timeout)
            return False
        if four_letter(server.host, port, "ruok", timeout=0.5) is not None:
            raise ZkUnavailableError(
                f"port {port} is taken by something that is not a serving ZooKeeper",
                hint="choose another with --zk-port / NLPZK_ZK_PORT, or point --zk at a real server",
            )
        return server.start(timeout)
