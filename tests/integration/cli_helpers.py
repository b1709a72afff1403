"""What the command-line tests share: running `cxloop` in this process (Typer's runner), and
its output with the line breaks Rich adds taken out."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from cxloop.cli.main import app

runner = CliRunner()


def cxloop(*args: str | Path, stdin: str | None = None) -> Result:
    """`cxloop ARGS` with `stdin` as its input; exit code and output in the result."""
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def flat(output: str) -> str:
    """The output as one line: a long message reads the same however Rich wrapped it."""
    return " ".join(output.split())
