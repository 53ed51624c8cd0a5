"""One exception root for nlpzk, a class per condition.

Every error carries an ``exit_code`` and a one-line message that says what is wrong and what to do.
The CLI translates them into an error line and an exit code in exactly one place (``cli/_util.py``);
the library itself never prints and never exits.
"""

from __future__ import annotations


class NlpzkError(Exception):
    """Root of every error nlpzk raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} ({hint})")

    def line(self) -> str:
        """The single line shown to a user: what is wrong, then what to do."""
        return self.message if not self.hint else f"{self.message} — {self.hint}"


def first_few(items: list[str], limit: int = 5) -> str:
    """``"a, b, c"``, or ``"a, b, c, d, e and 3 more"``: a list named in a one-line message."""
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


class ConfigError(NlpzkError):
    """The configuration (flags, environment, nlpzk.toml) is not valid."""

    exit_code = 2


class ZkUnavailableError(NlpzkError):
    """ZooKeeper could not be reached within the connect timeout, or the session was lost."""

    exit_code = 3


class NotFoundError(NlpzkError):
    """A corpus, vocabulary, version, tag, job or model that does not exist."""

    exit_code = 4


class InvalidInputError(NlpzkError):
    """Input data or arguments that nlpzk cannot use (bad path, binary file, bad JSON, ...)."""

    exit_code = 5


class TokenizerOptionError(InvalidInputError, ConfigError):
    """A tokenizer option with a bad value: a bad argument (exit 5, as InvalidInputError comes first),
    and still a ConfigError for callers that caught those before."""


class ConflictError(NlpzkError):
    """Something already exists or was changed concurrently in a way that forbids the operation."""

    exit_code = 6


class IntegrityError(NlpzkError):
    """Bulk data and the registry disagree: a missing file, a wrong checksum, a corrupted shard."""

    exit_code = 7


class NotAuthorizedError(NlpzkError):
    """ZooKeeper refused the operation: missing or wrong credentials for the node's ACL."""

    exit_code = 8


class MissingDependencyError(NlpzkError):
    """A program nlpzk needs (Java, ZooKeeper) is not installed."""

    exit_code = 9


class StoreError(NlpzkError):
    """The bulk store could not be read or written (permissions, disk full, unreachable)."""

    exit_code = 10


class WrongStoreError(StoreError):
    """Files ZooKeeper registers are missing because the store itself looks wrong: its root does not
    exist or lacks the folder they live in (``--store`` / ``NLPZK_STORE`` is not this cluster's store)."""


class FencedError(NlpzkError):
    """A worker tried to commit work it no longer owns (its lease or session is gone)."""

    exit_code = 11


class TrainingError(NlpzkError):
    """A training job could not proceed."""

    exit_code = 12


__all__ = [
    "NlpzkError",
    "ConfigError",
    "ZkUnavailableError",
    "NotFoundError",
    "InvalidInputError",
    "ConflictError",
    "IntegrityError",
    "NotAuthorizedError",
    "MissingDependencyError",
    "StoreError",
    "WrongStoreError",
    "FencedError",
    "TrainingError",
    "TokenizerOptionError",
]
