"""`python -m kb`: the knowledge-base command line."""

from kb.cli import app

app(prog_name="python -m kb")
