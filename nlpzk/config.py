"""Effective configuration: CLI flags > environment > ``nlpzk.toml`` > defaults.

Every value remembers where it came from, so ``nlpzk config show`` can say why it is what it is.

>>> cfg = Config.resolve(flags={"store": "file:///tmp/s"}, environ={}, toml_path=None)
>>> cfg.store, cfg.source("store")
('file:///tmp/s', 'flag')
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_CHROOT = "/nlpzk"
DEFAULT_EMBEDDED_PORT = 12181


def _state_home(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "nlpzk"


def _data_home(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "nlpzk"


# name -> (environment variable, type, secret)
_FIELDS: dict[str, tuple[str, type, bool]] = {
    "zk": ("NLPZK_ZK", str, False),
    "store": ("NLPZK_STORE", str, False),
    "auth": ("NLPZK_AUTH", str, True),
    "acl_others": ("NLPZK_ACL_OTHERS", str, False),
    "state_dir": ("NLPZK_STATE_DIR", str, False),
    "zk_port": ("NLPZK_ZK_PORT", int, False),
    "connect_timeout": ("NLPZK_CONNECT_TIMEOUT", float, False),
    "session_timeout": ("NLPZK_SESSION_TIMEOUT", float, False),
    "zk_tls": ("NLPZK_ZK_TLS", bool, False),
    "zk_ca": ("NLPZK_ZK_CA", str, False),
    "zk_cert": ("NLPZK_ZK_CERT", str, False),
    "zk_key": ("NLPZK_ZK_KEY", str, False),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Where ZooKeeper and the store are, and how to talk to them.

    ``zk`` is ``None`` for the embedded default server (started on demand on ``zk_port``).
    ``auth`` is ``user:password`` for ZooKeeper digest auth; nodes nlpzk creates then carry an ACL
    giving the creator all rights and others ``acl_others`` (``read`` or ``none``).
    """

    zk: str | None = None
    store: str | None = None
    auth: str | None = None
    acl_others: str = "read"
    state_dir: str | None = None
    zk_port: int = DEFAULT_EMBEDDED_PORT
    connect_timeout: float = 5.0
    session_timeout: float = 10.0
    zk_tls: bool = False
    zk_ca: str | None = None
    zk_cert: str | None = None
    zk_key: str | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    # -- resolution ---------------------------------------------------------------------------

    @classmethod
    def resolve(
        cls,
        flags: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        toml_path: str | os.PathLike[str] | None | bool = True,
    ) -> "Config":
        """Merge flags, environment and ``nlpzk.toml``.

        ``toml_path=True`` looks for ``$NLPZK_CONFIG`` or ``./nlpzk.toml``; ``None``/``False`` reads no file.
        """
        environ = os.environ if environ is None else environ
        flags = {k: v for k, v in (flags or {}).items() if v is not None}
        unknown = set(flags) - set(_FIELDS)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(sorted(unknown))}")

        file_values: dict[str, Any] = {}
        file_name = None
        if toml_path is True:
            toml_path = environ.get("NLPZK_CONFIG") or ("nlpzk.toml" if os.path.exists("nlpzk.toml") else None)
            if toml_path and not os.path.exists(toml_path):
                raise ConfigError(f"config file {toml_path} (from NLPZK_CONFIG) does not exist", hint="fix the path in NLPZK_CONFIG, or unset it")
        if toml_path:
            file_name = str(toml_path)
            try:
                with open(toml_path, "rb") as fh:
                    file_values = tomllib.load(fh)
            except FileNotFoundError:
                raise ConfigError(f"config file {toml_path} does not exist", hint="check the path given to --config") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {toml_path} is not valid TOML: {exc}", hint='fix it there (settings look like: zk = "host:2181")') from None
            except UnicodeDecodeError:  # tomllib decodes before parsing: a binary file fails here
                raise ConfigError(
                    f"config file {toml_path} is not UTF-8 text", hint="TOML files are UTF-8: convert it (e.g. iconv -f latin1 -t utf-8), or check that the path names the right file"
                ) from None
            except IsADirectoryError:
                raise ConfigError(f"config file {toml_path} is a directory", hint="give the path of a .toml file, e.g. nlpzk.toml") from None
            if isinstance(file_values.get("nlpzk"), dict):
                # keys at top level and under [nlpzk] both count; the same key in both is ambiguous
                table = file_values.pop("nlpzk")
                both = sorted(set(table) & set(file_values))
                if both:
                    raise ConfigError(f"config file {toml_path}: {', '.join(both)} set both at top level and under [nlpzk]", hint="keep one of them")
                file_values = {**file_values, **table}
            bad = set(file_values) - set(_FIELDS)
            if bad:
                raise ConfigError(
                    f"config file {toml_path}: unknown key(s) {', '.join(sorted(bad))}",
                    hint=f"known keys: {', '.join(_FIELDS)}",
                )

        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, (env_name, typ, _secret) in _FIELDS.items():
            given = []  # (raw, source), the one in force first
            if name in flags:
                given.append((flags[name], "flag"))
            if environ.get(env_name) not in (None, ""):
                given.append((environ[env_name], f"env {env_name}"))
            if name in file_values:
                given.append((file_values[name], f"file {file_name}"))
            # every value given is checked, not only the one in force: a bad value in nlpzk.toml (or the
            # environment) is wrong there whatever overrides it now, and would be used once the override goes
            checked = [_check(name, _coerce(name, raw, typ, src), src) for raw, src in given]
            if checked:
                values[name], sources[name] = checked[0], given[0][1]
            else:
                sources[name] = "default"
        return cls(**values, sources=sources)

    # -- derived values -----------------------------------------------------------------------

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir) if self.state_dir else _state_home(os.environ)

    @property
    def store_uri(self) -> str:
        if self.store:
            return self.store
        return (_data_home(os.environ) / "store").as_uri()

    @property
    def embedded(self) -> bool:
        """True when nlpzk runs (or reuses) its own ZooKeeper server."""
        return self.zk is None

    def hosts_and_chroot(self) -> tuple[str, str]:
        """Split ``zk`` into the host list and the chroot (default ``/nlpzk``)."""
        conn = self.zk if self.zk is not None else f"127.0.0.1:{self.zk_port}"
        hosts, slash, chroot = conn.partition("/")
        chroot = "/" + chroot.strip("/") if slash and chroot.strip("/") else DEFAULT_CHROOT
        for host in hosts.split(","):
            h, _, port = host.strip().rpartition(":")
            # str.isdigit() also says yes to '²' and '١٢', which socket and kazoo then refuse with a traceback
            if not h or not (port.isascii() and port.isdigit()):
                raise ConfigError(f"bad ZooKeeper address {host!r}", hint="use host:port[,host:port...][/chroot]")
            if not 0 < int(port) < 65536:
                raise ConfigError(f"bad ZooKeeper address {host!r}: {port} is not a TCP port", hint="use a port from 1 to 65535, e.g. host:2181")
        return hosts, chroot

    def with_overrides(self, **kwargs: Any) -> "Config":
        sources = dict(self.sources)
        sources.update({k: "flag" for k in kwargs})
        return dataclasses.replace(self, sources=sources, **kwargs)

    def show(self) -> list[dict[str, Any]]:
        """Effective values with their sources; secrets masked."""
        rows = []
        for name, (env_name, _typ, secret) in _FIELDS.items():
            value = getattr(self, name)
            if secret and value:
                user = str(value).split(":", 1)[0]
                value = f"{user}:****"
            rows.append({"key": name, "value": value, "source": self.source(name), "env": env_name})
        rows.append({"key": "store (effective)", "value": self.store_uri, "source": "derived", "env": ""})
        rows.append({"key": "state dir (effective)", "value": str(self.state_path), "source": "derived", "env": ""})
        hosts, chroot = self.hosts_and_chroot()
        rows.append({"key": "zk (effective)", "value": f"{hosts}{chroot}" + (" [embedded]" if self.embedded else ""), "source": "derived", "env": ""})
        return rows


