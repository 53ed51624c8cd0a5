"""Assertion helpers shared by the tests."""

from __future__ import annotations


def one_line_error(result_stderr: str) -> str:
    """Assert helper: stderr is exactly one 'error: ...' line and no traceback; returns it."""
    lines = [l for l in result_stderr.strip().splitlines() if l.strip()]
    assert "Traceback" not in result_stderr, result_stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result_stderr
    return lines[0]
