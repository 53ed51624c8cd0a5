"""The ``nlpzk`` command line: a thin typer app over the ``nlpzk`` library."""
