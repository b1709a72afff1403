"""`python -m cxloop` is the `cxloop` command."""

from cxloop.cli.main import app

app()
