"""Shared CLI plumbing: the root group, global options, error translation, output conventions.

Errors are turned into one line and an exit code in exactly one place: :class:`NlpzkGroup`.
Every command that prints data takes ``--json`` and then prints exactly one JSON document on stdout
(``tests/test_docs.py`` holds the two exceptions: ``demo``, a walk-through, and ``vocab export``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, Callable, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup, TyperOption

# typer's exceptions for "stop here with this code" and for usage errors pass through untouched.
_PASS_THROUGH = (typer.Exit, typer.Abort, typer.BadParameter.__mro__[2])  # ..., ClickException
# typer vendors click: its usage errors live in typer's own copy of click.exceptions
_click_errors = sys.modules[typer.BadParameter.__module__]


def _flag_type_label(original: Callable[..., Any]) -> Callable[..., Any]:
    # typer >= 0.2x labels every flag "<bool>" in --help, as if `--json <bool>` took a value; a flag
    # takes none (and `--sg/--cbow` names both sides already), so its type column stays empty.
    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return original(self, ctx)

    return display_type_rich


if hasattr(TyperOption, "display_type_rich"):
    TyperOption.display_type_rich = _flag_type_label(TyperOption.display_type_rich)

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout (for scripts).")
YesOption = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


def error_line(message: str) -> None:
    """The one ``error: ...`` line on stderr (red on a terminal; plain text for scripts and logs)."""
    message = message.replace("\r", "\\r").replace("\n", "\\n")  # one line even when a file name holds a newline
    if err.is_terminal:
        err.print("[bold red]error:[/] ", end="", markup=True)
        err.print(message, markup=False, highlight=False, soft_wrap=True)
    else:
        print(f"error: {message}", file=sys.stderr)


def _usage_error(exc) -> NoReturn:
    # click's boxed "Usage: ... Try ... Error: ..." block is three lines; scripts and users get one, like every other error
    where = exc.ctx.command_path if exc.ctx is not None else "nlpzk"
    # click ends its sentences with a period: "No such command 'x'. — see: ..." would stop twice
    message = exc.format_message().rstrip()
    if message.endswith(".") and not message.endswith(".."):
        message = message[:-1]
    error_line(f"{message} — see: {where} --help")
    # A command's option or argument with a bad value (out of the range --help shows, not a number):
    # exit 5, like every other bad argument value nlpzk itself finds. Usage errors proper (unknown
    # option or command, missing argument) and bad global flags (configuration) keep click's 2.
    bad_value = isinstance(exc, _click_errors.BadParameter) and not isinstance(exc, _click_errors.MissingParameter)
    if bad_value and exc.ctx is not None and exc.ctx.parent is not None:
        from nlpzk.errors import InvalidInputError

        raise typer.Exit(InvalidInputError.exit_code)
    raise typer.Exit(exc.exit_code)


def usage_error(ctx: typer.Context, message: str) -> Exception:
    """A usage error raised by a command itself (printed and mapped like click's own: exit 2)."""
    return _click_errors.UsageError(message, ctx=ctx)


class NlpzkGroup(TyperGroup):
    """Root group: maps NlpzkError (and kazoo/OS errors the library translates) to one line + exit code,
    and click's usage errors (missing argument, unknown option or command) to one line + exit 2 (a
    command's option value out of its range: exit 5, as for any bad argument value)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        # the root's own options are parsed here, before invoke()
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _click_errors.NoArgsIsHelpError:
            raise
        except _click_errors.UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _click_errors.NoArgsIsHelpError:
            raise
        except _click_errors.UsageError as exc:
            _usage_error(exc)
        except _PASS_THROUGH:
            raise
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - this is the one translation point
            from nlpzk.cluster import as_nlpzk_error

            mapped = as_nlpzk_error(exc)
            if mapped is None:
                raise
            error_line(mapped.line())
            raise typer.Exit(mapped.exit_code) from None

    def list_commands(self, ctx: typer.Context) -> list[str]:
        # keep the order commands were added in (the user's journey), not alphabetical
        return list(self.commands)


@dataclasses.dataclass
class State:
    flags: dict[str, Any]
    config_file: str | None = None
    _config: Any = None
    _cluster: Any = None

    def config(self):
        if self._config is None:
            from nlpzk.config import Config

            self._config = Config.resolve(flags=self.flags, toml_path=self.config_file or True)
        return self._config

    def cluster(self):
        if self._cluster is None:
            from nlpzk.cluster import Cluster

            config = self.config()
            self._cluster = Cluster.connect(config)
            if self._cluster.started_server:
                print(
                    f"started the embedded ZooKeeper on 127.0.0.1:{config.zk_port} (data in {config.state_path}/zookeeper; "
                    "stop it with: nlpzk zk stop)",
                    file=sys.stderr,
                )
        return self._cluster

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State(flags={})
    return root.obj


def cluster(ctx: typer.Context):
    return state(ctx).cluster()


def config(ctx: typer.Context):
    return state(ctx).config()


def emit(data: Any, as_json: bool, human: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON (``--json``) or through ``human`` (rich)."""
    if as_json or human is None:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human(data)


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        error_line(f"{question} — refusing without a terminal; pass --yes")
        raise typer.Exit(5)
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 worker``, ``2 workers``, ``87,519 tokens``: the number with thousands separators and the noun agreeing with it."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def scores_cell(evals: dict[str, float], train_scores: dict[str, float] | None) -> str:
    """A model's headline scores for a table: those `model eval` stored, else the ones its training
    job measured at its end (marked: over the job's 30,000 most frequent words, not the same numbers)."""
    scores = ", ".join(f"{k} {v:.3f}" for k, v in evals.items())
    if not scores and train_scores:
        scores = "at training: " + ", ".join(f"{k} {v:.3f}" for k, v in train_scores.items())
    return scores or "-"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def named(row: dict[str, Any]) -> str:
    """A listing row's name, marked ``(being deleted)`` while a delete is under way (every other
    command refuses it then)."""
    return row["name"] + (" (being deleted)" if row.get("deleting") else "")


def _name(row: dict[str, Any]) -> str:
    return str(row["name"])


def add_rows(table: Any, rows: list[dict[str, Any]], cells: Callable[[dict[str, Any]], list[str]], label: Callable[[dict[str, Any]], str] = _name) -> Any:
    """Fill ``table`` with ``cells(row)`` for each row; a damaged row (``damaged`` set, see
    ``registry.damaged_row``) is its ``label`` (its name) marked ``(damaged)`` and dashes. Returns ``table``."""
    for r in rows:
        if r.get("damaged"):
            table.add_row(f"{label(r)} (damaged)", *["-"] * (len(table.columns) - 1))
        else:
            table.add_row(*cells(r))
    return table


def print_table(table: Any, rows: list[dict[str, Any]], cells: Callable[[dict[str, Any]], list[str]], label: Callable[[dict[str, Any]], str] = _name) -> None:
    """:func:`add_rows`, print the table, then for each damaged row, in full and unwrapped (to copy
    the command from), ``LABEL: damaged: what is wrong and what to do``."""
    out.print(add_rows(table, rows, cells, label))
    for r in rows:
        if r.get("damaged"):
            print(f"{label(r)}: damaged: {r['damaged']}")
