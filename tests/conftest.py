"""Fixtures: a real standalone ZooKeeper for the session, a 3-server ensemble when asked, a fresh
chroot and store per test. Server logs are attached to the report of a failing test.

Every process the run starts (servers, ``nlpzk`` commands, their workers) dies with it, even when
pytest is killed: see :func:`nlpzk.testing.reap_at_exit`."""

from __future__ import annotations

from pathlib import Path

import pytest

from _helpers import Cli
from nlpzk import testing

ROOT = Path(__file__).resolve().parent.parent
_servers: list = []


def pytest_configure(config):
    testing.reap_at_exit()


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory):
    server = testing.start_standalone(tmp_path_factory.mktemp("zk"))
    _servers.append(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ensemble(tmp_path_factory):
    ens = testing.start_ensemble(tmp_path_factory.mktemp("ensemble"), 3)
    _servers.extend(ens.members)
    yield ens
    ens.stop()


@pytest.fixture
def config(zk_server, tmp_path):
    return testing.config_for(zk_server.address, tmp_path / "store")


@pytest.fixture
def cluster(config):
    c = testing.Cluster.connect(config)
    yield c
    c.close()


@pytest.fixture
def cli_env(config, tmp_path):
    """Environment for CLI runs against this test's chroot and store."""
    return testing.env_for(config, tmp_path / "state")


@pytest.fixture
def cli(cli_env):
    return Cli(cli_env)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for server in _servers:
            tail = server.log_tail(40)
            if tail:
                report.sections.append((f"ZooKeeper log {server.dir}", tail))