def _label(name: str, src: str) -> str:
    """How the user set ``name`` (``src``: a source as ``Config.source`` gives it): the flag
    (``--zk-port``), the variable (``NLPZK_ZK_PORT``) or the file's key."""
    if src == "flag":
        return "--" + name.replace("_", "-")
    if src.startswith("env "):
        return src[len("env ") :]
    if src.startswith("file "):
        return f"{name} in {src[len('file ') :]}"
    return name


def _check(name: str, value: Any, src: str) -> Any:
    """``value`` of setting ``name`` given by ``src``, if it is a valid one; ConfigError otherwise."""
    label = _label(name, src)
    if name == "acl_others" and value not in ("read", "none"):
        raise ConfigError(f"{label} must be 'read' or 'none', not {value!r}", hint="read: others may read the nodes nlpzk creates; none: only the --auth user may")
    if name == "auth" and ":" not in value:
        # never echo the value: it may be a password typed in the wrong place
        raise ConfigError(f"{label} must look like user:password", hint="give ZooKeeper digest credentials as USER:PASSWORD, e.g. --auth alice:s3cret")
    if name in ("connect_timeout", "session_timeout") and value <= 0:
        default = next(f.default for f in dataclasses.fields(Config) if f.name == name)
        raise ConfigError(f"{label} must be a positive number of seconds, not {value:g}", hint=f"e.g. --{name.replace('_', '-')} {default:g} (the default)")
    if name == "zk_port" and not (0 < value < 65536):
        raise ConfigError(f"{label} {value} is not a TCP port", hint=f"use a port from 1 to 65535 (default {DEFAULT_EMBEDDED_PORT})")
    if name == "zk" and not value.strip():
        raise ConfigError(f"{label} is empty", hint="give host:port[,host:port...][/chroot]")
    return value


_TYPE_HINTS = {
    int: "give a whole number, e.g. 12181",
    float: "give a number of seconds, e.g. 5 or 0.5",
    bool: "use true or false (also 1/0, yes/no, on/off)",
    str: "give a text value",
}


def _coerce(name: str, raw: Any, typ: type, src: str) -> Any:
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return typ(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} from {src} is not a valid {typ.__name__}: {raw!r}", hint=_TYPE_HINTS[typ]) from None
