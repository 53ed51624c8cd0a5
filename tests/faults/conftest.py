"""Fault-injection fixtures: a fresh chroot and store per test on the session's 3-server ensemble.

The ensemble is shared by the whole session, so every test here starts and ends with all three
members serving (a test that stops one restarts it in a ``finally``; this fixture checks it did).
Measured recovery times are collected with :func:`record_recovery` and printed at the end of the run.
"""

from __future__ import annotations

import pytest

from nlpzk import testing

_RECOVERY: list[tuple[str, str, float]] = []


def _full_ensemble(ensemble) -> None:
    for member in ensemble.members:
        if not member.is_running() or member.status() is None:
            member.start()
    ensemble.wait_for_leader()


@pytest.fixture
def fault_config(ensemble, tmp_path):
    _full_ensemble(ensemble)
    return testing.config_for(ensemble.hosts, tmp_path / "store", session_timeout=3.0)


@pytest.fixture
def fault_cluster(fault_config, ensemble):
    c = testing.Cluster.connect(fault_config)
    yield c
    c.close()
    _full_ensemble(ensemble)


@pytest.fixture
def fault_env(fault_config, tmp_path):
    """Environment for ``python -m nlpzk`` processes against this test's chroot and store."""
    return testing.env_for(fault_config, tmp_path / "state")


@pytest.fixture
def record_recovery(request):
    """``record_recovery("leader stop -> first write", seconds)``: a measured figure for the summary."""

    def record(what: str, seconds: float) -> None:
        _RECOVERY.append((request.node.name, what, seconds))
        request.node.user_properties.append((what, round(seconds, 3)))

    return record


def pytest_terminal_summary(terminalreporter):
    if _RECOVERY:
        terminalreporter.section("fault recovery times")
        for test, what, seconds in _RECOVERY:
            terminalreporter.write_line(f"{seconds:8.2f} s  {what}  ({test})")
