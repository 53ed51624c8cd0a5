"""The documented interface stays true: every command is in docs/cli.md and its --help has an example."""

from __future__ import annotations

from pathlib import Path

import typer.main

from cli.main import app

ROOT = Path(__file__).resolve().parent.parent


def _commands(command, prefix):
    sub = getattr(command, "commands", None)
    if sub is None:
        yield prefix, command
        return
    for name, child in sub.items():
        if not getattr(child, "hidden", False):
            yield from _commands(child, f"{prefix} {name}")


def test_every_command_is_documented_with_an_example():
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    commands = list(_commands(typer.main.get_command(app), "nlpzk"))
    assert len(commands) >= 40
    missing = [name for name, _ in commands if name not in doc]
    assert not missing, f"not in docs/cli.md: {missing}"
    no_example = [name for name, cmd in commands if name not in (cmd.help or "").partition("Example:")[2]]
    assert not no_example, f"--help without an 'Example: ... <the command> ...' line: {no_example}"


def test_every_command_that_prints_data_takes_json():
    """`nlpzk zk tree` printed the registry but had no --json (docs/cli.md: every command that prints
    data takes it). The two without: demo tells a story, vocab export writes the format asked for."""
    without = [name for name, cmd in _commands(typer.main.get_command(app), "nlpzk") if "--json" not in {o for p in cmd.params for o in getattr(p, "opts", ())}]
    assert sorted(without) == ["nlpzk demo", "nlpzk vocab export"], without


def test_every_argument_and_option_says_what_it_is():
    """`nlpzk model analogy --help` listed A, B, C and -n with no text; `model tag` / `untag` their TAG."""
    bare = [
        f"{name} {param.name}"
        for name, cmd in _commands(typer.main.get_command(app), "nlpzk")
        for param in cmd.params
        if not (getattr(param, "help", None) or "").strip()
    ]
    assert not bare, f"no help text: {bare}"


def test_every_global_option_names_its_environment_variable():
    """The root --help named NLPZK_ZK and NLPZK_STORE but not NLPZK_ACL_OTHERS, NLPZK_ZK_TLS, ...
    (docs/cli.md's table of global options lists them all)."""
    from nlpzk.config import _FIELDS

    root = typer.main.get_command(app)
    helps = {param.name: param.help or "" for param in root.params}
    flags = {"zk": "zk_hosts", "store": "store"}  # the option's parameter name where it differs from the setting's
    missing = [env for key, (env, _type, _secret) in _FIELDS.items() if env not in helps[flags.get(key, key)]]
    assert not missing, f"root --help does not name: {missing}"


def test_docs_exist_and_readme_names_the_two_commands():
    for name in ("architecture.md", "cli.md", "benchmarks.md", "operations.md"):
        assert (ROOT / "docs" / name).stat().st_size > 1000, name
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./run.sh demo" in readme and "./run.sh test" in readme
    assert "./run.sh test" in (ROOT / ".ci" / "run").read_text() or "run.sh test" in (ROOT / ".ci" / "run").read_text()


def test_help_shows_a_value_type_for_options_that_take_one_and_none_for_flags():
    from typer.testing import CliRunner

    runner = CliRunner()
    root = typer.main.get_command(app)
    for name, _ in _commands(root, "nlpzk"):
        result = runner.invoke(app, name.split()[1:] + ["--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (name, result.output)
        assert "<bool>" not in result.output, f"{name} --help shows a flag as taking a value:\n{result.output}"
    train_help = runner.invoke(app, ["train", "run", "--help"], env={"COLUMNS": "200"}).output
    assert "<int>" in train_help and "--cbow" in train_help
