"""``python -m nlpzk``: the same as the ``nlpzk`` command.

The only place the library side touches ``cli``; it is an entry point, not library code, and it
imports the CLI at call time so ``import nlpzk`` never does.
"""

import importlib


def _main() -> None:
    importlib.import_module("cli.main").main()


if __name__ == "__main__":
    _main()
