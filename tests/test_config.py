"""Configuration precedence: flags > environment > nlpzk.toml > defaults; secrets masked."""

import re

import pytest

from nlpzk.config import DEFAULT_CHROOT, Config
from nlpzk.errors import ConfigError


def test_precedence_flag_env_file_default(tmp_path):
    toml = tmp_path / "nlpzk.toml"
    toml.write_text('zk = "file-host:2181/fromfile"\nstore = "/file/store"\nsession_timeout = 7\nzk_port = 23000\n')
    env = {"NLPZK_STORE": "/env/store", "NLPZK_SESSION_TIMEOUT": "8"}
    cfg = Config.resolve(flags={"session_timeout": 9.0}, environ=env, toml_path=toml)
    assert (cfg.zk, cfg.source("zk")) == ("file-host:2181/fromfile", f"file {toml}")
    assert (cfg.store, cfg.source("store")) == ("/env/store", "env NLPZK_STORE")
    assert (cfg.session_timeout, cfg.source("session_timeout")) == (9.0, "flag")
    assert (cfg.zk_port, cfg.source("zk_port")) == (23000, f"file {toml}")
    assert (cfg.connect_timeout, cfg.source("connect_timeout")) == (5.0, "default")


def test_toml_nlpzk_table_and_unknown_key(tmp_path):
    good = tmp_path / "a.toml"
    good.write_text('[nlpzk]\nzk = "h:1"\n')
    assert Config.resolve(environ={}, toml_path=good).zk == "h:1"
    # keys at top level count too next to a [nlpzk] table (a top-level key was silently dropped)
    mixed = tmp_path / "m.toml"
    mixed.write_text('session_timeout = 7\n[nlpzk]\nconnect_timeout = 3\n')
    cfg = Config.resolve(environ={}, toml_path=mixed)
    assert (cfg.session_timeout, cfg.connect_timeout) == (7.0, 3.0)
    twice = tmp_path / "t.toml"
    twice.write_text('session_timeout = 7\n[nlpzk]\nsession_timeout = 8\n')
    with pytest.raises(ConfigError, match="session_timeout set both at top level and under"):
        Config.resolve(environ={}, toml_path=twice)
    bad = tmp_path / "b.toml"
    bad.write_text('zookeeper = "h:1"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        Config.resolve(environ={}, toml_path=bad)


def test_chroot_parsing_and_default():
    assert Config.resolve(flags={"zk": "a:1,b:2"}, environ={}, toml_path=None).hosts_and_chroot() == ("a:1,b:2", DEFAULT_CHROOT)
    assert Config.resolve(flags={"zk": "a:1/team/x/"}, environ={}, toml_path=None).hosts_and_chroot() == ("a:1", "/team/x")
    embedded = Config.resolve(flags={"zk_port": 1234}, environ={}, toml_path=None)
    assert embedded.embedded and embedded.hosts_and_chroot() == ("127.0.0.1:1234", DEFAULT_CHROOT)
    with pytest.raises(ConfigError, match="bad ZooKeeper address"):
        Config.resolve(flags={"zk": "nohostport"}, environ={}, toml_path=None).hosts_and_chroot()
    # '²' passes str.isdigit() and then int() refused it with a traceback; so did a port past 65535 in kazoo
    for zk in ("h:\u00b2", "h:\u0661\u0662", "h:0", "h:65536"):
        with pytest.raises(ConfigError, match="bad ZooKeeper address"):
            Config.resolve(flags={"zk": zk}, environ={}, toml_path=None).hosts_and_chroot()


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"auth": "nocolon"}, "user:password"),
        ({"acl_others": "write"}, "--acl-others must be 'read' or 'none'"),
        ({"zk_port": 70000}, "not a TCP port"),
        ({"connect_timeout": 0}, "--connect-timeout must be a positive number of seconds, not 0"),
    ],
)
def test_invalid_values(flags, message):
    with pytest.raises(ConfigError, match=message):
        Config.resolve(flags=flags, environ={}, toml_path=None)


@pytest.mark.parametrize(
    "line, message",
    [
        ("zk_port = 70000", "zk_port in {toml} 70000 is not a TCP port"),
        ('zk_port = "many"', "zk_port from file {toml} is not a valid int: 'many'"),
        ("session_timeout = -1", "session_timeout in {toml} must be a positive number of seconds, not -1"),
        ('acl_others = "write"', "acl_others in {toml} must be 'read' or 'none', not 'write'"),
    ],
)
def test_a_bad_value_in_the_file_is_reported_even_when_a_flag_or_variable_overrides_it(tmp_path, line, message):
    """It was ignored while overridden (only the value in force was checked), and the file stayed
    wrong until the override went; `nlpzk config show` did not tell either."""
    toml = tmp_path / "nlpzk.toml"
    toml.write_text(line + "\n")
    key = line.split()[0]
    env_name, good = {"zk_port": ("NLPZK_ZK_PORT", "12181"), "session_timeout": ("NLPZK_SESSION_TIMEOUT", "10"), "acl_others": ("NLPZK_ACL_OTHERS", "read")}[key]
    for flags, environ in (({key: _coerce_like(key, good)}, {}), ({}, {env_name: good})):
        with pytest.raises(ConfigError, match=re.escape(message.format(toml=toml))):
            Config.resolve(flags=flags, environ=environ, toml_path=toml)


def _coerce_like(key, text):
    return {"zk_port": int, "session_timeout": float}.get(key, str)(text)


def test_a_bad_environment_value_is_reported_even_when_a_flag_overrides_it():
    with pytest.raises(ConfigError, match="NLPZK_ZK_PORT 0 is not a TCP port"):
        Config.resolve(flags={"zk_port": 12181}, environ={"NLPZK_ZK_PORT": "0"}, toml_path=None)


def test_env_type_error_names_variable():
    with pytest.raises(ConfigError, match="NLPZK_ZK_PORT"):
        Config.resolve(environ={"NLPZK_ZK_PORT": "many"}, toml_path=None)


def test_show_masks_secret():
    cfg = Config.resolve(flags={"auth": "alice:s3cret"}, environ={}, toml_path=None)
    rows = {r["key"]: r for r in cfg.show()}
    assert rows["auth"]["value"] == "alice:****"
    assert "s3cret" not in repr(cfg.show())


def test_config_show_cli_masks_and_reports_sources(cli, cli_env):
    cli.env = dict(cli_env, NLPZK_AUTH="bob:hunter2")
    result = cli("config", "show", "--json")
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    import json

    rows = {r["key"]: r for r in json.loads(result.stdout)}
    assert rows["auth"] == {"key": "auth", "value": "bob:****", "source": "env NLPZK_AUTH", "env": "NLPZK_AUTH"}
    assert rows["zk"]["source"] == "env NLPZK_ZK"
